"""A fitted recommender as a folder you can ship: save it, and load it back verified.

Layout (written atomically, so a folder is either whole or absent)::

    DIR/manifest.json      method, parameters, catalog and ratings provenance, embedding
                           reference, and the sha256 of every other file
    DIR/catalog_ids.npy    the MAL_ID of each item row the method was fitted on
    DIR/catalog.parquet    the catalog's display columns (titles, type, premiered, score):
                           enough to answer title queries from the folder alone
    DIR/state/NAME.npy     the method's fitted arrays (``Recommender.state()``), one per file

Loading checks, in order, that the folder and manifest exist, the format is this one, every
listed file is present with its recorded hash, and (when given) that the catalog and the
text model are the ones the folder was made for; each failure is one AnirecError naming the
file or the reason.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .errors import AnirecError
from .io import atomic_dir, check_writable_output, hash_file, hash_strings
from .recommenders import Recommender, make

FORMAT = 1
MANIFEST = "manifest.json"
IDS_FILE = "catalog_ids.npy"
CATALOG_FILE = "catalog.parquet"
STATE_DIR = "state"
# What title queries and result tables show; the descriptions stay out (they can be large and
# are represented by their hash in the manifest).
DISPLAY_COLUMNS = ["MAL_ID", "Name", "English name", "Type", "Genres", "Premiered", "Score", "Members"]
_ARRAY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def catalog_id_hash(catalog: pd.DataFrame) -> str:
    return hash_strings(catalog["MAL_ID"].astype(np.int64).tolist())


def catalog_description_hash(catalog: pd.DataFrame) -> str:
    """The same hash the embedding cache keys descriptions by."""
    return hash_strings(catalog["description"].astype(str).tolist())


@dataclass
class FittedRecommender:
    """A loaded folder: the restored method, its manifest and the catalog rows it serves."""

    recommender: Recommender
    manifest: dict
    catalog: pd.DataFrame  # rows aligned with the method's items
    folder: Path

    @property
    def ids(self) -> np.ndarray:
        return self.catalog["MAL_ID"].to_numpy(np.int64)

    @property
    def method(self) -> str:
        return self.manifest["method"]

    @property
    def model(self) -> str | None:
        """The text model the method embeds with (None for CF-only methods)."""
        emb = self.manifest.get("embedding") or {}
        return emb.get("resolved") or emb.get("model")


def check_replaceable(folder: str | Path) -> Path:
    """``folder`` may be written: new, empty, or an earlier fitted folder (it is replaced whole,
    so anything else there would be lost)."""
    folder = Path(folder)
    if folder.exists() and not (folder.is_dir() and (not any(folder.iterdir()) or (folder / MANIFEST).exists())):
        raise AnirecError(f"--out {folder}: exists and is not a fitted recommender folder; pass a new or empty folder.")
    return check_writable_output(folder, "dir", "--out")


def save_fitted(recommender: Recommender, folder: str | Path, catalog: pd.DataFrame, provenance: dict) -> Path:
    """Write ``recommender`` (fitted on ``catalog``'s rows) to ``folder`` atomically.

    ``provenance`` goes into the manifest as is (catalog path, ratings labels and fingerprint,
    users, fit seconds...)."""
    folder = check_replaceable(folder)
    arrays = recommender.state()
    for name in arrays:
        if not _ARRAY_NAME.match(name):
            raise AnirecError(f"method {recommender.name!r}: state array name {name!r} is not a safe file name.")
    if len(catalog) != recommender.n_items:
        raise AnirecError(f"method fitted on {recommender.n_items} items, catalog has {len(catalog)} rows.")
    described = recommender.describe()
    with atomic_dir(folder) as tmp:
        np.save(tmp / IDS_FILE, catalog["MAL_ID"].to_numpy(np.int64), allow_pickle=False)
        display = catalog[[c for c in DISPLAY_COLUMNS if c in catalog.columns]].reset_index(drop=True)
        display.to_parquet(tmp / CATALOG_FILE, index=False)
        (tmp / STATE_DIR).mkdir()
        for name, value in arrays.items():
            np.save(tmp / STATE_DIR / f"{name}.npy", np.asarray(value), allow_pickle=False)
        files = [IDS_FILE, CATALOG_FILE] + [f"{STATE_DIR}/{name}.npy" for name in sorted(arrays)]
        manifest = {
            "format": FORMAT,
            "anirec_version": __version__,
            "method": recommender.name,
            "params": described["params"],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "n_items": int(recommender.n_items),
            "catalog": {"id_hash": catalog_id_hash(catalog), "description_hash": catalog_description_hash(catalog),
                        "n_items": len(catalog)},
            "embedding": _embedding_reference(described.get("embedding")),
            "uses_text": bool(recommender.uses_text),
            "arrays": sorted(arrays),
            **{k: v for k, v in provenance.items() if k != "catalog"},
            "files": {f: hash_file(tmp / f) for f in files},
        }
        manifest["catalog"].update(provenance.get("catalog", {}))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return folder


def _embedding_reference(info: dict | None) -> dict | None:
    """What identifies the text part's vectors (not how long this run took to get them)."""
    if not info:
        return None
    return {k: info[k] for k in ("model", "resolved", "fingerprint", "max_seq_length", "vocabulary") if k in info}


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a fitted folder, checked to exist, parse and be of this format."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnirecError(f"--recommender {folder}: no such folder. Make one with `anirec fit ... --out {folder}`.")
    path = folder / MANIFEST
    if not path.exists():
        raise AnirecError(f"{path}: missing; {folder} is not a whole fitted recommender. Make it again with `anirec fit`.")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AnirecError(f"{path}: unreadable ({exc}). Make the folder again with `anirec fit`.") from None
    if not isinstance(manifest, dict) or not {"format", "method", "params", "files", "arrays"} <= set(manifest):
        raise AnirecError(f"{path}: not an anirec fitted-recommender manifest. Make the folder again with `anirec fit`.")
    if manifest["format"] != FORMAT:
        raise AnirecError(f"{path}: folder format {manifest['format']}, this anirec reads format {FORMAT}. "
                          "Refit with `anirec fit`.")
    return manifest


def _verified_files(folder: Path, manifest: dict) -> None:
    needed = {IDS_FILE, CATALOG_FILE} | {f"{STATE_DIR}/{name}.npy" for name in manifest["arrays"]}
    unlisted = sorted(needed - set(manifest["files"]))
    if unlisted:
        raise AnirecError(f"{folder / MANIFEST}: lists no hash for {unlisted[0]}. Make the folder again with `anirec fit`.")
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise AnirecError(f"{path}: missing; the fitted folder is partial. Make it again with `anirec fit`.")
        if hash_file(path) != digest:
            raise AnirecError(f"{path}: sha256 differs from the manifest (corrupted or edited). "
                              "Make the folder again with `anirec fit`.")


def _check_catalog(folder: Path, manifest: dict, catalog: pd.DataFrame) -> None:
    recorded = manifest["catalog"]
    if catalog_id_hash(catalog) != recorded["id_hash"]:
        raise AnirecError(f"--recommender {folder}: made for another catalog: ids differ (folder: {recorded['n_items']:,} "
                          f"anime from {recorded.get('path', '?')}; given: {len(catalog):,}). "
                          "Pass the catalog it was fitted on, or refit with `anirec fit`.")
    if manifest.get("uses_text") and catalog_description_hash(catalog) != recorded["description_hash"]:
        raise AnirecError(f"--recommender {folder}: made for another catalog: descriptions differ (same anime, "
                          f"rebuilt text). Refit with `anirec fit --catalog ...` on this catalog.")


def _check_model(folder: Path, manifest: dict, model: str) -> None:
    from .cache import model_fingerprint
    from .models import resolve_model

    emb = manifest.get("embedding") or {}
    if not emb:
        raise AnirecError(f"--model {model}: method {manifest['method']!r} in {folder} uses no text model.")
    if emb.get("model") == "tfidf" or model == "tfidf":
        if emb.get("model") != model:
            raise AnirecError(f"--recommender {folder}: stale: model changed (folder made with {emb.get('model')!r}, "
                              f"given {model!r}). Refit with `anirec fit --model {model}`.")
        return
    resolved = resolve_model(model)
    if Path(resolved).exists():
        resolved = str(Path(resolved).resolve())
    if emb.get("fingerprint") and model_fingerprint(resolved) != emb["fingerprint"]:
        raise AnirecError(f"--recommender {folder}: stale: model changed ({model} is not the model the folder was "
                          f"fitted with, {emb.get('resolved') or emb.get('model')}). Refit with `anirec fit --model {model}`.")


def load_fitted(folder: str | Path, catalog: pd.DataFrame | None = None, model: str | None = None) -> FittedRecommender:
    """Load a folder written by :func:`save_fitted`, verified (see the module doc).

    ``catalog``: the catalog the caller means to use; refused if the folder was made for
    another one. ``model``: a text model name/path; refused if it is not the one recorded."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    _verified_files(folder, manifest)
    ids = np.load(folder / IDS_FILE, allow_pickle=False)
    display = pd.read_parquet(folder / CATALOG_FILE)
    if len(ids) != manifest["n_items"] or not np.array_equal(display["MAL_ID"].to_numpy(np.int64), ids):
        raise AnirecError(f"{folder}: {IDS_FILE} and {CATALOG_FILE} disagree with the manifest. Make it again with `anirec fit`.")
    if catalog is not None:
        _check_catalog(folder, manifest, catalog)
    if model is not None:
        _check_model(folder, manifest, model)
    arrays = {name: np.load(folder / STATE_DIR / f"{name}.npy", allow_pickle=False) for name in manifest["arrays"]}
    served = catalog.reset_index(drop=True) if catalog is not None else display
    recommender = make(manifest["method"], manifest["params"], where=f"{folder / MANIFEST}").restore(arrays, served)
    if recommender.n_items != len(ids):
        raise AnirecError(f"{folder}: method state has {recommender.n_items} items, {IDS_FILE} {len(ids)}. "
                          "Make it again with `anirec fit`.")
    return FittedRecommender(recommender, manifest, served, folder)
