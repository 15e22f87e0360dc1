"""The shipped demo catalog and `anirec demo`."""

from __future__ import annotations

from pathlib import Path

from anirec.data import load_catalog, load_ratings

from helpers import run_cli

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"


def test_demo_files_are_kaggle_layout():
    cat = load_catalog(DEMO)
    assert 30 <= cat.rows_read <= 60 and cat.frame["MAL_ID"].is_unique
    r = load_ratings(DEMO)
    assert set(r["anime_id"]) <= set(cat.frame["MAL_ID"])
    assert "DEMO data" in (DEMO / "README.md").read_text()


def test_demo_command_prints_recommendations(minilm_path, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("ANIREC_MODELS", str(minilm_path.parent))
    monkeypatch.setenv("ANIREC_CACHE", str(tmp_path / "cache"))
    code, out, err = run_cli(capsys, "demo", "-k", "3", "--out-dir", tmp_path)
    assert code == 0, err
    assert "kept          44 anime" in out
    assert out.count("Because you liked") >= 2
    assert (tmp_path / "catalog.parquet").exists()
    # The fitted hybrid, saved and loaded back, answers a new user's --likes with other anime.
    assert '--likes "Shingeki no Kyojin" --likes "Steins;Gate" -k 3' in out
    answered = out.split('--likes "Steins;Gate" -k 3', 1)[1].strip().splitlines()
    assert [line.split(".")[0].strip() for line in answered] == ["1", "2", "3"]
    assert not any("Shingeki no Kyojin" in line or "Steins;Gate" in line for line in answered)
    assert (tmp_path / "recommender" / "manifest.json").exists()
