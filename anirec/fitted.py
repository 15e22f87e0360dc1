"""A fitted recommender as a folder you can ship: save it, and load it back verified.

Layout (written atomically, so a folder is either whole or absent)::

    DIR/manifest.json      kind, method, parameters, catalog and ratings provenance, embedding
                           reference, each state array's dtype and shape, the sha256 of every
                           other file, and (``manifest_sha256``) of the manifest itself
    DIR/catalog_ids.npy    the MAL_ID of each item row the method was fitted on
    DIR/catalog.parquet    the catalog's display columns (titles, type, premiered, age rating,
                           score) and ratings per anime in the fitted data: enough to answer
                           title queries and query filters from the folder alone
    DIR/state/NAME.npy     the method's fitted arrays (``Recommender.state()``), one per file

Loading checks, in order, that the folder and manifest exist, the format and kind are this
one, the manifest is unedited (its own hash), every key has its type, the files it lists are
exactly the layout's (nothing outside the folder, no symbolic link: a crafted folder cannot
make anirec read or hash another file), each with its recorded hash; then that every array has
its recorded dtype and shape, (when given) that the catalog and the text model are the ones the
folder was made for, and that the method's ``restore`` accepts the arrays. Each failure is one
AnirecError naming the file or the reason. A folder replaced while it is read (a refit) is read
again, once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .errors import AnirecError
from .io import atomic_dir, check_replaceable_dir, hash_file, hash_strings, lock_holder
from .recommenders import Recommender, make

FORMAT = 2  # 2: kind, array_specs and manifest_sha256 (format 1 folders: refit)
KIND = "anirec-fitted-recommender"
MANIFEST = "manifest.json"
IDS_FILE = "catalog_ids.npy"
CATALOG_FILE = "catalog.parquet"
STATE_DIR = "state"
SEAL = "manifest_sha256"
# What title queries, result tables and query filters read; the descriptions stay out (they can be
# large and are represented by their hash in the manifest).
RATINGS_COLUMN = "n_ratings"  # ratings per anime in the fitted data: what "new anime" means
DISPLAY_COLUMNS = ["MAL_ID", "Name", "English name", "Type", "Genres", "Premiered", "Aired", "Rating", "Score",
                   "Members", RATINGS_COLUMN]
DISPLAY_REQUIRED = DISPLAY_COLUMNS[:6]
_ARRAY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_MANIFEST_BYTES = 16 << 20
_REMAKE = "Make the folder again with `anirec fit`."
# The manifest keys loading reads, and their JSON types ("int": an integer, not a bool).
_MANIFEST_TYPES = {"method": str, "params": dict, "n_items": "int", "arrays": list, "array_specs": dict, "files": dict,
                   "catalog": dict, "uses_text": bool}
_CATALOG_TYPES = {"id_hash": str, "description_hash": str, "n_items": "int"}


def catalog_id_hash(catalog: pd.DataFrame) -> str:
    return hash_strings(catalog["MAL_ID"].astype(np.int64).tolist())


def catalog_description_hash(catalog: pd.DataFrame) -> str:
    """The same hash the embedding cache keys descriptions by."""
    return hash_strings(catalog["description"].astype(str).tolist())


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's content (every key but the seal itself, canonical JSON)."""
    body = {k: v for k, v in manifest.items() if k != SEAL}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def seal_manifest(manifest: dict) -> dict:
    """``manifest`` with its own hash: an edited parameter is then noticed like an edited array."""
    return {**{k: v for k, v in manifest.items() if k != SEAL}, SEAL: manifest_digest(manifest)}


