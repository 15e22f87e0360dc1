"""Export catalog embeddings for other tools, with a manifest that says exactly what they are.

Formats (each folder also holds ``manifest.json``):

* ``npy``: ``embeddings.npy`` (float32 n x d) + ``ids.npy`` (int64 MAL_IDs, same order);
* ``parquet``: ``embeddings.parquet`` with MAL_ID, title and a fixed-size float32 list column;
* ``faiss``: ``index.faiss``, an ``IndexIDMap(IndexFlatIP)`` whose ids are MAL_IDs (inner
  product = cosine, the vectors are normalised); needs ``pip install anirec[faiss]``;
* ``tsv``: ``vectors.tsv`` + ``metadata.tsv`` (header: title, genres, MAL_ID), the two files
  the TensorBoard Embedding Projector (projector.tensorflow.org) loads.

``load_export(dir, expect=...)`` reads any of them back and refuses a folder whose manifest
does not match what the caller expects (another model, catalog or length), naming the field.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .embeddings import Embeddings
from .errors import AnirecError
from .io import atomic_dir, check_replaceable_dir, hash_strings

FORMATS = ("npy", "parquet", "faiss", "tsv")
MANIFEST = "manifest.json"
KIND = "anirec-embedding-export"
FILES = {
    "npy": ["embeddings.npy", "ids.npy"],
    "parquet": ["embeddings.parquet"],
    "faiss": ["index.faiss"],
    "tsv": ["vectors.tsv", "metadata.tsv"],
}


@dataclass
class Export:
    vectors: np.ndarray  # float32 (n, d)
    ids: np.ndarray  # int64 MAL_IDs, row-aligned
    manifest: dict
    path: Path


def require_faiss():
    try:
        import faiss
    except ImportError:
        raise AnirecError("--format faiss needs the faiss-cpu package: pip install anirec[faiss] (or pip install faiss-cpu).") from None
    return faiss


def _clean_tsv(values) -> list[str]:
    # Tabs/newlines inside a title would shift the projector's columns.
    return [" ".join(str(v).replace("\t", " ").split()) for v in values]


def is_export_manifest(manifest: dict) -> bool:
    """A manifest anirec wrote for an export (with its kind, or from before exports had one)."""
    if manifest.get("kind") == KIND:
        return True
    return manifest.get("format") in FORMATS and {"anirec_version", "model_fingerprint", "ids_hash", "files"} <= set(manifest)


def check_export_replaceable(out: str | Path) -> Path:
    """``out`` may be written: new, empty, or an earlier export (it is replaced whole, so
    anything else there, a fitted folder or a project with its own manifest.json, would be lost)."""
    return check_replaceable_dir(out, "an anirec export", is_export_manifest)


def build_manifest(emb: Embeddings, ids: np.ndarray, fmt: str) -> dict:
    return {
        "kind": KIND,
        "anirec_version": __version__,
        "format": fmt,
        "files": FILES[fmt],
        "model": emb.model,
        "model_fingerprint": emb.model_fingerprint,
        "dims": emb.dims,
        "count": int(len(emb.vectors)),
        "max_seq_length": emb.max_seq_length,
        "backend": emb.backend,
        "normalized": True,
        "description_hash": emb.description_hash,
        "ids_hash": hash_strings(ids.tolist()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def export_embeddings(catalog: pd.DataFrame, emb: Embeddings, fmt: str, out: str | Path) -> Path:
    """Write ``emb`` (rows aligned with ``catalog``) to the folder ``out`` atomically."""
    if fmt not in FORMATS:
        raise AnirecError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}.")
    out = check_export_replaceable(out)  # atomic_dir replaces the folder wholesale: never what is not ours
    faiss = require_faiss() if fmt == "faiss" else None  # fail before any work if it is missing
    ids = catalog["MAL_ID"].to_numpy(np.int64)
    vectors = np.ascontiguousarray(emb.vectors, dtype=np.float32)
    if len(ids) != len(vectors):
        raise AnirecError(f"{len(vectors)} vectors for a catalog of {len(ids)} anime: embed this catalog again.")
    with atomic_dir(out) as tmp:
        if fmt == "npy":
            np.save(tmp / "embeddings.npy", vectors, allow_pickle=False)
            np.save(tmp / "ids.npy", ids, allow_pickle=False)
        elif fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), vectors.shape[1])
            table = pa.table({"MAL_ID": pa.array(ids), "title": pa.array(catalog["Name"].astype(str).tolist()),
                              "embedding": column})
            pq.write_table(table, tmp / "embeddings.parquet")
        elif fmt == "faiss":
            index = faiss.IndexIDMap(faiss.IndexFlatIP(vectors.shape[1]))
            index.add_with_ids(vectors, ids)
            faiss.write_index(index, str(tmp / "index.faiss"))
        else:  # tsv: no header on vectors; metadata with several columns needs a header row
            np.savetxt(tmp / "vectors.tsv", vectors, fmt="%.9g", delimiter="\t")
            genres = catalog["Genres"] if "Genres" in catalog else pd.Series([""] * len(catalog))
            meta = pd.DataFrame({"title": _clean_tsv(catalog["Name"]), "genres": _clean_tsv(genres), "MAL_ID": ids})
            meta.to_csv(tmp / "metadata.tsv", sep="\t", index=False, lineterminator="\n")
        (tmp / MANIFEST).write_text(json.dumps(build_manifest(emb, ids, fmt), indent=2) + "\n", encoding="utf-8")
    return out


def expectation(emb: Embeddings) -> dict:
    """What an export made from these embeddings must say (for ``load_export(expect=...)``)."""
    return {"model_fingerprint": emb.model_fingerprint, "max_seq_length": emb.max_seq_length,
            "description_hash": emb.description_hash, "dims": emb.dims, "count": int(len(emb.vectors))}


def load_export(path: str | Path, expect: dict | Embeddings | None = None) -> Export:
    """Read an export folder back; refuse it (AnirecError naming the field) when its manifest
    differs from ``expect`` (a dict of manifest fields, or the Embeddings it should match)."""
    path = Path(path).expanduser()
    mpath = path / MANIFEST
    if not mpath.exists():
        raise AnirecError(f"{path}: no {MANIFEST}, so not an anirec export. Create one with `anirec export`.")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise AnirecError(f"{mpath}: not valid JSON ({exc}). Export again.") from None
    if isinstance(expect, Embeddings):
        expect = expectation(expect)
    for field, wanted in (expect or {}).items():
        if manifest.get(field) != wanted:
            raise AnirecError(f"{path}: export refused: manifest {field} is {manifest.get(field)!r}, expected {wanted!r}. "
                              "Export again with the current model and catalog.")
    fmt = manifest.get("format")
    missing = [f for f in FILES.get(fmt, []) if not (path / f).exists()]
    if fmt not in FORMATS or missing:
        raise AnirecError(f"{path}: export format {fmt!r} is incomplete (missing {', '.join(missing) or 'format'}). Export again.")
    if fmt == "npy":
        vectors, ids = np.load(path / "embeddings.npy"), np.load(path / "ids.npy")
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path / "embeddings.parquet")
        col = table.column("embedding").combine_chunks()
        vectors = col.flatten().to_numpy().reshape(len(table), -1)
        ids = table.column("MAL_ID").to_numpy()
    elif fmt == "faiss":
        faiss = require_faiss()
        index = faiss.read_index(str(path / "index.faiss"))
        ids = faiss.vector_to_array(index.id_map)
        vectors = faiss.downcast_index(index.index).reconstruct_n(0, index.ntotal)
    else:
        vectors = np.loadtxt(path / "vectors.tsv", dtype=np.float32, delimiter="\t", ndmin=2)
        ids = pd.read_csv(path / "metadata.tsv", sep="\t", usecols=["MAL_ID"])["MAL_ID"].to_numpy()
    vectors, ids = np.asarray(vectors, np.float32), np.asarray(ids, np.int64)
    if vectors.shape != (manifest.get("count"), manifest.get("dims")) or len(ids) != len(vectors):
        raise AnirecError(f"{path}: holds {vectors.shape[0]} x {vectors.shape[1]} vectors and {len(ids)} ids, "
                          f"manifest says {manifest.get('count')} x {manifest.get('dims')}. Export again.")
    if manifest.get("ids_hash") and hash_strings(ids.tolist()) != manifest["ids_hash"]:
        raise AnirecError(f"{path}: its MAL_IDs differ from the ones the manifest recorded. Export again.")
    return Export(vectors, ids, manifest, path)
