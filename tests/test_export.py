"""Every export format round-trips; a manifest that does not match is refused with a reason."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from helpers import cli_exit_code as main

from anirec import __version__
from anirec.embeddings import Embeddings
from anirec.errors import AnirecError
from anirec.export import FORMATS, expectation, export_embeddings, load_export
from anirec.io import hash_strings




@pytest.fixture(scope="module")
def small(mal_catalog):
    cat = mal_catalog[0].iloc[:25].reset_index(drop=True)
    v = np.random.default_rng(3).standard_normal((len(cat), 12)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    emb = Embeddings(v, "/models/some-model", "f" * 64, 256, hash_strings(cat["description"]), False, None, 0.0)
    return cat, emb


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(small, tmp_path, fmt):
    cat, emb = small
    out = export_embeddings(cat, emb, fmt, tmp_path / fmt)
    back = load_export(out, expect=emb)
    np.testing.assert_array_equal(back.ids, cat["MAL_ID"].to_numpy())
    np.testing.assert_array_equal(back.vectors, emb.vectors)  # tsv writes 9 significant digits: exact for float32
    m = back.manifest
    assert (m["model"], m["dims"], m["count"], m["max_seq_length"], m["normalized"]) == ("/models/some-model", 12, 25, 256, True)
    assert m["description_hash"] == emb.description_hash and m["anirec_version"] == __version__
    assert json.loads((out / "manifest.json").read_text())["format"] == fmt


def test_tsv_is_what_the_projector_reads(small, tmp_path):
    cat, emb = small
    out = export_embeddings(cat, emb, "tsv", tmp_path / "tsv")
    vectors = (out / "vectors.tsv").read_text().splitlines()
    assert len(vectors) == 25 and len(vectors[0].split("\t")) == 12  # no header on vectors
    meta = pd.read_csv(out / "metadata.tsv", sep="\t")
    assert list(meta.columns) == ["title", "genres", "MAL_ID"] and len(meta) == 25
    assert meta["title"].tolist() == cat["Name"].tolist()
    assert meta["genres"].iloc[0] == cat["Genres"].iloc[0]


def test_faiss_ids_are_mal_ids(small, tmp_path):
    import faiss

    cat, emb = small
    out = export_embeddings(cat, emb, "faiss", tmp_path / "f")
    index = faiss.read_index(str(out / "index.faiss"))
    scores, ids = index.search(emb.vectors[[4]], 1)
    assert ids[0, 0] == cat["MAL_ID"].iat[4] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_mismatching_manifest_is_refused(small, tmp_path):
    cat, emb = small
    out = export_embeddings(cat, emb, "npy", tmp_path / "npy")
    other = Embeddings(emb.vectors, "/models/other", "0" * 64, 256, emb.description_hash, False, None, 0.0)
    with pytest.raises(AnirecError, match="model_fingerprint"):
        load_export(out, expect=other)
    with pytest.raises(AnirecError, match=r"description_hash is '[0-9a-f]+', expected 'stale'"):
        load_export(out, expect={**expectation(emb), "description_hash": "stale"})
    with pytest.raises(AnirecError, match="max_seq_length is 256, expected 384"):
        load_export(out, expect={"max_seq_length": 384})
    # A manifest that lies about the contents is refused too.
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "dims": 99}))
    with pytest.raises(AnirecError, match="manifest says 25 x 99"):
        load_export(out)
    with pytest.raises(AnirecError, match="no manifest.json"):
        load_export(tmp_path)


def test_export_never_replaces_a_foreign_folder(small, tmp_path):
    cat, emb = small
    mine = tmp_path / "precious"
    mine.mkdir()
    (mine / "thesis.tex").write_text("do not delete")
    with pytest.raises(AnirecError, match="not an anirec export"):
        export_embeddings(cat, emb, "npy", mine)
    assert (mine / "thesis.tex").exists()
    # An earlier export is replaced whole (an npy export becomes a parquet one).
    out = export_embeddings(cat, emb, "npy", tmp_path / "exp")
    export_embeddings(cat, emb, "parquet", out)
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.parquet", "manifest.json"]


def test_missing_faiss_says_how_to_install(small, tmp_path, monkeypatch):
    cat, emb = small
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    with pytest.raises(AnirecError, match=r"pip install anirec\[faiss\]"):
        export_embeddings(cat, emb, "faiss", tmp_path / "f")
    assert not (tmp_path / "f").exists()


def test_cli_export(mal_catalog, tiny_model_path, tmp_path, capsys):
    catalog = tmp_path / "catalog.parquet"
    mal_catalog[0].iloc[:10].to_parquet(catalog)
    out = tmp_path / "export"
    code = main(["export", "--model", str(tiny_model_path), "--catalog", str(catalog), "--format", "parquet",
                 "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert code == 0
    assert "exported 10 x 32 (parquet)" in capsys.readouterr().out
    back = load_export(out, expect={"dims": 32, "count": 10, "normalized": True})
    np.testing.assert_allclose(np.linalg.norm(back.vectors, axis=1), 1.0, atol=1e-5)
    assert main(["export", "--catalog", str(catalog), "--format", "hdf5", "--out", str(out)]) == 2