def is_fitted_manifest(manifest: dict) -> bool:
    """A manifest anirec wrote for a fitted folder (this format, or format 1 before it had a kind)."""
    if manifest.get("kind") == KIND:
        return True
    return manifest.get("format") == 1 and {"anirec_version", "method", "params", "files", "arrays"} <= set(manifest)


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
    so anything else there, an export or a project with its own manifest.json, would be lost)."""
    return check_replaceable_dir(folder, "a fitted recommender", is_fitted_manifest)


def _array_spec(value: np.ndarray, method: str, name: str) -> dict:
    if not _ARRAY_NAME.match(name):
        raise AnirecError(f"method {method!r}: state array name {name!r} is not a safe file name.")
    if value.dtype.kind not in "biuf":
        raise AnirecError(f"method {method!r}: state array {name!r} is {value.dtype}, not numbers; it cannot be saved.")
    return {"dtype": value.dtype.str, "shape": [int(n) for n in value.shape]}


def save_fitted(recommender: Recommender, folder: str | Path, catalog: pd.DataFrame, provenance: dict) -> Path:
    """Write ``recommender`` (fitted on ``catalog``'s rows) to ``folder`` atomically.

    ``provenance`` goes into the manifest as is (catalog path, ratings labels and fingerprint,
    users, fit seconds...)."""
    folder = check_replaceable(folder)
    arrays = {name: np.asarray(value) for name, value in recommender.state().items()}
    specs = {name: _array_spec(value, recommender.name, name) for name, value in sorted(arrays.items())}
    if len(catalog) != recommender.n_items:
        raise AnirecError(f"method fitted on {recommender.n_items} items, catalog has {len(catalog)} rows.")
    described = recommender.describe()
    with atomic_dir(folder) as tmp:
        np.save(tmp / IDS_FILE, catalog["MAL_ID"].to_numpy(np.int64), allow_pickle=False)
        display = catalog[[c for c in DISPLAY_COLUMNS if c in catalog.columns]].reset_index(drop=True)
        display.to_parquet(tmp / CATALOG_FILE, index=False)
        (tmp / STATE_DIR).mkdir()
        for name, value in arrays.items():
            np.save(tmp / STATE_DIR / f"{name}.npy", value, allow_pickle=False)
        files = [IDS_FILE, CATALOG_FILE] + [f"{STATE_DIR}/{name}.npy" for name in sorted(arrays)]
        manifest = {
            "format": FORMAT,
            "kind": KIND,
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
            "array_specs": specs,
            **{k: v for k, v in provenance.items() if k != "catalog"},
            "files": {f: hash_file(tmp / f) for f in files},
        }
        manifest["catalog"].update(provenance.get("catalog", {}))
        text = json.dumps(seal_manifest(manifest), indent=2, sort_keys=False) + "\n"
        (tmp / MANIFEST).write_text(text, encoding="utf-8")
    return folder


def _embedding_reference(info: dict | None) -> dict | None:
    """What identifies the text part's vectors (not how long this run took to get them)."""
    if not info:
        return None
    return {k: info[k] for k in ("model", "resolved", "fingerprint", "max_seq_length", "vocabulary") if k in info}


# ------------------------------------------------------------------ reading, verified


def _refuse(where, problem: str):
    raise AnirecError(f"{where}: {problem}. {_REMAKE}")


def _own_file(folder: Path, name: str) -> Path:
    """``folder/name`` when every part of it is inside the folder, no symbolic link among them,
    and it is a regular file; else one AnirecError (never opening anything)."""
    path = folder
    for part in name.split("/"):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            _refuse(path, "missing; the fitted folder is partial")
        if stat.S_ISLNK(mode):
            _refuse(path, "is a symbolic link; a fitted folder is read only from its own files")
    if not stat.S_ISREG(mode):
        _refuse(path, "is not a regular file")
    return path


def _check_type(value, kind, where, key: str) -> None:
    ok = (isinstance(value, int) and not isinstance(value, bool)) if kind == "int" else isinstance(value, kind)
    if not ok:
        wanted = {"int": "an integer", str: "a string", dict: "an object", list: "a list", bool: "true or false"}[kind]
        _refuse(where, f"{key!r} is {json.dumps(value)[:40]}, not {wanted}")


def _check_manifest(manifest: dict, path: Path) -> None:
    """Every key loading reads is there with its type; the arrays have safe names and specs;
    the files are exactly the layout's."""
    for key, kind in _MANIFEST_TYPES.items():
        if key not in manifest:
            _refuse(path, f"has no {key!r}")
        _check_type(manifest[key], kind, path, key)
    for key, kind in _CATALOG_TYPES.items():
        if key not in manifest["catalog"]:
            _refuse(path, f"has no 'catalog.{key}'")
        _check_type(manifest["catalog"][key], kind, path, f"catalog.{key}")
    if not (manifest.get("embedding") is None or isinstance(manifest["embedding"], dict)):
        _check_type(manifest["embedding"], dict, path, "embedding")
    arrays, specs = manifest["arrays"], manifest["array_specs"]
    if manifest["n_items"] < 0 or len(set(map(str, arrays))) != len(arrays) or set(specs) != set(map(str, arrays)):
        _refuse(path, "'n_items', 'arrays' and 'array_specs' do not agree")
    for name in arrays:
        if not isinstance(name, str) or not _ARRAY_NAME.match(name):
            _refuse(path, f"array name {json.dumps(name)[:40]} is not a file name of a fitted folder")
        spec = specs[name]
        if not (isinstance(spec, dict) and isinstance(spec.get("dtype"), str) and isinstance(spec.get("shape"), list)
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in spec["shape"])):
            _refuse(path, f"'array_specs.{name}' is not a dtype and a shape")
    expected = {IDS_FILE, CATALOG_FILE} | {f"{STATE_DIR}/{name}.npy" for name in arrays}
    files = manifest["files"]
    if set(files) != expected:
        odd = sorted(set(files) ^ expected)[0]
        _refuse(path, f"lists {odd[:80]!r}, which is {'not ' if odd in files else 'missing from '}the files of a "
                      "fitted folder")
    for name, digest in files.items():
        if not isinstance(digest, str) or not _SHA256.match(digest):
            _refuse(path, f"the hash of {name} is not a sha256")


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a fitted folder: checked to exist, be unedited, of this format and kind,
    and have every key loading reads, with its type."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnirecError(f"--recommender {folder}: no such folder. Make one with `anirec fit ... --out {folder}`.")
    path = folder / MANIFEST
    if not path.exists() and not path.is_symlink():
        raise AnirecError(f"{path}: missing; {folder} is not a whole fitted recommender. {_REMAKE}")
    _own_file(folder, MANIFEST)
    if path.stat().st_size > _MAX_MANIFEST_BYTES:
        _refuse(path, "is too large to be a manifest")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _refuse(path, f"unreadable ({exc})")
    if not isinstance(manifest, dict) or "format" not in manifest:
        _refuse(path, "not an anirec fitted-recommender manifest")
    if manifest["format"] != FORMAT:
        raise AnirecError(f"{path}: folder format {json.dumps(manifest['format'])[:20]}, this anirec reads format "
                          f"{FORMAT}. Refit with `anirec fit`.")
    if manifest.get("kind") != KIND:
        _refuse(path, "not an anirec fitted-recommender manifest")
    if manifest.get(SEAL) != manifest_digest(manifest):
        _refuse(path, f"edited since anirec wrote it (its {SEAL} does not match its content)")
    _check_manifest(manifest, path)
    return manifest


