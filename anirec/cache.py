"""Where anirec keeps what it can always make again, and the fingerprints that name it.

Two kinds of derived files live under one cache folder (``$ANIREC_CACHE``, default
``~/.cache/anirec/embeddings``): the embedding store's entries (``anirec.embeddings``) and, in
``backends/``, the ONNX/OpenVINO exports of a model (``anirec.backends``). Both are keyed by a
model's fingerprint: sha256 over the model folder's weight and config files, so a changed model
can never be served another one's vectors or graph.

This module sits below the model loader, the backends and the embedding store, which all need
the same folders and the same fingerprint, so that none of them has to import another for it.

Hashing a 400 MB weights file takes seconds, so file hashes are memoised per (path, size,
mtime) in memory and in ``fingerprints.json`` inside the cache folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from .errors import AnirecError
from .io import hash_file, write_text

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".txt", ".model")
EXPORT_FORMAT = 2  # bump when the exported files change: old exports are then made again

_file_hash_memo: dict[tuple[str, int, int], str] = {}


def default_cache_dir() -> Path:
    return Path(os.environ.get("ANIREC_CACHE") or "~/.cache/anirec/embeddings").expanduser()


def export_dir(resolved: str, cache_dir: str | Path | None = None) -> Path:
    """Where the exported files of a model go: beside the embedding cache, keyed by its fingerprint."""
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    fingerprint = model_fingerprint(resolved, cache_dir)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(resolved).name or resolved)[:60]
    digest = re.sub(r"[^A-Za-z0-9]+", "_", fingerprint)[-16:]
    return cache_dir / "backends" / f"{name}-{digest}-v{EXPORT_FORMAT}"


# --------------------------------------------------------------------------- model fingerprints


def _model_files(folder: Path) -> list[Path]:
    """The files that define a sentence-transformers folder: the root and each module's folder
    (non-recursive, so a stray checkpoints/ folder does not get hashed)."""
    dirs = [folder]
    modules = folder / "modules.json"
    if modules.exists():
        try:
            dirs += [folder / m["path"] for m in json.loads(modules.read_text()) if m.get("path")]
        except (ValueError, KeyError, TypeError):
            pass
    files = [f for d in dirs if d.is_dir() for f in d.iterdir() if f.is_file() and f.suffix in WEIGHT_SUFFIXES]
    return sorted(set(files))


def _memo_path(cache_dir: Path) -> Path:
    return cache_dir / "fingerprints.json"


def _file_sha256(path: Path, disk_memo: dict) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    text_key = "|".join(map(str, key))
    digest = _file_hash_memo.get(key) or disk_memo.get(text_key) or hash_file(path)
    _file_hash_memo[key] = disk_memo[text_key] = digest
    return digest


def _read_memo(memo_file: Path) -> dict:
    try:
        disk_memo = json.loads(memo_file.read_text()) if memo_file.exists() else {}
    except (OSError, ValueError):
        disk_memo = {}  # only a memo: a broken one costs re-hashing, and is rewritten
    return disk_memo if isinstance(disk_memo, dict) else {}


def model_fingerprint(resolved: str, cache_dir: Path | None = None) -> str:
    """sha256 over (relative name, sha256) of a local model's files; ``hub:<id>`` for hub ids."""
    folder = Path(resolved)
    if not folder.exists():
        return f"hub:{resolved}"
    if folder.is_file():
        files, folder = [folder], folder.parent
    else:
        files = _model_files(folder)
    if not files:
        raise AnirecError(f"model folder {folder} holds no weights or config files. Pass a sentence-transformers folder.")
    memo_file = _memo_path(Path(cache_dir) if cache_dir else default_cache_dir())
    disk_memo = _read_memo(memo_file)
    before = len(disk_memo)
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(folder)}\0{_file_sha256(f, disk_memo)}\n".encode())
    if len(disk_memo) != before:
        try:
            write_text(json.dumps(disk_memo, indent=0, sort_keys=True), memo_file)
        except OSError:
            pass  # a read-only cache only costs re-hashing next time
    return h.hexdigest()
