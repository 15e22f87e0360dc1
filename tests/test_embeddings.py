"""The embedding store: normalised vectors, cache hits, and no stale vectors after any input changes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from helpers import cli_exit_code as main

from anirec import embeddings as E




@pytest.fixture(scope="module")
def small_catalog(mal_catalog):
    """30 real catalog rows (short enough to encode with the tiny model in well under a second)."""
    return mal_catalog[0].iloc[:30].reset_index(drop=True)


@pytest.fixture()
def tiny_copy(tiny_model_path, tmp_path):
    """A private copy of the tiny model, so a test may change its weights."""
    dest = tmp_path / "tiny-copy"
    shutil.copytree(tiny_model_path, dest)
    return dest


def _entries(cache_dir):
    return sorted(p.name for p in cache_dir.glob("*.npy"))


def test_encode_then_cache_hit(small_catalog, tiny_model_path, tmp_path, monkeypatch):
    first = E.load_or_embed(small_catalog, str(tiny_model_path), cache_dir=tmp_path, show_progress=False)
    assert not first.cache_hit and first.cache_path.exists()
    v = first.vectors
    assert v.dtype == np.float32 and v.shape == (len(small_catalog), 32)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)

    # The second run must not even load the model.
    monkeypatch.setattr(E, "load_model", lambda *a, **k: pytest.fail("model loaded on a cache hit"))
    second = E.load_or_embed(small_catalog, str(tiny_model_path), cache_dir=tmp_path, show_progress=False)
    assert second.cache_hit and second.cache_path == first.cache_path
    np.testing.assert_array_equal(second.vectors, v)
    assert "loaded from cache" in E.format_embed_summary(second)
    # embed_catalog (the agreed API) returns the same matrix
    np.testing.assert_array_equal(E.embed_catalog(small_catalog, str(tiny_model_path), cache_dir=tmp_path), v)


def test_changed_catalog_is_never_served_stale_vectors(small_catalog, tiny_model_path, tmp_path):
    base = E.load_or_embed(small_catalog, str(tiny_model_path), cache_dir=tmp_path, show_progress=False)
    changed = small_catalog.copy()
    changed.loc[3, "description"] = "A completely different description about space pirates and cooking."
    again = E.load_or_embed(changed, str(tiny_model_path), cache_dir=tmp_path, show_progress=False)
    assert not again.cache_hit and again.description_hash != base.description_hash
    assert not np.allclose(again.vectors[3], base.vectors[3])
    np.testing.assert_allclose(again.vectors[0], base.vectors[0], atol=1e-5)

    # Same descriptions in another order: rows must follow the new order, not the cached one.
    flipped = small_catalog.iloc[::-1].reset_index(drop=True)
    rev = E.load_or_embed(flipped, str(tiny_model_path), cache_dir=tmp_path, show_progress=False)
    assert not rev.cache_hit
    np.testing.assert_allclose(rev.vectors, base.vectors[::-1], atol=1e-5)
    assert len(_entries(tmp_path)) == 3


def test_max_seq_length_is_part_of_the_key(small_catalog, tiny_model_path, tmp_path):
    full = E.load_or_embed(small_catalog, str(tiny_model_path), cache_dir=tmp_path, show_progress=False)
    short = E.load_or_embed(small_catalog, str(tiny_model_path), max_seq_length=16, cache_dir=tmp_path, show_progress=False)
    assert not short.cache_hit and short.max_seq_length == 16
    assert not np.allclose(short.vectors, full.vectors)  # descriptions are far longer than 16 tokens
    assert E.load_or_embed(small_catalog, str(tiny_model_path), max_seq_length=16, cache_dir=tmp_path).cache_hit


def test_changed_weights_invalidate(small_catalog, tiny_copy, tmp_path):
    from safetensors.torch import load_file, save_file

    cache = tmp_path / "cache"
    before = E.load_or_embed(small_catalog, str(tiny_copy), cache_dir=cache, show_progress=False)
    weights = tiny_copy / "model.safetensors"
    tensors = load_file(weights)
    name = next(n for n in tensors if "word_embeddings" in n)
    tensors[name] = tensors[name] + 0.5
    save_file(tensors, weights)
    after = E.load_or_embed(small_catalog, str(tiny_copy), cache_dir=cache, show_progress=False)
    assert not after.cache_hit and after.model_fingerprint != before.model_fingerprint
    assert not np.allclose(after.vectors, before.vectors)


def test_weight_hashes_are_memoised_on_disk(tiny_model_path, tmp_path, monkeypatch):
    from anirec import cache

    first = cache.model_fingerprint(str(tiny_model_path), tmp_path)
    assert (tmp_path / "fingerprints.json").exists()
    # A new process (empty in-memory memo) must not hash the files again.
    monkeypatch.setattr(cache, "_file_hash_memo", {})
    monkeypatch.setattr(cache, "hash_file", lambda p: pytest.fail(f"re-hashed {p}"))
    assert cache.model_fingerprint(str(tiny_model_path), tmp_path) == first
    assert cache.model_fingerprint("some-org/some-hub-model", tmp_path) == "hub:some-org/some-hub-model"


def test_cache_dir_from_environment(small_catalog, tiny_model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("ANIREC_CACHE", str(tmp_path / "env-cache"))
    assert E.default_cache_dir() == tmp_path / "env-cache"
    res = E.load_or_embed(small_catalog.iloc[:4], str(tiny_model_path), show_progress=False)
    assert res.cache_path.parent == tmp_path / "env-cache"


def test_corrupt_entry_is_encoded_again(small_catalog, tiny_model_path, tmp_path, capsys):
    first = E.load_or_embed(small_catalog.iloc[:5], str(tiny_model_path), cache_dir=tmp_path, show_progress=False)
    first.cache_path.write_bytes(b"not a numpy file")
    again = E.load_or_embed(small_catalog.iloc[:5], str(tiny_model_path), cache_dir=tmp_path, show_progress=False)
    assert not again.cache_hit and "unreadable" in capsys.readouterr().err
    np.testing.assert_allclose(again.vectors, first.vectors, atol=1e-5)


def test_cli_embed_reports_miss_then_hit(small_catalog, tiny_model_path, tmp_path, capsys):
    catalog = tmp_path / "catalog.parquet"
    small_catalog.iloc[:8].to_parquet(catalog)
    args = ["embed", "--model", str(tiny_model_path), "--catalog", str(catalog), "--cache-dir", str(tmp_path / "c"), "--no-progress"]
    assert main(args) == 0
    assert "encoded 8 descriptions" in capsys.readouterr().out
    assert main(args) == 0
    assert "loaded from cache" in capsys.readouterr().out


def test_missing_model_is_a_clear_error(small_catalog, tmp_path, capsys):
    catalog = tmp_path / "catalog.parquet"
    small_catalog.iloc[:3].to_parquet(catalog)
    code = main(["embed", "--model", str(tmp_path / "no-such-model"), "--catalog", str(catalog), "--cache-dir", str(tmp_path)])
    assert code == 2
    assert "not found" in capsys.readouterr().err
