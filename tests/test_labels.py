"""Pair labels: opinions, popularity filter, split, co-rating counts (all pairs and listed pairs) vs the reference's per-pair scan."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anirec import labels
from anirec.co_ratings import PairCounts, listed_pair_counts, opinion_columns, pair_counts
from anirec.errors import AnirecError
from anirec.opinions import filter_popular, popularity_threshold, to_opinions
from anirec.split import SPLIT_COLUMNS, load_split, ratings_fingerprint, save_split, split_ratings
from helpers import expect_user_error, run_cli


def ratings_frame(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["user_id", "anime_id", "rating"])
    return df.astype({"user_id": np.int32, "anime_id": np.int32, "rating": np.int8})


# --------------------------------------------------------------------------- the reference, one pair at a time


def reference_pair(train: pd.DataFrame, a1: int, a2: int, min_support: int) -> dict:
    """The reference's anime_pair_scores (one pandas filter per pair), plus the counts it implies."""
    a = train[train["anime_id"].isin([a1, a2])]
    a = a[a["opinion"] != 0]
    support = a.shape[0]
    a = a[a.duplicated(subset=["user_id"], keep=False)].sort_values("user_id")
    per_user = a.groupby("user_id")["opinion"].apply(lambda s: ",".join(map(str, sorted(s))))
    out = {
        "support": support,
        "co_raters": len(per_user),
        "both_promote": int((per_user == "1,1").sum()),
        "disagree": int((per_user == "-1,1").sum()),
        "label": None,
    }
    if support < min_support:
        return out
    two = per_user[per_user.isin(["-1,1", "1,1"])].value_counts(normalize=True)
    if len(two) != 2:
        return out
    disagree_score, agree_score = two.sort_index().tolist()  # "-1,1" sorts before "1,1", as [-1,1] < [1,1]
    out["label"] = agree_score if agree_score > disagree_score else -1 * disagree_score
    return out


rating_rows = st.lists(
    st.tuples(st.integers(0, 9), st.integers(1, 6), st.integers(1, 10)),
    min_size=1, max_size=60, unique_by=lambda r: (r[0], r[1]),
)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rating_rows, min_support=st.integers(0, 12), user_chunk=st.sampled_from([1, 3, 1 << 17]))
def test_all_pairs_match_the_per_pair_reference(rows, min_support, user_chunk):
    opinions = to_opinions(ratings_frame(rows))
    if opinions["anime_id"].nunique() < 2:
        return
    counts = pair_counts(opinions, user_chunk=user_chunk)
    ids = counts.anime_ids
    # thresholds 0/0: every labelled pair lands in the output (agreement labels are never 0)
    cfg = labels.PairsConfig(min_support=min_support, positive=0.0, negative=0.0, validation_size=0.0)
    result = labels.label_pairs(counts, ids, cfg)
    got = {(a, b): lab for a, b, lab in result.pairs[["anime_a", "anime_b", "label"]].itertuples(index=False)}
    support = counts.support()
    # the same counter asked for a list of pairs (what the CF pairs use) gives the same counts
    listed = listed_pair_counts(opinion_columns(opinions), *np.triu_indices(len(ids), 1), user_chunk=user_chunk)
    for k, (i, j) in enumerate(itertools.combinations(range(len(ids)), 2)):
        ref = reference_pair(opinions, int(ids[i]), int(ids[j]), min_support)
        assert counts.both_promote[i, j] == counts.both_promote[j, i] == ref["both_promote"] == listed["both_promote"][k]
        assert counts.disagree[i, j] == counts.disagree[j, i] == ref["disagree"] == listed["disagree"][k]
        assert counts.co_raters[i, j] == ref["co_raters"] == listed["co_raters"][k]
        assert support[i, j] == ref["support"] == listed["support"][k]
        if ref["label"] is None:
            assert (ids[i], ids[j]) not in got
        else:
            assert got[(ids[i], ids[j])] == np.float32(ref["label"])
    assert len(got) == result.funnel["labelled"]