def _verified_files(folder: Path, manifest: dict) -> None:
    for name, digest in manifest["files"].items():
        if hash_file(_own_file(folder, name)) != digest:
            _refuse(folder / name, "sha256 differs from the manifest (corrupted or edited)")


def _load_array(path: Path, spec: dict) -> np.ndarray:
    """A numeric array of the recorded dtype and shape (never unpickled)."""
    try:
        value = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        _refuse(path, f"not a readable array ({' '.join(str(exc).split())[:120]})")
    if not isinstance(value, np.ndarray):  # an .npz archive under an .npy name
        value.close()
        _refuse(path, "not a single array")
    if value.dtype.kind not in "biuf" or value.dtype.str != spec["dtype"] or list(value.shape) != spec["shape"]:
        _refuse(path, f"holds a {value.dtype} array of shape {value.shape}, the manifest says {spec['dtype']} "
                      f"{tuple(spec['shape'])}")
    return value


def _load_display(folder: Path, manifest: dict) -> tuple[np.ndarray, pd.DataFrame]:
    """The item ids and the display catalog, checked against each other and the manifest."""
    ids = _load_array(folder / IDS_FILE, {"dtype": "<i8", "shape": [manifest["n_items"]]})
    try:
        display = pd.read_parquet(folder / CATALOG_FILE)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        _refuse(folder / CATALOG_FILE, f"not a readable parquet file ({type(exc).__name__})")
    missing = [c for c in DISPLAY_REQUIRED if c not in display.columns]
    if missing:
        _refuse(folder / CATALOG_FILE, f"has no {missing[0]!r} column")
    shown = pd.to_numeric(display["MAL_ID"], errors="coerce").to_numpy(np.float64)
    if len(display) != len(ids) or not np.array_equal(shown, ids.astype(np.float64)):
        _refuse(folder, f"{IDS_FILE} and {CATALOG_FILE} disagree with the manifest")
    return ids, display.assign(MAL_ID=ids)


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


