"""The data layer: Kaggle folder, merged files, HF datasets, and every bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anirec.data import load_catalog, load_ratings, ratings_coverage
from anirec.errors import AnirecError

from helpers import expect_user_error, run_cli

ANIME_COLS = ["MAL_ID", "Name", "Score", "Genres", "English name", "Japanese name", "Type", "Episodes", "Aired",
              "Premiered", "Producers", "Licensors", "Studios", "Source", "Duration", "Rating"]


def _anime_rows(ids):
    return [
        {"MAL_ID": i, "Name": f"Show {i}", "Score": "7.5", "Genres": "Action, Drama", "English name": "Unknown",
         "Japanese name": "Unknown", "Type": "TV", "Episodes": "12", "Aired": "Apr 1, 2010 to Jun 1, 2010",
         "Premiered": "Spring 2010", "Producers": "Aniplex", "Licensors": "Unknown", "Studios": "Bones",
         "Source": "Manga", "Duration": "24 min per ep", "Rating": "PG-13"}
        for i in ids
    ]


def make_kaggle(tmp_path, ids=(1, 2, 3), synopses=None, anime_rows=None):
    d = tmp_path / "kaggle"
    d.mkdir(exist_ok=True)
    rows = anime_rows if anime_rows is not None else _anime_rows(ids)
    pd.DataFrame(rows, columns=ANIME_COLS).to_csv(d / "anime.csv", index=False)
    syn = synopses if synopses is not None else [f"Synopsis of show {i}." for i in ids]
    pd.DataFrame({"MAL_ID": [r["MAL_ID"] for r in rows], "Name": [r["Name"] for r in rows], "Score": "7.5",
                  "Genres": "Action", "sypnopsis": syn}).to_csv(d / "anime_with_synopsis.csv", index=False)
    return d


# ------------------------------------------------------------------ good sources


def test_shared_kaggle_folder_loads(mal_dir):
    loaded = load_catalog(mal_dir)
    assert loaded.rows_read == 3951
    assert loaded.frame["MAL_ID"].is_unique
    row = loaded.frame.set_index("MAL_ID").loc[16498]
    assert row["Name"] == "Shingeki no Kyojin"
    assert row["synopsis"].startswith("Centuries ago")


def test_merged_csv_with_synopsis_column(tmp_path):
    d = make_kaggle(tmp_path)
    merged = pd.read_csv(d / "anime.csv")
    merged["synopsis"] = ["a", "b", "c"]
    path = tmp_path / "merged.csv"
    merged.to_csv(path, index=False)
    frame = load_catalog(path).frame
    assert frame["synopsis"].tolist() == ["a", "b", "c"]
    assert frame["MAL_ID"].tolist() == [1, 2, 3]


def test_hf_dataset_code_path_on_local_folder(tmp_path):
    """`hf:` goes through datasets.load_dataset, as a hub id would; here on a local dataset folder."""
    d = make_kaggle(tmp_path)
    merged = pd.read_csv(d / "anime.csv")
    merged["synopsis"] = ["x", "y", "z"]
    ds_dir = tmp_path / "hfcat"
    ds_dir.mkdir()
    merged.to_csv(ds_dir / "train.csv", index=False)
    frame = load_catalog(f"hf:{ds_dir}").frame
    assert sorted(frame["MAL_ID"]) == [1, 2, 3]
    assert set(frame["synopsis"]) == {"x", "y", "z"}

    rdir = tmp_path / "hfratings"
    rdir.mkdir()
    pd.DataFrame({"user_id": [5, 5, 6], "anime_id": [1, 2, 3], "rating": [9, 4, 10]}).to_parquet(rdir / "train.parquet")
    r = load_ratings(f"hf:{rdir}")
    assert r["rating"].tolist() == [9, 4, 10]
    assert r.dtypes["user_id"] == np.int32 and r.dtypes["rating"] == np.int8


def test_hf_dataset_saved_with_save_to_disk(tmp_path):
    import datasets

    path = tmp_path / "saved"
    datasets.Dataset.from_dict({"user_id": [1, 2], "anime_id": [3, 4], "rating": [7, 8]}).save_to_disk(str(path))
    r = load_ratings(f"hf:{path}")
    assert r["anime_id"].tolist() == [3, 4]


def test_bare_hub_id_is_treated_as_hub(monkeypatch):
    from anirec import data

    seen = {}

    def fake(spec, what):
        seen["spec"] = spec
        return pd.DataFrame({"user_id": [1], "anime_id": [2], "rating": [9]})

    monkeypatch.setattr(data, "_load_hf", fake)
    r = load_ratings("profoz/anime_rating_complete")
    assert seen["spec"] == "profoz/anime_rating_complete"
    assert len(r) == 1


def test_ratings_compact_dtypes_and_coverage(mal_dir):
    r = load_ratings(mal_dir / "rating_complete.csv")
    assert len(r) == 99_999
    assert [str(t) for t in r.dtypes] == ["int32", "int32", "int8"]
    cat = load_catalog(mal_dir).frame
    cov = ratings_coverage(r, cat["MAL_ID"])
    assert cov["ratings_in_catalog"] + cov["ratings_not_in_catalog"] == 99_999
    assert cov["ratings_not_in_catalog"] > 0  # the subset has ratings for anime outside the catalog


def test_ratings_parquet(tmp_path):
    p = tmp_path / "r.parquet"
    pd.DataFrame({"user_id": [1, 2], "anime_id": [3, 4], "rating": [10, 1], "extra": ["a", "b"]}).to_parquet(p)
    r = load_ratings(p)
    assert list(r.columns) == ["user_id", "anime_id", "rating"]


# ------------------------------------------------------------------ bad input: API and CLI


def test_missing_file(tmp_path, capsys):
    d = make_kaggle(tmp_path)
    (d / "anime_with_synopsis.csv").unlink()
    err = expect_user_error(capsys, "build", "--data", d, "--out", tmp_path / "c.parquet")
    assert "anime_with_synopsis.csv: file not found" in err
    assert not (tmp_path / "c.parquet").exists()


def test_missing_column(tmp_path, capsys):
    d = make_kaggle(tmp_path)
    df = pd.read_csv(d / "anime.csv").drop(columns=["Studios"])
    df.to_csv(d / "anime.csv", index=False)
    err = expect_user_error(capsys, "build", "--data", d, "--out", tmp_path / "c.parquet")
    assert "anime.csv: missing column 'Studios'" in err


def test_non_integer_id_names_row(tmp_path, capsys):
    rows = _anime_rows([1, 2, 3])
    rows[1]["MAL_ID"] = "abc"
    d = make_kaggle(tmp_path, anime_rows=rows)
    err = expect_user_error(capsys, "build", "--data", d, "--out", tmp_path / "c.parquet")
    assert "anime.csv, row 3" in err and "'abc' is not an integer" in err


def test_duplicate_ids_keep_first_and_warn(tmp_path, capsys):
    rows = _anime_rows([1, 2, 2, 3, 3])
    rows[2]["Name"] = "Second copy"
    d = make_kaggle(tmp_path, anime_rows=rows, synopses=["s1", "s2", "s2b", "s3", "s3b"])
    code, out, err = run_cli(capsys, "build", "--data", d, "--out", tmp_path / "c.parquet")
    assert code == 0, err
    assert "2 duplicate MAL_ID row(s) dropped" in err
    cat = pd.read_parquet(tmp_path / "c.parquet")
    assert cat["MAL_ID"].tolist() == [1, 2, 3]
    assert "Second copy" not in cat["Name"].tolist()


@pytest.mark.parametrize("rating", [0, 11])
def test_rating_out_of_range(tmp_path, capsys, rating):
    d = make_kaggle(tmp_path)
    rp = tmp_path / "ratings.csv"
    pd.DataFrame({"user_id": [1, 1, 2], "anime_id": [1, 2, 3], "rating": [9, rating, 5]}).to_csv(rp, index=False)
    err = expect_user_error(capsys, "build", "--data", d, "--out", tmp_path / "c.parquet", "--ratings", rp)
    assert f"ratings.csv, row 3: rating {rating} is outside 1-10" in err


def test_rating_not_integer(tmp_path, capsys):
    d = make_kaggle(tmp_path)
    rp = tmp_path / "ratings.csv"
    rp.write_text("user_id,anime_id,rating\n1,1,9\n1,x2,5\n")
    err = expect_user_error(capsys, "build", "--data", d, "--out", tmp_path / "c.parquet", "--ratings", rp)
    assert "ratings.csv, row 3" in err and "anime_id 'x2' is not an integer" in err


def test_ratings_missing_column(tmp_path):
    rp = tmp_path / "ratings.csv"
    rp.write_text("user_id,anime,rating\n1,1,9\n")
    with pytest.raises(AnirecError, match="missing column 'anime_id'") as exc:
        load_ratings(rp)
    assert exc.value.exit_code == 2


@pytest.mark.parametrize("content", ["", "MAL_ID,Name,Score,Genres,sypnopsis\n"])
def test_empty_files(tmp_path, capsys, content):
    d = make_kaggle(tmp_path)
    (d / "anime_with_synopsis.csv").write_text(content)
    err = expect_user_error(capsys, "build", "--data", d, "--out", tmp_path / "c.parquet")
    assert "anime_with_synopsis.csv: file" in err and ("empty" in err or "no rows" in err)


def test_empty_ratings_file(tmp_path):
    rp = tmp_path / "ratings.csv"
    rp.write_text("")
    with pytest.raises(AnirecError, match="ratings.csv: file is empty"):
        load_ratings(rp)
    rp.write_text("user_id,anime_id,rating\n")
    with pytest.raises(AnirecError, match="no ratings"):
        load_ratings(rp)


def test_unknown_source(tmp_path, capsys):
    err = expect_user_error(capsys, "build", "--data", tmp_path / "nope", "--out", tmp_path / "c.parquet")
    assert "no such file or folder" in err


def test_ratings_outside_catalog_are_reported_not_fatal(tmp_path, capsys):
    d = make_kaggle(tmp_path)
    rp = tmp_path / "ratings.csv"
    pd.DataFrame({"user_id": [1, 1, 2, 2], "anime_id": [1, 99, 3, 98], "rating": [9, 8, 5, 7]}).to_csv(rp, index=False)
    code, out, err = run_cli(capsys, "build", "--data", d, "--out", tmp_path / "c.parquet", "--ratings", rp)
    assert code == 0, err
    assert "2 on catalog anime; 2 (50%) on 2 anime not in the catalog" in out