def test_counts_hand_checked():
    # users 0-3 on anime 10 and 20: (P,P) (P,D) (D,P) (D,D); user 4 only rates 10.
    rows = [(0, 10, 9), (0, 20, 10), (1, 10, 9), (1, 20, 3), (2, 10, 2), (2, 20, 9), (3, 10, 1), (3, 20, 1), (4, 10, 10)]
    c = pair_counts(to_opinions(ratings_frame(rows)))
    assert list(c.anime_ids) == [10, 20]
    assert (c.both_promote[0, 1], c.disagree[0, 1], c.co_raters[0, 1]) == (1, 2, 4)
    assert list(c.rows) == [5, 4] and c.support()[0, 1] == 9
    assert list(c.promoters) == [3, 2]
    assert labels.agreement_scores(c)[0, 1] == pytest.approx(-2 / 3)
    assert labels.jaccard_scores(c)[0, 1] == pytest.approx(1 / 4)  # promoters {0,1,4} and {0,2}


def test_repeated_ratings_are_refused():
    df = to_opinions(ratings_frame([(0, 1, 9), (0, 1, 10), (1, 1, 2)]))
    with pytest.raises(AnirecError, match="repeated"):
        pair_counts(df)


# --------------------------------------------------------------------------- opinions, filter, split


def test_opinions_map_and_drop_passives():
    df = ratings_frame([(0, 1, r) for r in range(1, 11)])
    all_ = to_opinions(df, keep_passives=True)
    assert all_["opinion"].tolist() == [-1] * 6 + [0, 0] + [1, 1]
    kept = to_opinions(df)
    assert kept["rating"].tolist() == [1, 2, 3, 4, 5, 6, 9, 10] and (kept["opinion"] != 0).all()
    custom = to_opinions(df, promoter_min=8, passive_min=5, keep_passives=True)
    assert custom["opinion"].tolist() == [-1] * 4 + [0] * 3 + [1] * 3
    with pytest.raises(AnirecError, match="passive_min"):
        to_opinions(df, promoter_min=6, passive_min=7)


def test_popularity_filter_matches_the_reference_quantile():
    rng = np.random.default_rng(0)
    n = 3000
    df = to_opinions(ratings_frame(np.c_[rng.integers(0, 400, n), rng.zipf(1.6, n) % 200, rng.integers(1, 11, n)]))
    df = df.drop_duplicates(["user_id", "anime_id"]).reset_index(drop=True)
    ref_counts = df.groupby("anime_id").count()["rating"]
    ref_threshold = ref_counts.quantile(0.9)
    ref_keep = ref_counts[ref_counts >= ref_threshold].index
    assert popularity_threshold(df, 0.9) == ref_threshold
    out = filter_popular(df, 0.9)
    assert set(out["anime_id"]) == set(ref_keep)
    assert len(out) == int(df["anime_id"].isin(ref_keep).sum())
    # an absolute minimum raises the bar; quantile 0 / None keeps every anime
    floor = int(ref_threshold) + 20
    big = filter_popular(df, 0.9, min_count=floor)
    assert set(big["anime_id"]) == set(ref_counts[ref_counts >= floor].index)
    assert big["anime_id"].nunique() < len(ref_keep)
    assert len(filter_popular(df, None)) == len(df)
    with pytest.raises(AnirecError, match="quantile"):
        filter_popular(df, 1.5)


def test_split_matches_reference_shuffle_and_is_deterministic():
    rng = np.random.default_rng(1)
    df = to_opinions(ratings_frame(np.c_[np.arange(1000), rng.integers(0, 50, 1000), rng.integers(1, 11, 1000)]))
    a, b = split_ratings(df, 0.1, 42), split_ratings(df, 0.1, 42)
    assert a["split"].equals(b["split"])
    # the reference: np.split(df.sample(frac=1, random_state=42), [int(.9 * len(df))])
    shuffled = df.sample(frac=1, random_state=42)
    ref_train = set(shuffled.index[: int(0.9 * len(df))])
    assert set(np.flatnonzero(a["split"] == "train")) == ref_train
    assert (a["split"] == "test").sum() == len(df) - int(0.9 * len(df))
    assert not a["split"].equals(split_ratings(df, 0.1, 7)["split"])


def test_save_load_split_roundtrip(tmp_path):
    df = split_ratings(to_opinions(ratings_frame([(u, a, (u + a) % 10 + 1) for u in range(20) for a in range(5)])))
    meta = {"ratings_hash": "abc", "params": {"seed": 42}}
    save_split(df, tmp_path / "s.parquet", meta)
    back, meta2 = load_split(tmp_path / "s.parquet")
    assert meta2 == meta
    assert back[SPLIT_COLUMNS].astype({"split": str}).equals(df[SPLIT_COLUMNS].astype({"split": str}))
    assert back["user_id"].dtype == np.int32 and back["opinion"].dtype == np.int8
    df.to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(AnirecError, match="not an anirec split file"):
        load_split(tmp_path / "plain.parquet")


