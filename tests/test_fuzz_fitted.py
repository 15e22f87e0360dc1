"""Property-based: fitted folders with fuzzed manifests and fuzzed state arrays, served by
`recommend --recommender`, exit 0 or exit 2 with one `anirec: error:` line; never a traceback,
and never a file hashed outside the folder (issue 19, bugs 12-14).

Each example copies a folder fitted once per module, edits it, and half the time "reseals" it
the way a crafted folder's author would (every hash it records made true again, see
tests/test_reliability_fitted.py), so the edit reaches the checks behind the hashes. Runs
in-process, derandomised; explore further with ANIREC_FUZZ_EXAMPLES=200.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import anirec.fitted
from anirec.fitted import MANIFEST, STATE_DIR

from helpers import run_cli, write_tiny_mal
from test_fuzz_cli import check_outcome, fuzz_settings
from test_reliability_fitted import reseal

METHODS = ["ease", "popular", "itemknn", "text", "hybrid", "random"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from anirec.build import build_catalog
    from anirec.fitting import FitMethod, fit_to_folder

    root = tmp_path_factory.mktemp("fuzz-fitted")
    mal = write_tiny_mal(root / "mal", n_anime=6, n_users=40)
    catalog = build_catalog(mal, root / "catalog.parquet").out
    for method in METHODS:
        fit_to_folder(FitMethod(method, {}), str(mal), catalog, root / method, progress=False)
    return root


def serve(capsys, monkeypatch, folder: Path) -> None:
    """`recommend --recommender folder` (a title query and a liked-titles query): one of the two
    promised outcomes, and every file hashed lies inside the folder."""
    hashed = []
    real_hash = anirec.fitted.hash_file
    inside = os.path.realpath(folder) + os.sep
    with monkeypatch.context() as m:
        m.setattr(anirec.fitted, "hash_file", lambda p, *a, **k: hashed.append(os.path.realpath(p)) or real_hash(p, *a, **k))
        for query in (["--id", "1"], ["--likes", "Show 2"]):
            code, out, err = run_cli(capsys, "recommend", "--recommender", folder, *query, "-k", "3", "--json")
            check_outcome(code, out, err, [])
    assert all(p.startswith(inside) for p in hashed), hashed


def copy_of(fitted: Path, method: str) -> tuple[tempfile.TemporaryDirectory, Path]:
    tmp = tempfile.TemporaryDirectory(prefix="anirec-fuzz-fitted-")
    return tmp, Path(shutil.copytree(fitted / method, Path(tmp.name) / method, symlinks=True))


# ------------------------------------------------------------------ manifests

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["../../etc/passwd", "/etc/passwd", "state/../x.npy", "<f4", "ease", "0" * 64]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def edit_manifest(manifest: dict, data) -> None:
    """One edit at a random place: replace a value, delete a key or item, or add a key."""
    node, key = manifest, data.draw(st.sampled_from(sorted(manifest)))
    while isinstance(node[key], (dict, list)) and node[key] and data.draw(st.booleans()):
        node = node[key]
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
    action = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]))
    if action == "replace":
        node[key] = data.draw(JSON_VALUES)
    elif action == "delete":
        del node[key]
    elif isinstance(node, dict):
        node[data.draw(st.text(max_size=10))] = data.draw(JSON_VALUES)
    else:
        node.append(data.draw(JSON_VALUES))


@fuzz_settings(30)
@given(method=st.sampled_from(METHODS), data=st.data(), sealed=st.booleans())
def test_fuzzed_manifests_load_or_are_refused_in_one_line(fitted, capsys, monkeypatch, method, data, sealed):
    tmp, folder = copy_of(fitted, method)
    with tmp:
        manifest = json.loads((folder / MANIFEST).read_text())
        for _ in range(data.draw(st.integers(1, 3))):
            edit_manifest(manifest, data)
        if sealed:
            reseal(folder, manifest, rehash=data.draw(st.booleans()))
        else:
            (folder / MANIFEST).write_text(json.dumps(manifest))
        serve(capsys, monkeypatch, folder)


# ------------------------------------------------------------------ state arrays and the other files

ARRAYS = st.one_of(
    hnp.arrays(st.sampled_from([np.int8, np.int32, np.int64, np.uint16, np.float16, np.float32, np.float64, np.bool_]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7)),
    hnp.arrays(st.sampled_from([np.complex64, "U3", "S2"]), hnp.array_shapes(max_dims=2, max_side=4)),
    st.just(np.array([{"a": 1}, None], dtype=object)),
)


@st.composite
def file_damage(draw, names: list[str]):
    name = draw(st.sampled_from(names))
    kind = draw(st.sampled_from(["array", "array", "truncate", "flip", "garbage", "empty"]))
    payload = draw(ARRAYS) if kind == "array" else draw(st.integers(0, 10**6))
    return name, kind, payload


def damage_file(path: Path, kind: str, payload) -> None:
    data = path.read_bytes()
    if kind == "array":
        with open(path, "wb") as f:
            np.save(f, payload, allow_pickle=True)
    elif kind == "truncate":
        path.write_bytes(data[: payload % max(len(data), 1)])
    elif kind == "flip" and data:
        i = payload % len(data)
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(payload).bytes(payload % 4096))
    else:
        path.write_bytes(b"")


@fuzz_settings(30)
@given(method=st.sampled_from(METHODS), data=st.data(), sealed=st.booleans(), shapes=st.booleans())
def test_fuzzed_state_arrays_load_or_are_refused_in_one_line(fitted, capsys, monkeypatch, method, data, sealed, shapes):
    tmp, folder = copy_of(fitted, method)
    with tmp:
        names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
        for name, kind, payload in data.draw(st.lists(file_damage(names), min_size=1, max_size=3)):
            damage_file(folder / name, kind, payload)
        if sealed:
            reseal(folder, shapes=shapes)
        serve(capsys, monkeypatch, folder)


def test_the_fuzzed_methods_have_state(fitted):
    """The state fuzzing has arrays to damage (random keeps none: its folder is ids and catalog)."""
    for method in METHODS:
        arrays = json.loads((fitted / method / MANIFEST).read_text())["arrays"]
        assert (len(arrays) > 0) == (method != "random"), (method, arrays)
        assert all((fitted / method / STATE_DIR / f"{a}.npy").is_file() for a in arrays)
