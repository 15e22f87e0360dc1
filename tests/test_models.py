"""Embedders by name or path."""

from __future__ import annotations

import pytest

from anirec.errors import AnirecError
from anirec.models import load_model, resolve_model


def test_resolve_order(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIREC_MODELS", str(tmp_path / "models"))
    (tmp_path / "models" / "my-model").mkdir(parents=True)
    local = tmp_path / "elsewhere"
    local.mkdir()
    assert resolve_model(str(local)) == str(local)  # 1. a path
    assert resolve_model("my-model") == str(tmp_path / "models" / "my-model")  # 2. ANIREC_MODELS/NAME
    assert resolve_model("sentence-transformers/my-model") == str(tmp_path / "models" / "my-model")
    assert resolve_model("sentence-transformers/all-mpnet-base-v2") == "all-mpnet-base-v2"  # 3. hub id


def test_load_by_name_from_models_dir(minilm_path, monkeypatch):
    monkeypatch.setenv("ANIREC_MODELS", str(minilm_path.parent))
    m = load_model("sentence-transformers/all-MiniLM-L6-v2", max_seq_length=200)
    assert m.max_seq_length == 200
    assert m.encode(["hello"]).shape == (1, 384)


def test_missing_model_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIREC_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AnirecError) as exc:
        load_model("no-such-model-xyz")
    msg = str(exc.value)
    assert str(tmp_path / "models" / "no-such-model-xyz") in msg
    assert "hub id 'no-such-model-xyz'" in msg and "offline-models" in msg


def test_max_seq_length_above_model_limit(tiny_model_path):
    with pytest.raises(AnirecError, match=r"above what model .* supports \(512 tokens\)"):
        load_model(str(tiny_model_path), max_seq_length=1024)