def test_ratings_fingerprint():
    df = ratings_frame([(1, 2, 3), (4, 5, 6)])
    assert ratings_fingerprint(df) == ratings_fingerprint(df.astype(np.int64))
    changed = df.copy()
    changed.loc[1, "rating"] = 7
    assert ratings_fingerprint(df) != ratings_fingerprint(changed)
    assert ratings_fingerprint(df) != ratings_fingerprint(df.iloc[::-1])


# --------------------------------------------------------------------------- label rules


def counts_from(both, dis, co, rows, promoters, ids=None) -> PairCounts:
    n = len(rows)
    sym = lambda m: np.asarray(m, np.int32) + np.asarray(m, np.int32).T  # noqa: E731 (upper triangle given)
    return PairCounts(
        anime_ids=np.arange(1, n + 1, dtype=np.int64) if ids is None else np.asarray(ids, np.int64),
        both_promote=sym(both), disagree=sym(dis), co_raters=sym(co),
        rows=np.asarray(rows, np.int32), promoters=np.asarray(promoters, np.int32),
    )


def test_agreement_thresholds_ties_and_filters():
    # pairs (1,2): 7 both/3 dis -> +0.7; (1,3): 1/1 -> tie -> -0.5; (2,3): 0 both -> no label; (1,4): 3 dis/1 both... etc.
    both = [[0, 7, 1, 1], [0, 0, 0, 5], [0, 0, 0, 9], [0, 0, 0, 0]]
    dis = [[0, 3, 1, 3], [0, 0, 4, 5], [0, 0, 0, 1], [0, 0, 0, 0]]
    co = [[0, 10, 2, 4], [0, 0, 4, 10], [0, 0, 0, 10], [0, 0, 0, 0]]
    c = counts_from(both, dis, co, rows=[30, 30, 30, 30], promoters=[10, 10, 10, 10])
    score = labels.agreement_scores(c)
    assert score[0, 1] == pytest.approx(0.7) and score[0, 2] == -0.5 and score[0, 3] == pytest.approx(-0.75)
    res = labels.label_pairs(c, [1, 2, 3, 4], labels.PairsConfig(min_support=50, validation_size=0.0))
    pairs = {(a, b): l for a, b, l in res.pairs[["anime_a", "anime_b", "label"]].itertuples(index=False)}
    # label >= 0.7 positive (0.7 itself counts), < -0.7 negative, (2,3) has no both-promote -> unlabelled
    assert set(pairs) == {(1, 2), (1, 4), (3, 4)}
    assert res.funnel["labelled"] == 5 and res.funnel["positives"] == 2 and res.funnel["negatives"] == 1
    # the support filter is on rows of the two anime: 60 < 61 removes every pair
    res = labels.label_pairs(c, [1, 2, 3, 4], labels.PairsConfig(min_support=61))
    assert res.funnel["labelled"] == 0 and len(res.pairs) == 0
    # co-raters filter
    res = labels.label_pairs(c, [1, 2, 3, 4], labels.PairsConfig(min_co_raters=5, validation_size=0.0))
    assert set(zip(res.pairs["anime_a"], res.pairs["anime_b"])) == {(1, 2), (3, 4)}


