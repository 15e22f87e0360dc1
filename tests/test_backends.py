"""Inference backends (torch, onnx, onnx-int8, openvino), the static distilled model, threads."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from helpers import expect_user_error, run_cli

from anirec import backends as B
from anirec import cache
from anirec import embeddings as E
from anirec import models as M
from anirec.errors import AnirecError


@pytest.fixture(scope="module")
def rows(mal_catalog):
    """12 real catalog rows, long and short descriptions mixed (padding inside a batch)."""
    return mal_catalog[0].iloc[:12].reset_index(drop=True)


@pytest.fixture()
def catalog_file(rows, tmp_path):
    path = tmp_path / "catalog.parquet"
    rows.to_parquet(path)
    return path


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# --------------------------------------------------------------------------- names, extras, threads


def test_backend_names_are_checked_in_one_place():
    assert B.check_backend("ONNX-int8") == "onnx-int8"
    with pytest.raises(AnirecError, match="choose one of torch, onnx, onnx-int8, openvino"):
        B.check_backend("tensorrt")


def test_unknown_backend_on_the_cli_is_one_line(catalog_file, tiny_model_path, tmp_path, capsys):
    err = expect_user_error(capsys, "embed", "--model", tiny_model_path, "--catalog", catalog_file,
                            "--cache-dir", tmp_path, "--backend", "tensorrt")
    assert "--backend 'tensorrt'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("backend,module,extra", [("onnx", "onnxruntime", "onnx"), ("onnx-int8", "onnxruntime", "onnx"),
                                                  ("openvino", "openvino", "openvino")])
def test_missing_extra_is_one_line_naming_the_install(backend, module, extra, catalog_file, tiny_model_path, tmp_path,
                                                      capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    for command in ("embed", "export", "recommend"):
        args = [command, "--model", tiny_model_path, "--catalog", catalog_file, "--cache-dir", tmp_path, "--backend", backend]
        args += {"export": ["--out", tmp_path / "out"], "recommend": ["--id", "1"]}.get(command, [])
        err = expect_user_error(capsys, *args)
        assert len(err.strip().splitlines()) == 1, err
        assert f"pip install 'anirec[{extra}]'" in err and module in err
    assert not (tmp_path / "out").exists()


def test_missing_extra_in_an_eval_config_fails_before_any_work(tmp_path, monkeypatch):
    from anirec import evaluation as ev

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    cfg = tmp_path / "eval.toml"
    cfg.write_text('catalog = "c.parquet"\nbackend = "torch"\n[[models]]\nname = "q"\nmodel = "m"\nbackend = "onnx-int8"\n')
    loaded = ev.load_config(cfg)
    assert loaded.models[0].params["backend"] == "onnx-int8"
    with pytest.raises(AnirecError, match=r"eval\.toml.*pip install 'anirec\[onnx\]'"):
        loaded.check()
    cfg.write_text('catalog = "c.parquet"\nbackend = "fast"\nbaselines = ["tfidf"]\n[[models]]\nmodel = "m"\n')
    with pytest.raises(AnirecError, match="'fast': unknown backend"):
        ev.load_config(cfg).check()
    # the top-level backend reaches models without their own, and never TF-IDF
    cfg.write_text('catalog = "c.parquet"\nbackend = "openvino"\nbaselines = ["tfidf"]\n[[models]]\nmodel = "m"\n'
                   '[[models]]\nname = "t"\nmodel = "m"\nbackend = "torch"\n')
    specs = {s.name: s.params for s in ev.load_config(cfg).method_specs()}
    assert specs["m"]["backend"] == "openvino" and specs["t"]["backend"] == "torch" and "backend" not in specs["tfidf"]


def test_threads_from_the_machine_with_an_override(monkeypatch):
    import os

    monkeypatch.delenv("ANIREC_THREADS", raising=False)
    assert B.cpu_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("ANIREC_THREADS", "1")
    import torch

    assert B.set_threads() == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("ANIREC_THREADS", "two")
    with pytest.raises(AnirecError, match="ANIREC_THREADS"):
        B.cpu_threads()
    monkeypatch.setenv("ANIREC_THREADS", str(len(os.sched_getaffinity(0))))
    B.set_threads()


# --------------------------------------------------------------------------- onnx / openvino on the tiny model


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8", "openvino"])
def test_backend_vectors_match_torch(backend, rows, tiny_model_path, tmp_path):
    pytest.importorskip("openvino" if backend == "openvino" else "onnxruntime")
    ref = E.load_or_embed(rows, str(tiny_model_path), 64, cache_dir=tmp_path, show_progress=False)
    got = E.load_or_embed(rows, str(tiny_model_path), 64, cache_dir=tmp_path, show_progress=False, backend=backend)
    assert not got.cache_hit and got.backend == backend and got.vectors.shape == ref.vectors.shape
    cos = _cosines(got.vectors, ref.vectors)
    assert cos.min() > (0.99 if backend == "onnx-int8" else 0.9999), cos
    if backend == "onnx-int8":  # quantized: close, but really different weights
        assert not np.allclose(got.vectors, ref.vectors, atol=1e-6)
    # a different entry from torch's, and served from the cache the second time
    assert got.cache_path != ref.cache_path and backend in got.cache_path.name
    assert E.load_or_embed(rows, str(tiny_model_path), 64, cache_dir=tmp_path, show_progress=False, backend=backend).cache_hit


def test_cache_key_differs_per_backend_and_torch_keys_are_unchanged():
    args = ("/m", "fp", 256, "dh")
    keys = {b: E.cache_key(*args, backend=b) for b in B.BACKENDS}
    assert len(set(keys.values())) == len(B.BACKENDS)
    assert keys["torch"] == E.cache_key(*args)  # caches made before backends existed still hit


def test_export_is_cached_beside_the_embedding_cache_and_reused(tiny_model_path, tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    model = M.load_model(str(tiny_model_path), backend="onnx-int8", cache_dir=tmp_path)
    folder = cache.export_dir(str(tiny_model_path), tmp_path)
    assert folder.parent == tmp_path / "backends"
    assert (folder / "model.onnx").exists() and (folder / "model-int8.onnx").exists()
    assert "exporting" in capsys.readouterr().err
    assert model.encode(["a test"]).shape == (1, 32)
    monkeypatch.setattr(B, "export_onnx", lambda *a: pytest.fail("exported again"))
    monkeypatch.setattr(B, "quantize_int8", lambda *a: pytest.fail("quantized again"))
    M.load_model(str(tiny_model_path), backend="onnx-int8", cache_dir=tmp_path)
    M.load_model(str(tiny_model_path), backend="onnx", cache_dir=tmp_path)
    assert "exporting" not in capsys.readouterr().err


def test_corrupt_export_is_a_clear_error(tiny_model_path, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    folder = cache.export_dir(str(tiny_model_path), tmp_path)
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(AnirecError, match="delete .* to export again"):
        M.load_model(str(tiny_model_path), backend="onnx", cache_dir=tmp_path)


def test_cli_embed_and_recommend_with_a_backend(catalog_file, rows, tiny_model_path, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    args = ["--model", tiny_model_path, "--catalog", catalog_file, "--cache-dir", tmp_path, "--no-progress", "--backend", "onnx-int8"]
    code, out, err = run_cli(capsys, "embed", *args)
    assert code == 0 and "backend onnx-int8" in out and "encoded 12" in out, err
    code, out, err = run_cli(capsys, "recommend", "--id", str(rows["MAL_ID"].iat[0]), "-k", "3", "--json", *args)
    assert code == 0 and '"backend": "onnx-int8"' in out and '"cache_hit": true' in out, err
    code, out, err = run_cli(capsys, "export", "--format", "npy", "--out", tmp_path / "exp", *args)
    manifest = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    assert code == 0 and manifest["backend"] == "onnx-int8" and "loaded from cache" in out, err


# --------------------------------------------------------------------------- static (model2vec)


@pytest.fixture(scope="module")
def static_dir(tiny_model_path, tmp_path_factory):
    pytest.importorskip("model2vec")
    from anirec.distill import distill_model

    out = tmp_path_factory.mktemp("static") / "tiny-static"
    # 30k tiny forward passes: one thread avoids OpenMP spinning on a busy 2-core machine (3 s, not 30 s)
    mp = pytest.MonkeyPatch()
    mp.setenv("ANIREC_THREADS", "1")
    try:
        info = distill_model(str(tiny_model_path), out, pca_dims=16, echo=lambda m: None)
    finally:
        mp.undo()
    assert info["dims"] == 16
    return out


def test_distilled_folder_works_wherever_a_model_path_does(static_dir, catalog_file, rows, tmp_path, capsys):
    code, out, err = run_cli(capsys, "embed", "--model", static_dir, "--catalog", catalog_file, "--cache-dir", tmp_path,
                             "--no-progress", "--max-seq-length", "256")
    assert code == 0 and f"encoded {len(rows)} descriptions" in out and "16 dims" in out, err
    e = E.load_or_embed(rows, str(static_dir), 256, cache_dir=tmp_path, show_progress=False)
    assert e.cache_hit and e.vectors.shape == (len(rows), 16)
    np.testing.assert_allclose(np.linalg.norm(e.vectors, axis=1), 1.0, atol=1e-5)
    # distinct texts get distinct vectors (not a constant model)
    assert np.unique(e.vectors.round(4), axis=0).shape[0] == len(rows)


def test_static_model_honours_max_seq_length(static_dir):
    model = M.load_model(str(static_dir), max_seq_length=4)
    words = "pirates ninjas robots dragons cooking school"
    np.testing.assert_allclose(model.encode([words]), model.encode(["pirates ninjas robots dragons"]), atol=1e-6)


def test_static_model_refuses_an_export_backend(static_dir, catalog_file, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    err = expect_user_error(capsys, "embed", "--model", static_dir, "--catalog", catalog_file, "--cache-dir", tmp_path,
                            "--backend", "onnx")
    assert "no transformer encoder to export" in err and len(err.strip().splitlines()) == 1


def test_distill_errors_are_one_line(tiny_model_path, tmp_path, capsys, monkeypatch):
    err = expect_user_error(capsys, "distill", "--model", tmp_path / "missing-model", "--out", tmp_path / "s")
    assert "not found" in err and len(err.strip().splitlines()) == 1
    err = expect_user_error(capsys, "distill", "--model", tiny_model_path, "--out", tmp_path / "s", "--pca-dims", "1")
    assert "--pca-dims 1" in err
    (tmp_path / "a-file").write_text("x")
    err = expect_user_error(capsys, "distill", "--model", tiny_model_path, "--out", tmp_path / "a-file")
    assert "--out" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setitem(sys.modules, "model2vec", None)
    monkeypatch.setitem(sys.modules, "model2vec.distill", None)
    err = expect_user_error(capsys, "distill", "--model", tiny_model_path, "--out", tmp_path / "s")
    assert "pip install 'anirec[static]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_fit_backend_sets_the_text_parameter_and_recommender_folders_refuse_it(tmp_path, capsys):
    from anirec.fitting import method_spec

    assert method_spec("text", None, None, "m", None, "onnx-int8").params["backend"] == "onnx-int8"
    assert "backend" not in method_spec("text", None, None, "m", None, None).params
    with pytest.raises(AnirecError, match="--backend: method 'ease' reads no text"):
        method_spec("ease", None, None, None, None, "onnx")
    err = expect_user_error(capsys, "recommend", "--recommender", tmp_path, "--likes", "Naruto", "--backend", "onnx")
    assert "--backend does not apply with --recommender" in err
