"""The embedding store: encode every catalog description once, then serve it from a disk cache.

A cache entry is keyed by everything the vectors depend on, so a changed catalog or model
can never be served stale vectors:

* the model identity: its resolved local path plus a fingerprint of its files (sha256 of
  the weights and configs), or the hub id when the model is not on disk;
* the max_seq_length the descriptions were truncated to;
* the backend that ran the model (torch, onnx, onnx-int8, openvino: int8 vectors differ);
* an order-sensitive hash of the descriptions (``anirec.io.hash_strings``).

The cache folder and the model fingerprint come from ``anirec.cache`` (the backends' exports
share both). Entries are written atomically (vectors last), so an interrupted run leaves either
a whole entry or none.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .backends import check_backend
from .cache import default_cache_dir, model_fingerprint
from .errors import AnirecError, warn
from .io import atomic_path, hash_strings, write_text
from .models import load_model, resolve_model

CACHE_FORMAT = 1  # bump when the entry layout changes: old entries then simply miss


@dataclass
class Embeddings:
    """Catalog vectors (rows aligned with the catalog) and where they came from."""

    vectors: np.ndarray  # float32 (n, d), L2-normalised
    model: str  # resolved local path or hub id
    model_fingerprint: str  # sha256 over the model's files, or "hub:<id>"
    max_seq_length: int | None  # what the encoder actually used
    description_hash: str
    cache_hit: bool
    cache_path: Path | None
    seconds: float  # time spent loading from cache, or loading the model and encoding
    backend: str = "torch"

    @property
    def dims(self) -> int:
        return int(self.vectors.shape[1])


# --------------------------------------------------------------------------- model identity


def _configured_max_seq_length(resolved: str) -> int | None:
    """The max_seq_length a local folder declares (older sentence-transformers layouts), else None."""
    cfg = Path(resolved) / "sentence_bert_config.json"
    try:
        value = json.loads(cfg.read_text()).get("max_seq_length")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) else None


# --------------------------------------------------------------------------- cache entries


def cache_key(model: str, fingerprint: str, max_seq_length: int | None, description_hash: str,
              backend: str = "torch") -> str:
    fields = {"format": CACHE_FORMAT, "model": model, "fingerprint": fingerprint,
              "max_seq_length": max_seq_length, "descriptions": description_hash}
    if backend != "torch":  # torch keys stay what they were, so existing caches still hit
        fields["backend"] = backend
    blob = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _entry_paths(cache_dir: Path, model: str, max_seq_length: int | None, key: str,
                 backend: str = "torch") -> tuple[Path, Path]:
    # A readable prefix helps anyone looking into the folder; the key alone decides identity.
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model).name or model)[:60]
    stem = f"{name}-{max_seq_length or 'default'}-{'' if backend == 'torch' else backend + '-'}{key}"
    return cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"


def _read_entry(npy: Path, meta_path: Path, key: str, n_rows: int):
    """The cached (vectors, meta), or None. The cache is ours to rebuild, so an entry that cannot
    be read (a zero-byte or truncated .npy raises EOFError, a mangled header ValueError, ...) is
    a warning and a re-encode, never an abort."""
    if not npy.exists() or not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        vectors = np.load(npy, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - whatever broke the entry, encoding again repairs it
        warn(f"embedding cache entry {npy} is unreadable ({type(exc).__name__}: {str(exc)[:120] or 'no detail'}); encoding again.")
        return None
    if (not isinstance(meta, dict) or meta.get("key") != key or not isinstance(vectors, np.ndarray)
            or vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != n_rows):
        warn(f"embedding cache entry {npy} does not match its key; encoding again.")
        return None
    return vectors, meta


def _write_entry(npy: Path, meta_path: Path, vectors: np.ndarray, meta: dict) -> None:
    # Metadata first, vectors last: an entry is complete exactly when its .npy exists.
    write_text(json.dumps(meta, indent=2), meta_path)
    with atomic_path(npy) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, vectors, allow_pickle=False)


# --------------------------------------------------------------------------- encoding


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def encode_texts(encoder, texts: list[str], batch_size: int = 32, show_progress: bool = True) -> np.ndarray:
    """Encode with a loaded SentenceTransformer: batched, with its tqdm bar, normalised float32."""
    vectors = encoder.encode(
        list(texts), batch_size=batch_size, show_progress_bar=show_progress,
        convert_to_numpy=True, normalize_embeddings=True,
    )
    return np.ascontiguousarray(normalize(vectors))


def _descriptions(catalog_df: pd.DataFrame) -> list[str]:
    if "description" not in catalog_df.columns:
        raise AnirecError("catalog has no 'description' column. Build it with `anirec build --data DIR --out catalog.parquet`.")
    if len(catalog_df) == 0:
        raise AnirecError("catalog has no rows: nothing to embed.")
    desc = catalog_df["description"]
    if desc.isna().any():
        row = int(np.flatnonzero(desc.isna().to_numpy())[0])
        raise AnirecError(f"catalog row {row} (MAL_ID {catalog_df['MAL_ID'].iat[row] if 'MAL_ID' in catalog_df else '?'}) "
                          "has no description. Rebuild the catalog with `anirec build`.")
    return desc.astype(str).tolist()


def load_or_embed(
    catalog_df: pd.DataFrame,
    model_name_or_path: str,
    max_seq_length: int | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    show_progress: bool = True,
    force: bool = False,
    backend: str = "torch",
) -> Embeddings:
    """Vectors for every catalog description, from the cache when the same inputs were seen.
    ``backend``: see ``anirec.backends.BACKENDS`` (part of the cache key)."""
    start = time.perf_counter()
    backend = check_backend(backend)
    texts = _descriptions(catalog_df)
    if batch_size < 1:
        raise AnirecError(f"--batch-size {batch_size}: must be at least 1.")
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    resolved = resolve_model(str(model_name_or_path))
    if Path(resolved).exists():
        resolved = str(Path(resolved).resolve())
    fingerprint = model_fingerprint(resolved, cache_dir)
    desc_hash = hash_strings(texts)
    # None means "the model's own default"; a local folder that declares it shares entries with
    # an explicit request of the same length. Otherwise "default" is pinned by the fingerprint.
    keyed_msl = max_seq_length if max_seq_length is not None else _configured_max_seq_length(resolved)
    key = cache_key(resolved, fingerprint, keyed_msl, desc_hash, backend)
    npy, meta_path = _entry_paths(cache_dir, resolved, keyed_msl, key, backend)

    if not force:
        entry = _read_entry(npy, meta_path, key, len(texts))
        if entry is not None:
            vectors, meta = entry
            return Embeddings(vectors, resolved, fingerprint, meta.get("max_seq_length"), desc_hash,
                              True, npy, time.perf_counter() - start, backend)

    encoder = load_model(str(model_name_or_path), max_seq_length=max_seq_length, backend=backend, cache_dir=cache_dir)
    vectors = encode_texts(encoder, texts, batch_size=batch_size, show_progress=show_progress)
    used_msl = getattr(encoder, "max_seq_length", None)
    meta = {
        "key": key, "format": CACHE_FORMAT, "model": resolved, "model_fingerprint": fingerprint,
        "max_seq_length": int(used_msl) if used_msl is not None and used_msl != float("inf") else None,
        "requested_max_seq_length": max_seq_length, "backend": backend,
        "description_hash": desc_hash, "count": int(vectors.shape[0]), "dims": int(vectors.shape[1]),
        "normalized": True, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    cached: Path | None = npy
    try:
        _write_entry(npy, meta_path, vectors, meta)
    except OSError as exc:
        warn(f"could not write the embedding cache in {cache_dir} ({exc}); set --cache-dir or ANIREC_CACHE to a writable folder.")
        cached = None
    return Embeddings(vectors, resolved, fingerprint, meta["max_seq_length"], desc_hash,
                      False, cached, time.perf_counter() - start, backend)


def embed_catalog(
    catalog_df: pd.DataFrame,
    model_name_or_path: str,
    max_seq_length: int | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    show_progress: bool = True,
    backend: str = "torch",
) -> np.ndarray:
    """float32 (n, d) L2-normalised vectors, rows aligned with ``catalog_df`` (cached on disk)."""
    return load_or_embed(catalog_df, model_name_or_path, max_seq_length, cache_dir, batch_size, show_progress,
                         backend=backend).vectors


def format_embed_summary(e: Embeddings) -> str:
    n, d = e.vectors.shape
    msl = e.max_seq_length if e.max_seq_length is not None else "model default"
    msl = f"{msl}, backend {e.backend}" if e.backend != "torch" else msl
    if e.cache_hit:
        return f"embeddings: loaded from cache in {e.seconds:.2f} s ({n:,} x {d}, max_seq_length {msl}) <- {e.cache_path}"
    rate = n / e.seconds if e.seconds > 0 else float("inf")
    where = f" -> cached at {e.cache_path}" if e.cache_path else " (not cached)"
    return (f"embeddings: encoded {n:,} descriptions in {e.seconds:.1f} s ({rate:.1f}/s incl. model load; "
            f"{d} dims, max_seq_length {msl}){where}")