def test_catalog_restriction_counts_the_rest():
    both = [[0, 9, 9], [0, 0, 9], [0, 0, 0]]
    dis = [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    c = counts_from(both, dis, dis, rows=[40, 40, 40], promoters=[9, 9, 9], ids=[5, 6, 7])
    res = labels.label_pairs(c, [5, 7, 123], labels.PairsConfig(validation_size=0.0))
    assert list(zip(res.pairs["anime_a"], res.pairs["anime_b"])) == [(5, 7)]
    assert res.funnel["pairs_not_in_catalog"] == 2 and res.funnel["labelled_not_in_catalog"] == 2
    with pytest.raises(AnirecError, match="in the catalog"):
        labels.label_pairs(c, [5, 999])


def test_jaccard_thresholds_and_per_anime_quantile():
    # promoters 10 each; both-promote 8 (J = 8/12), 1 (J = 1/19), 5 (J = 5/15)
    c = counts_from([[0, 8, 1], [0, 0, 5], [0, 0, 0]], np.zeros((3, 3)), [[0, 9, 9], [0, 0, 9], [0, 0, 0]],
                    rows=[40, 40, 40], promoters=[10, 10, 10])
    cfg = labels.PairsConfig(label="jaccard", positive=0.5, negative=0.1, validation_size=0.0)
    res = labels.label_pairs(c, [1, 2, 3], cfg)
    got = {(a, b): l for a, b, l in res.pairs[["anime_a", "anime_b", "label"]].itertuples(index=False)}
    assert got == {(1, 2): np.float32(8 / 12), (1, 3): np.float32(1 / 19 - 1)}
    # per-anime quantile: (1,2) is the top pair of both 1 and 2; (1,3) the bottom pair of both 1 and 3
    res = labels.label_pairs(c, [1, 2, 3], labels.PairsConfig(label="jaccard", per_anime_quantile=0.9, validation_size=0.0))
    assert set(zip(res.pairs["anime_a"], res.pairs["anime_b"], res.pairs["label"] > 0)) == {(1, 2, True), (1, 3, False)}
    # two anime that share no promoter with anyone: J = 0 is their "top" quantile, yet never positive
    z = np.zeros((5, 5), int)
    z[0, 1], z[0, 2], z[1, 2] = 8, 1, 5
    c5 = counts_from(z, np.zeros((5, 5)), np.full((5, 5), 9), rows=[40] * 5, promoters=[10] * 5)
    res = labels.label_pairs(c5, [1, 2, 3, 4, 5], labels.PairsConfig(label="jaccard", validation_size=0.0))
    pair45 = res.pairs[(res.pairs["anime_a"] == 4) & (res.pairs["anime_b"] == 5)]
    assert pair45["label"].tolist() == [-1.0]  # a negative (J - 1), not a positive with label 0
    with pytest.raises(AnirecError, match="both --positive and --negative"):
        labels.PairsConfig(label="jaccard", positive=0.5).resolved()
    with pytest.raises(AnirecError, match="jaccard only"):
        labels.PairsConfig(per_anime_quantile=0.9).resolved()


def test_max_pairs_balanced_and_validation_stratified():
    rng = np.random.default_rng(3)
    n = 40
    both = np.triu(rng.integers(0, 20, (n, n)), 1)
    dis = np.triu(rng.integers(0, 20, (n, n)), 1)
    c = counts_from(both, dis, both + dis, rows=[50] * n, promoters=[20] * n)
    full = labels.label_pairs(c, np.arange(1, n + 1), labels.PairsConfig(positive=0.6, negative=-0.6))
    assert full.funnel["positives"] > 60 and full.funnel["negatives"] > 60
    res = labels.label_pairs(c, np.arange(1, n + 1), labels.PairsConfig(positive=0.6, negative=-0.6, max_pairs=100, seed=1))
    sign = res.pairs["label"] > 0
    assert len(res.pairs) == 100 and sign.sum() == 50
    for cls in (True, False):  # 20% of each sign in validation
        assert (res.pairs.loc[sign == cls, "split"] == "validation").sum() == 10
    again = labels.label_pairs(c, np.arange(1, n + 1), labels.PairsConfig(positive=0.6, negative=-0.6, max_pairs=100, seed=1))
    assert again.pairs.equals(res.pairs)


def test_sample_reproduces_the_reference_draw():
    ids = list(range(100, 130))
    m, k, seed = len(ids), 50, 42
    rnd = random.Random(seed)  # the reference: combinations -> shuffle -> sample, with random.seed(42)
    pairs = list(itertools.combinations(ids, 2))
    rnd.shuffle(pairs)
    expected = rnd.sample(pairs, k)
    i, j = labels.unrank_pairs(labels.sample_pair_ranks(m, k, seed), m)
    assert [(ids[a], ids[b]) for a, b in zip(i, j)] == expected


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def mal_pairs(mal_dir, mal_catalog, tmp_path_factory):
    """One default `anirec pairs` run on the shared data: (exit code, stdout, stderr, out path)."""
    from anirec.cli import main

    out = tmp_path_factory.mktemp("pairs") / "pairs.parquet"
    import contextlib
    import io

    # a module-scoped fixture cannot use capsys: capture by hand
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(["pairs", "--ratings", str(mal_dir), "--catalog", str(mal_catalog[1]), "--out", str(out)])
        except SystemExit as exc:
            code = exc.code or 0
    return code, stdout.getvalue(), stderr.getvalue(), out


def test_cli_on_shared_data(mal_pairs, mal_catalog):
    code, out, err, path = mal_pairs
    assert code == 0, err
    pairs = pd.read_parquet(path)
    assert list(pairs.columns) == labels.PAIR_COLUMNS
    assert pairs.dtypes["anime_a"] == np.int64 and pairs.dtypes["label"] == np.float32
    assert pairs.dtypes["support"] == np.int32
    assert len(pairs) > 0 and (pairs["label"] > 0).any() and (pairs["label"] < 0).any()
    assert ((pairs["label"] >= 0.7) | (pairs["label"] < -0.7)).all()
    assert (pairs["support"] >= 50).all() and (pairs["anime_a"] < pairs["anime_b"]).all()
    catalog_ids = set(mal_catalog[0]["MAL_ID"])
    assert set(pairs["anime_a"]) <= catalog_ids and set(pairs["anime_b"]) <= catalog_ids
    assert set(pairs["split"]) == {"train", "validation"}
    assert "positives" in out and "negatives" in out and "not in the catalog" in out
    split, meta = load_split(path.with_name("pairs.split.parquet"))
    assert set(split["split"]) == {"train", "test"} and len(meta["ratings_hash"]) == 64


def test_cli_reuses_its_split(mal_pairs, mal_dir, mal_catalog, capsys, tmp_path):
    _, _, _, first = mal_pairs
    out = tmp_path / "again.parquet"
    code, stdout, err = run_cli(capsys, "pairs", "--ratings", mal_dir, "--catalog", mal_catalog[1], "--out", out,
                                "--split", first.with_name("pairs.split.parquet"))
    assert code == 0, err
    assert pd.read_parquet(out).equals(pd.read_parquet(first))
    assert not (tmp_path / "again.split.parquet").exists()


def test_cli_refuses_a_split_from_other_ratings(mal_pairs, mal_catalog, capsys, tmp_path):
    _, _, _, first = mal_pairs
    other = tmp_path / "other.csv"
    rows = load_split(first.with_name("pairs.split.parquet"))[0].head(500)
    rows[["user_id", "anime_id", "rating"]].to_csv(other, index=False)
    err = expect_user_error(capsys, "pairs", "--ratings", other, "--catalog", mal_catalog[1], "--out", tmp_path / "p.parquet",
                            "--split", first.with_name("pairs.split.parquet"))
    assert "other ratings" in err and err.count("\n") == 1


def test_cli_bad_inputs(mal_catalog, capsys, tmp_path):
    catalog = mal_catalog[1]
    ratings = tmp_path / "r.csv"
    ratings.write_text("user_id,anime_id,rating\n" + "".join(f"{u},{2_000_000_000 + a},{r}\n" for u in range(5) for a, r in [(1, 9), (2, 3)]))
    err = expect_user_error(capsys, "pairs", "--ratings", ratings, "--catalog", catalog, "--out", tmp_path / "p.parquet")
    assert "none of its 10 ratings" in err and err.count("\n") == 1
    # thresholds that leave nothing: a support no pair can reach
    ids = mal_catalog[0]["MAL_ID"].to_numpy()[:6]
    rng = np.random.default_rng(0)
    # the first three anime are mostly loved, the last three mostly disliked: positive and negative pairs
    loved = rng.random((40, 6)) < np.array([0.9, 0.9, 0.9, 0.1, 0.1, 0.1])
    rows = [(u, int(a), 10 if loved[u, k] else 2) for u in range(40) for k, a in enumerate(ids)]
    ratings_frame(rows).to_csv(ratings, index=False)
    err = expect_user_error(capsys, "pairs", "--ratings", ratings, "--catalog", catalog, "--out", tmp_path / "p.parquet",
                            "--min-support", "100000")
    assert "no pair is positive or negative" in err and err.count("\n") == 1
    assert not (tmp_path / "p.parquet").exists() and not (tmp_path / "p.split.parquet").exists()
    err = expect_user_error(capsys, "pairs", "--ratings", ratings, "--catalog", catalog, "--label", "cosine")
    assert "--label 'cosine'" in err
    err = expect_user_error(capsys, "pairs", "--ratings", ratings, "--catalog", catalog, "--positive", "-0.8")
    assert "above --positive" in err
    # the small table itself does label pairs with a low support
    code, out, err = run_cli(capsys, "pairs", "--ratings", ratings, "--catalog", catalog, "--out", tmp_path / "ok.parquet",
                             "--min-support", "10", "--quantile", "0")
    assert code == 0, err
    assert len(pd.read_parquet(tmp_path / "ok.parquet")) > 0