def _restored(folder: Path, manifest: dict, arrays: dict, served: pd.DataFrame) -> Recommender:
    """The method restored from its arrays, and asked once for a recommendation and a neighbour:
    arrays that do not fit each other are refused here, not at the first real query."""
    import scipy.sparse as sp

    recommender = make(manifest["method"], manifest["params"], where=f"{folder / MANIFEST}")
    try:
        recommender.restore(arrays, served)
        n = recommender.n_items
        if n == len(served) and n > 0:  # (cheap: one user who liked nothing; the first and last item)
            nobody, ends = sp.csr_matrix((1, n), dtype=np.float32), np.unique([0, n - 1])
            recommender.recommend(nobody, 1)
            recommender.recommend(nobody, 1, candidates=ends)
            recommender.similar_items(ends, 1)
    except AnirecError as exc:
        raise AnirecError(f"{folder}: {exc} {_REMAKE}") from None
    except Exception as exc:  # IndexError, ValueError...: the arrays do not describe one fitted method
        _refuse(folder, f"its state arrays do not fit method {manifest['method']!r} "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())[:120]})")
    if recommender.n_items != len(served):
        _refuse(folder, f"method state has {recommender.n_items} items, {IDS_FILE} {len(served)}")
    return recommender


def _load_once(folder: Path, catalog: pd.DataFrame | None, model: str | None) -> FittedRecommender:
    real = Path(os.path.realpath(folder))
    manifest = read_manifest(real)
    _verified_files(real, manifest)
    ids, display = _load_display(real, manifest)
    if catalog is not None:
        _check_catalog(real, manifest, catalog)
    if model is not None:
        _check_model(real, manifest, model)
    specs = manifest["array_specs"]
    arrays = {name: _load_array(real / STATE_DIR / f"{name}.npy", specs[name]) for name in manifest["arrays"]}
    served = catalog.reset_index(drop=True) if catalog is not None else display
    if catalog is not None and RATINGS_COLUMN in display:  # the fitted data's counts go with any catalog
        served = served.assign(**{RATINGS_COLUMN: display[RATINGS_COLUMN].to_numpy()})
    return FittedRecommender(_restored(real, manifest, arrays, served), manifest, served, folder)


def _identity(folder: Path):
    """What changes when a write replaces the folder (the folder's inode, the manifest's mtime)."""
    try:
        st, m = os.stat(folder), os.stat(folder / MANIFEST)
    except OSError:
        return None
    return st.st_dev, st.st_ino, m.st_mtime_ns


def _replaced_meanwhile(folder: Path, before) -> bool:
    """Whether a read that began at ``before`` may have met a write replacing the folder; while
    a writer holds the folder's lock and it is missing (mid-swap), waits a moment for it."""
    deadline = time.monotonic() + 5.0
    while _identity(folder) is None and lock_holder(folder) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _identity(folder) != before


def load_fitted(folder: str | Path, catalog: pd.DataFrame | None = None, model: str | None = None) -> FittedRecommender:
    """Load a folder written by :func:`save_fitted`, verified (see the module doc).

    ``catalog``: the catalog the caller means to use; refused if the folder was made for
    another one. ``model``: a text model name/path; refused if it is not the one recorded.
    A folder that a refit replaced while it was read is read again, once."""
    folder = Path(folder).expanduser()
    for attempt in (1, 2):
        before = _identity(folder)
        try:
            fitted = _load_once(folder, catalog, model)
        except (AnirecError, OSError) as exc:
            if attempt == 1 and _replaced_meanwhile(folder, before):
                continue
            if isinstance(exc, AnirecError):
                raise
            raise AnirecError(f"--recommender {folder}: cannot be read ({exc.strerror or exc}).") from None
        if _identity(folder) == before:
            return fitted
    holder = lock_holder(folder) or "another process"
    raise AnirecError(f"--recommender {folder}: replaced twice while being read ({holder} is writing it). "
                      "Try again when it has finished.")
