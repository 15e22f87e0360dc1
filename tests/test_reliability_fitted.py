"""Issue 19, fitted folders: a crafted or damaged folder is one line and exit 2, and can never make
anirec read or hash a file outside it (bugs 12, 13 and 14, numbered as in the issue).

"Resealing" below plays a crafted folder's author: after an edit it writes every hash the
manifest records again (files, array shapes, the manifest's own), so the edit reaches the
checks behind the hashes instead of stopping at the first wrong hash.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import anirec.fitted
from anirec.fitted import MANIFEST, STATE_DIR
from anirec.io import hash_file

from helpers import expect_user_error, run_cli, write_tiny_mal
from test_reliability import one_error_line


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A tiny catalog and one fitted folder per method that has state, made once."""
    from anirec.build import build_catalog
    from anirec.fitting import FitMethod, fit_to_folder

    root = tmp_path_factory.mktemp("fitted")
    mal = write_tiny_mal(root / "mal")
    catalog = build_catalog(mal, root / "catalog.parquet").out
    for method in ("ease", "popular", "hybrid", "itemknn", "text"):
        fit_to_folder(FitMethod(method, {}), str(mal), catalog, root / method, progress=False)
    return root, catalog


@pytest.fixture
def folder(made, tmp_path):
    """A fresh copy of the EASE folder for one test to damage."""
    import shutil

    root, _ = made
    return Path(shutil.copytree(root / "ease", tmp_path / "ease"))


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def reseal(folder: Path, manifest: dict | None = None, shapes: bool = False, rehash: bool = True) -> None:
    """Write ``manifest`` (default: the folder's) with every hash it records made true again
    (``rehash=False``: the file hashes as they are); ``shapes``: also record the state arrays'
    current dtype and shape, where they still load."""
    manifest = manifest_of(folder) if manifest is None else manifest
    files = manifest.get("files")
    if isinstance(files, dict) and rehash:
        for name in files:
            path = folder / name
            if path.is_file():
                files[name] = hash_file(path)
    specs = manifest.get("array_specs")
    if shapes and isinstance(specs, dict):
        for name in specs:
            header = _npy_header(folder / STATE_DIR / f"{name}.npy")
            if header is not None:  # (unreadable: its recorded shape stays)
                specs[name] = header
    seal = getattr(anirec.fitted, "seal_manifest", None)  # the manifest's own hash (none before issue 19)
    if seal is not None and isinstance(manifest, dict):
        manifest = seal(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _npy_header(path: Path) -> dict | None:
    """The dtype and shape an .npy file's header declares (its data is never read, nor unpickled)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
    except Exception:  # truncated or not an .npy at all
        return None
    return {"dtype": dtype.str, "shape": list(shape)}


def refused(capsys, folder: Path, *extra) -> str:
    err = expect_user_error(capsys, "recommend", "--recommender", folder, "--id", "1", "-k", "3", *extra)
    return one_error_line(err)


def test_an_untouched_folder_loads(made, capsys):
    root, _ = made
    for method in ("ease", "popular", "hybrid", "itemknn", "text"):
        code, out, err = run_cli(capsys, "recommend", "--recommender", root / method, "--id", "1", "-k", "3", "--json")
        assert code == 0, err
        assert json.loads(out)["method"] == method


# ------------------------------------------------------------------ 12. nothing outside the folder


def _outside_copy(folder: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / "outside" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes((folder / name).read_bytes())
    return target


@pytest.mark.parametrize("craft", ["absolute", "dot-dot", "state-symlink", "state-folder-symlink", "array-name",
                                   "manifest-symlink"])
def test_a_manifest_cannot_make_anirec_read_outside_its_folder(folder, tmp_path, capsys, monkeypatch, craft):
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    manifest = manifest_of(folder)
    if craft == "absolute":
        manifest["files"][str(secret)] = hash_file(secret)
    elif craft == "dot-dot":
        manifest["files"]["../secret.txt"] = hash_file(secret)
    elif craft == "state-symlink":
        target = _outside_copy(folder, tmp_path, f"{STATE_DIR}/weights.npy")
        (folder / STATE_DIR / "weights.npy").unlink()
        (folder / STATE_DIR / "weights.npy").symlink_to(target)
    elif craft == "state-folder-symlink":
        import shutil

        shutil.move(folder / STATE_DIR, tmp_path / "outside-state")
        (folder / STATE_DIR).symlink_to(tmp_path / "outside-state", target_is_directory=True)
    elif craft == "array-name":
        manifest["arrays"].append("../../secret")
        manifest["files"]["state/../../secret.npy"] = hash_file(secret)
    if craft == "manifest-symlink":
        real = tmp_path / "real-manifest.json"
        real.write_text((folder / MANIFEST).read_text())
        (folder / MANIFEST).unlink()
        (folder / MANIFEST).symlink_to(real)
    else:
        reseal(folder, manifest)

    opened = []
    real_hash = anirec.fitted.hash_file
    monkeypatch.setattr(anirec.fitted, "hash_file", lambda path, *a, **k: opened.append(Path(path)) or real_hash(path, *a, **k))
    line = refused(capsys, folder)
    inside = os.path.realpath(folder)
    assert all(os.path.realpath(p).startswith(inside + os.sep) for p in opened), opened
    assert str(folder) in line, line


def test_a_wrong_guess_and_a_right_one_get_the_same_answer(folder, tmp_path, capsys):
    """No oracle: a crafted folder must not learn whether it guessed a file's hash right."""
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    lines = []
    for guess in (hash_file(secret), "0" * 64):
        manifest = manifest_of(folder)
        manifest["files"][str(secret)] = guess
        reseal(folder, manifest)
        manifest = manifest_of(folder)
        manifest["files"][str(secret)] = guess  # reseal rehashed it: put the guess back, then seal again
        seal = getattr(anirec.fitted, "seal_manifest", None)
        (folder / MANIFEST).write_text(json.dumps(seal(manifest) if seal else manifest))
        lines.append(refused(capsys, folder))
    assert lines[0] == lines[1], lines


def test_edited_parameters_are_refused(folder, capsys):
    manifest = manifest_of(folder)
    manifest["params"]["lam"] = 1e9  # the arrays are untouched: only the manifest says something else now
    (folder / MANIFEST).write_text(json.dumps(manifest))
    line = refused(capsys, folder)
    assert f"{folder / MANIFEST}" in line and "edited" in line, line


# ------------------------------------------------------------------ 13. manifest keys and types


def _set(path: list, value):
    def edit(m: dict):
        for key in path[:-1]:
            m = m[key]
        if value is KeyError:
            del m[path[-1]]
        else:
            m[path[-1]] = value
    return edit


MANIFEST_EDITS = {
    "files-list": _set(["files"], ["catalog_ids.npy", "catalog.parquet"]),
    "params-list": _set(["params"], [200.0]),
    "method-list": _set(["method"], ["ease"]),
    "no-n_items": _set(["n_items"], KeyError),
    "n_items-text": _set(["n_items"], "8"),
    "arrays-text": _set(["arrays"], "weights"),
    "catalog-null": _set(["catalog"], None),
    "no-id-hash": _set(["catalog", "id_hash"], KeyError),
    "embedding-text": _set(["embedding"], "tfidf"),
    "hash-number": _set(["files", "catalog_ids.npy"], 7),
    "params-unknown": _set(["params", "alpha"], 1),
    "method-unknown": _set(["method"], "nope"),
}


@pytest.mark.parametrize("edit", list(MANIFEST_EDITS))
def test_a_manifest_with_a_missing_key_or_wrong_type_is_one_line(folder, made, capsys, edit):
    manifest = manifest_of(folder)
    MANIFEST_EDITS[edit](manifest)
    reseal(folder, manifest, rehash=edit != "hash-number")
    refused(capsys, folder, "--catalog", made[1])  # --catalog: the catalog check reads the manifest's catalog too
    refused(capsys, folder, "--model", "tfidf")


def test_a_manifest_that_is_not_an_object_is_one_line(folder, capsys):
    (folder / MANIFEST).write_text("[1, 2, 3]")
    assert f"{folder / MANIFEST}" in refused(capsys, folder)


# ------------------------------------------------------------------ 14. state arrays behind matching hashes


def _replace_array(name: str, value):
    def damage(folder: Path):
        np.save(folder / STATE_DIR / f"{name}.npy", value, allow_pickle=True)
    return damage


def _truncate(name: str):
    def damage(folder: Path):
        path = folder / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return damage


STATE_DAMAGE = {
    "object-array": _replace_array("weights", np.array([{"a": 1}, None], dtype=object)),
    "wrong-dtype": _replace_array("weights", np.zeros((4, 4), np.int64)),
    "wrong-shape": _replace_array("weights", np.zeros(16, np.float32)),
    "text-array": _replace_array("active", np.array(["a", "b"])),
    "truncated-npy": _truncate(f"{STATE_DIR}/weights.npy"),
    "truncated-ids": _truncate("catalog_ids.npy"),
    "truncated-parquet": _truncate("catalog.parquet"),
}


@pytest.mark.parametrize("damage", list(STATE_DAMAGE))
@pytest.mark.parametrize("shapes", [False, True], ids=["shapes-as-written", "shapes-resealed"])
def test_state_arrays_whose_hashes_match_but_content_is_wrong(folder, capsys, damage, shapes):
    STATE_DAMAGE[damage](folder)
    reseal(folder, shapes=shapes)
    line = refused(capsys, folder)
    assert str(folder) in line, line


@pytest.mark.parametrize("arrays", [
    {"weights": np.zeros((3, 3), np.float32)},  # not len(active) x len(active)
    {"active": np.array([0, 1, 10**6], np.int64), "weights": np.zeros((3, 3), np.float32)},  # beyond n_items
    {"active": np.array([-1, 0], np.int64), "weights": np.zeros((2, 2), np.float32)},
    {"n_items": np.array([3], np.int64)},  # fewer items than the folder's catalog
], ids=["weights-not-square-to-active", "active-beyond-items", "negative-active", "n_items-disagrees"])
def test_ease_arrays_that_disagree_with_each_other(folder, capsys, arrays):
    for name, value in arrays.items():
        np.save(folder / STATE_DIR / f"{name}.npy", value)
    reseal(folder, shapes=True)
    line = refused(capsys, folder)
    assert str(folder) in line, line


@pytest.mark.parametrize("method, name, value", [
    ("popular", "counts", np.zeros((2, 2), np.float32)),
    ("itemknn", "rows_indptr", np.array([0, 5, 2], np.int32)),
    ("itemknn", "rows_indices", np.full(4, 10**6, np.int32)),
    ("hybrid", "support", np.zeros(3, np.float32)),
    ("hybrid", "mapping_shape", np.array([8, 999], np.int64)),
    ("itemknn", "neighbors_idx", "first entry 10**6"),  # the saved neighbour table, right shape, a row beyond the items
    ("text", "neighbors_idx", "first entry 10**6"),
])
def test_other_methods_arrays_that_disagree(made, tmp_path, capsys, method, name, value):
    import shutil

    folder = Path(shutil.copytree(made[0] / method, tmp_path / method))
    if isinstance(value, str):
        value = np.load(folder / STATE_DIR / f"{name}.npy")
        value.flat[0] = 10**6
    np.save(folder / STATE_DIR / f"{name}.npy", value)
    reseal(folder, shapes=True)
    line = refused(capsys, folder)
    assert str(folder) in line, line
