"""`pairs --label cf`: CF-neighbour positives from train rows only, hard negatives, stacking sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anirec import cf_pairs
from anirec.split import load_split
from helpers import expect_user_error, run_cli

WORDS = "starship galaxy robot laser orbit bakery recipe noodle kitchen dumpling school summer festival".split()


def catalog_frame(ids, texts=None) -> pd.DataFrame:
    texts = texts or {}
    return pd.DataFrame({
        "MAL_ID": np.asarray(ids, np.int64), "Name": [f"Anime {i}" for i in ids], "English name": "Unknown",
        "Type": "TV", "Genres": "Action", "Premiered": "Spring 2000",
        "description": [texts.get(i, " ".join(np.roll(WORDS, i))) for i in ids],
    })


def split_frame(rows) -> pd.DataFrame:
    """(user, anime, rating, split) rows -> the split layout (passives must not be given)."""
    df = pd.DataFrame(rows, columns=["user_id", "anime_id", "rating", "split"])
    df["opinion"] = np.where(df["rating"] >= 9, 1, -1).astype(np.int8)
    df["split"] = pd.Categorical(df["split"], categories=["train", "test"])
    return df.astype({"user_id": np.int32, "anime_id": np.int32, "rating": np.int8})


def blocks_with_a_test_only_pair():
    """Users 1-5 promote anime 1+2, users 6-9 promote 3+4 (train). Users 10-14 promote 1+5 only in
    TEST rows; anime 5 has one train promoter. A leak of test rows would make (1, 5) a neighbour."""
    rows = [(u, a, 10, "train") for u in range(1, 6) for a in (1, 2)]
    rows += [(u, a, 9, "train") for u in range(6, 10) for a in (3, 4)]
    rows += [(u, a, 10, "test") for u in range(10, 15) for a in (1, 5)]
    rows += [(15, 5, 10, "train"), (15, 2, 2, "train")]
    return split_frame(rows)


def pair_set(pairs: pd.DataFrame, label=None) -> set:
    p = pairs if label is None else pairs[pairs["label"] == label]
    return set(zip(p["anime_a"].tolist(), p["anime_b"].tolist()))


@pytest.mark.parametrize("method", ["itemknn", "ease"])
def test_neighbours_come_from_train_rows_only(method):
    split = blocks_with_a_test_only_pair()
    cfg = cf_pairs.CFPairsConfig(method=method, neighbors=3, min_co_promoters=3, validation_size=0.0)
    result = cf_pairs.label_cf_pairs(split, catalog_frame(range(1, 6)), cfg)
    assert pair_set(result.pairs) == {(1, 2), (3, 4)}  # (1, 5) has 5 co-promoters, all in test rows
    assert (result.pairs["label"] == 1.0).all()
    assert list(result.pairs.columns) == cf_pairs.CF_PAIR_COLUMNS
    # the co-rating counts are train counts too
    row = result.pairs.set_index(["anime_a", "anime_b"]).loc[(1, 2)]
    assert row["both_promote"] == 5 and row["disagree"] == 0 and row["co_raters"] == 5
    assert result.funnel["catalog_anime_in_a_pair"] == 4


def test_min_co_promoters_and_each_pair_once():
    split = blocks_with_a_test_only_pair()
    cfg = cf_pairs.CFPairsConfig(neighbors=3, min_co_promoters=5, validation_size=0.0)
    result = cf_pairs.label_cf_pairs(split, catalog_frame(range(1, 6)), cfg)
    assert pair_set(result.pairs) == {(1, 2)}  # 3+4 have only 4 co-promoters
    assert len(result.pairs) == 1  # 1 -> 2 and 2 -> 1 are one unordered pair


def test_excluded_anime_never_appear_and_do_not_shape_ease():
    split = blocks_with_a_test_only_pair()
    for method in ("itemknn", "ease"):
        cfg = cf_pairs.CFPairsConfig(method=method, neighbors=3, min_co_promoters=3, validation_size=0.0)
        result = cf_pairs.label_cf_pairs(split, catalog_frame([1, 3, 4, 5]), cfg)  # 2 excluded from the catalog
        assert pair_set(result.pairs) == {(3, 4)}
        assert 2 not in set(result.pairs["anime_a"]) | set(result.pairs["anime_b"])


def test_hard_negatives_are_text_similar_and_never_co_promoted():
    # 1+2 co-promoted by users 1-5; anime 3 reads like anime 1 but its 5 promoters (6-10) never
    # promote 1 or 2: expected overlap by chance 5 * 5 / 10 = 2.5, observed 0 -> a hard negative.
    rows = [(u, a, 10, "train") for u in range(1, 6) for a in (1, 2)]
    rows += [(u, a, 10, "train") for u in range(6, 11) for a in (3, 4)]
    text = {1: "starship galaxy robot laser orbit nebula", 3: "starship galaxy robot laser orbit comet",
            2: "bakery recipe noodle kitchen", 4: "school summer festival picnic"}
    cfg = cf_pairs.CFPairsConfig(neighbors=3, min_co_promoters=3, hard_negatives=1, validation_size=0.0)
    result = cf_pairs.label_cf_pairs(split_frame(rows), catalog_frame([1, 2, 3, 4], text), cfg)
    assert pair_set(result.pairs, 1.0) == {(1, 2), (3, 4)}
    negatives = pair_set(result.pairs, -1.0)
    assert (1, 3) in negatives
    assert not negatives & pair_set(result.pairs, 1.0)
    neg = result.pairs[result.pairs["label"] == -1.0]
    assert (neg["both_promote"] == 0).all()


def test_validation_pairs_carry_the_agreement_label():
    # 1+2: 6 users promote both, 2 promote 1 and pan 2 -> agreement 6/8 = 0.75 (support 16 rows)
    rows = [(u, a, 10, "train") for u in range(1, 7) for a in (1, 2)]
    rows += [(u, 1, 10, "train") for u in (7, 8)] + [(u, 2, 1, "train") for u in (7, 8)]
    cfg = cf_pairs.CFPairsConfig(neighbors=3, min_co_promoters=3, min_support=10, validation_size=0.0)
    pairs = cf_pairs.label_cf_pairs(split_frame(rows), catalog_frame([1, 2]), cfg).pairs
    assert pairs[cf_pairs.AGREEMENT_COLUMN].tolist() == pytest.approx([0.75])
    cfg.min_support = 17  # below the reference's support rule: no agreement label
    pairs = cf_pairs.label_cf_pairs(split_frame(rows), catalog_frame([1, 2]), cfg).pairs
    assert pairs[cf_pairs.AGREEMENT_COLUMN].isna().all()


# --------------------------------------------------------------------------- the CLI


def write_inputs(tmp_path, ids=range(1, 6)):
    catalog = tmp_path / "catalog.parquet"
    catalog_frame(list(ids)).to_parquet(catalog)
    return catalog


def ratings_csv(path, rows):
    pd.DataFrame(rows, columns=["user_id", "anime_id", "rating"]).to_csv(path, index=False)
    return path


def test_cli_stacks_rating_sets(tmp_path, capsys):
    catalog = write_inputs(tmp_path)
    # each set alone: 2 users promote 1+2 (below 3 co-promoters); stacked: 4
    a = ratings_csv(tmp_path / "a.csv", [(u, x, 10) for u in (1, 2) for x in (1, 2)] + [(3, 3, 8)])
    b = ratings_csv(tmp_path / "b.csv", [(u, x, 9) for u in (1001, 1002) for x in (1, 2)] + [(1003, 4, 8)])
    common = ["--label", "cf", "--catalog", catalog, "--test-size", "0", "--validation-size", "0"]
    for one in (a, b):
        err = expect_user_error(capsys, "pairs", "--ratings", one, *common, "--out", tmp_path / "one.parquet")
        assert "no CF neighbour pair" in err
    out = tmp_path / "both.parquet"
    code, stdout, err = run_cli(capsys, "pairs", "--ratings", a, "--ratings", b, *common, "--out", out)
    assert code == 0, err
    assert "from 6 users" in stdout and "2 catalog anime in at least one pair" in stdout
    assert pair_set(pd.read_parquet(out)) == {(1, 2)}
    split, meta = load_split(out.with_name("both.split.parquet"))
    assert set(split["user_id"]) == {1, 2, 1001, 1002}  # passives (8) dropped


def test_cli_exclude_anime_and_option_errors(tmp_path, capsys):
    catalog = write_inputs(tmp_path)
    rows = [(u, a, 10) for u in range(1, 6) for a in (1, 2)] + [(u, a, 9) for u in range(6, 10) for a in (3, 4)]
    ratings = ratings_csv(tmp_path / "r.csv", rows)
    exclude = tmp_path / "cold.txt"
    exclude.write_text("# cold\n2\n")
    out = tmp_path / "p.parquet"
    common = ["--ratings", ratings, "--catalog", catalog, "--test-size", "0"]
    code, stdout, err = run_cli(capsys, "pairs", *common, "--labels", "cf", "--out", out, "--exclude-anime", exclude,
                                "--cf-method", "ease", "--lam", "10")
    assert code == 0, err
    pairs = pd.read_parquet(out)
    assert pair_set(pairs) == {(3, 4)} and 2 not in set(pairs["anime_a"]) | set(pairs["anime_b"])
    assert "ease" in stdout and "positive" in stdout
    err = expect_user_error(capsys, "pairs", *common, "--label", "agreement", "--neighbors", "5", "--out", out)
    assert "--neighbors" in err and "--label cf" in err
    err = expect_user_error(capsys, "pairs", *common, "--label", "cf", "--max-pairs", "10", "--out", out)
    assert "--max-pairs" in err
    err = expect_user_error(capsys, "pairs", *common, "--label", "cf", "--cf-method", "svd", "--out", out)
    assert "itemknn" in err and "ease" in err
    err = expect_user_error(capsys, "pairs", *common, "--label", "neighbours", "--out", out)
    assert "cf" in err and "agreement" in err


def test_help_mentions_the_options(capsys):
    code, out, _ = run_cli(capsys, "pairs", "--help")
    assert code == 0
    for opt in ("--label", "cf", "--cf-method", "--neighbors", "--min-co-promoters", "--lam", "--hard-negatives"):
        assert opt in out, opt
    code, out, _ = run_cli(capsys, "finetune", "--help")
    for opt in ("cmnrl", "gist", "--mini-batch-size", "--no-hard-negatives"):
        assert opt in out, opt
    code, out, _ = run_cli(capsys, "build", "--help")
    assert "--template" in out and "fields-first" in out
