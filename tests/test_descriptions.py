"""Descriptions follow the reference template word for word (METHOD.md section 1)."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd

from anirec.descriptions import (
    build_descriptions,
    clean_text,
    describe,
    describe_fields_first,
    token_lengths,
    truncation_table,
)

from helpers import expect_user_error, run_cli


def _raw_row(mal_dir, mal_id):
    """Fields straight from the CSV files with the csv module (independent of the data layer)."""
    with open(mal_dir / "anime.csv", newline="", encoding="utf-8") as f:
        anime = next(r for r in csv.DictReader(f) if r["MAL_ID"] == str(mal_id))
    with open(mal_dir / "anime_with_synopsis.csv", newline="", encoding="utf-8") as f:
        syn = next(r for r in csv.DictReader(f) if r["MAL_ID"] == str(mal_id))
    return anime, syn["sypnopsis"]


def test_shingeki_no_kyojin_matches_template_word_for_word(mal_dir, mal_catalog):
    anime, synopsis = _raw_row(mal_dir, 16498)
    assert anime["Type"] == "TV"
    expected = (
        f"Shingeki no Kyojin is a TV Show.\n"
        f"Synopsis: {synopsis}\n"
        f"It was produced by {anime['Producers']} and it is from {anime['Studios']} Studio.\n"
        f"Its source is {anime['Source']}.\n"
        f"It premiered in {anime['Premiered']}.\n"
        f"Its genres are {anime['Genres']}\n"
    )
    catalog, _ = mal_catalog
    got = catalog.set_index("MAL_ID").loc[16498, "description"]
    assert got.split() == expected.split()  # same words, same order
    assert got == " ".join(expected.split())  # and whitespace collapsed to single spaces
    assert got.startswith("Shingeki no Kyojin is a TV Show. Synopsis: Centuries ago")
    assert "It was produced by Production I.G, Dentsu" in got
    assert "it is from Wit Studio Studio." in got  # the reference writes "Studio" after the name, always
    assert "Its source is Manga. It premiered in Spring 2013. Its genres are Action," in got


ROW = {"Name": "Foo", "Type": "Movie", "synopsis": "A  story\n\nabout\tthings.\x07", "Producers": "Unknown",
       "Studios": "Bones", "Source": "Original", "Premiered": "Unknown", "Genres": "Drama, Sci-Fi"}


def test_template_and_cleaning():
    assert describe(ROW) == (
        "Foo is a Movie. Synopsis: A story about things. It was produced by Unknown and it is from Bones Studio. "
        "Its source is Original. It premiered in Unknown. Its genres are Drama, Sci-Fi"
    )


def test_skip_unknown_leaves_out_unknown_sentences():
    assert describe(ROW, skip_unknown=True) == (
        "Foo is a Movie. Synopsis: A story about things. It is from Bones Studio. "
        "Its source is Original. Its genres are Drama, Sci-Fi"
    )
    row = dict(ROW, Producers="Aniplex", Studios="Unknown", Genres=None)
    text = describe(row, skip_unknown=True)
    assert "It was produced by Aniplex." in text and "Studio" not in text and "genres" not in text


def test_clean_text_keeps_unicode_letters():
    assert clean_text("Madoka★Magica\u200b  x\u0000") == "Madoka★Magica x"


def test_rows_without_synopsis_are_dropped_and_counted():
    df = pd.DataFrame([dict(ROW, MAL_ID=i) for i in range(4)])
    df.loc[1, "synopsis"] = None
    df.loc[2, "synopsis"] = "No synopsis has been added for this series yet."
    out, dropped = build_descriptions(df)
    assert out["MAL_ID"].tolist() == [0, 3]
    assert dropped == {"no synopsis": 1, "placeholder synopsis": 1, "no name": 0}


def test_build_on_shared_data_keeps_every_anime_with_a_synopsis(mal_dir, mal_catalog, capsys, tmp_path):
    catalog, _ = mal_catalog
    raw = pd.read_csv(mal_dir / "anime_with_synopsis.csv")
    s = raw["sypnopsis"].fillna("").str.strip()
    real = (s != "") & ~s.str.lower().str.startswith("no synopsis")
    assert len(catalog) == int(real.sum())
    assert set(catalog["MAL_ID"]) == set(raw.loc[real, "MAL_ID"])

    code, out, err = run_cli(capsys, "build", "--data", mal_dir, "--out", tmp_path / "c.parquet")
    assert code == 0, err
    assert "read       3,951 rows" in out and f"kept     {len(catalog):>7,} anime" in out


def test_token_stats_and_truncation_table(minilm_path, mal_dir, capsys, tmp_path):
    from anirec.models import load_tokenizer

    tok = load_tokenizer(str(minilm_path))
    lengths = token_lengths(["a short one", "a " * 300], tok)
    assert lengths[0] == 5 and lengths[1] == 302  # [CLS] ... [SEP]
    assert truncation_table(np.array([100, 200, 300, 400, 600])) == {128: 0.8, 256: 0.6, 384: 0.4, 512: 0.2}

    png = tmp_path / "hist.png"
    code, out, err = run_cli(capsys, "build", "--data", mal_dir, "--out", tmp_path / "c.parquet",
                             "--tokenizer", minilm_path, "--histogram", png)
    assert code == 0, err
    assert "reference* truncated" in out and "fields-first truncated" in out and "p50" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert pd.read_parquet(tmp_path / "c.parquet")["description_template"].unique().tolist() == ["reference"]


LONG = dict(ROW, synopsis="An endless story. " * 200, Genres="Drama, Sci-Fi", Studios="Bones", Source="Manga",
            Premiered="Spring 2013", Producers="Aniplex, Dentsu")


def test_fields_first_puts_the_fields_before_the_synopsis():
    text = describe_fields_first(LONG)
    assert text.startswith("Foo is a Movie from Bones Studio. Its genres are Drama, Sci-Fi. Its source is Manga. "
                           "It premiered in Spring 2013. Synopsis: An endless story.")
    assert text.index("Drama, Sci-Fi") < text.index("Synopsis:") < text.index("produced by Aniplex")
    short = describe_fields_first(dict(ROW, Premiered="Unknown"), skip_unknown=True)
    assert short == "Foo is a Movie from Bones Studio. Its genres are Drama, Sci-Fi. Its source is Original. Synopsis: A story about things."
    assert describe_fields_first(dict(ROW, Type="Unknown", Studios="Unknown"), skip_unknown=True).startswith("Foo. Its genres")


def test_fields_first_genres_survive_truncation(minilm_path):
    from anirec.models import load_tokenizer

    tok = load_tokenizer(str(minilm_path))
    for template, kept in ((describe_fields_first, True), (describe, False)):
        ids = tok(template(LONG), truncation=True, max_length=64)["input_ids"]
        assert len(ids) == 64
        assert ("drama, sci - fi" in tok.decode(ids)) is kept, template.__name__


def test_build_template_option(mal_dir, capsys, tmp_path):
    out = tmp_path / "ff.parquet"
    code, stdout, err = run_cli(capsys, "build", "--data", mal_dir, "--out", out, "--template", "fields-first")
    assert code == 0, err
    catalog = pd.read_parquet(out)
    assert catalog["description_template"].unique().tolist() == ["fields-first"]
    snk = catalog.set_index("MAL_ID").loc[16498, "description"]
    assert snk.startswith("Shingeki no Kyojin is a TV Show from Wit Studio Studio. Its genres are Action,")
    err = expect_user_error(capsys, "build", "--data", mal_dir, "--out", tmp_path / "x.parquet", "--template", "short")
    assert "fields-first" in err and not (tmp_path / "x.parquet").exists()
