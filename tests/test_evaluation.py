"""anirec.evaluation / anirec.neighbors / `anirec evaluate`: metrics by hand, protocols, leakage, CLI."""

from __future__ import annotations

import hashlib
import json
import re
from math import log2

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from anirec import evaluation as ev
from anirec.interactions import lookup, rows_of_ids, user_item_matrix, with_items
from anirec.item_vectors import itemknn_vectors, tfidf_vectors
from anirec.neighbors import neighbor_table
from anirec.recommenders import make

from helpers import expect_user_error, run_cli


def csr(rows, cols, shape, values=1.0):
    return user_item_matrix(np.asarray(rows), np.asarray(cols), values, shape)


# --------------------------------------------------------------------------- metrics by hand

# 3 users, 6 items. user 0 relevant {1, 3}; user 1 {4} (list only half filled); user 2 {3} (never recommended)
RECS = np.array([[0, 1, 2, 3], [4, 2, -1, -1], [5, 0, 1, 2]])
RELEVANT = csr([0, 0, 1, 2], [1, 3, 4, 3], (3, 6))


def test_hit_rate_precision_recall_by_hand():
    assert ev.hit_rate_at_k(RECS, RELEVANT, 1).tolist() == [0, 1, 0]
    assert ev.hit_rate_at_k(RECS, RELEVANT, 2).tolist() == [1, 1, 0]
    assert ev.precision_at_k(RECS, RELEVANT, 2).tolist() == [0.5, 0.5, 0]
    assert ev.precision_at_k(RECS, RELEVANT, 4).tolist() == [0.5, 0.25, 0]  # unfilled slots count as misses
    assert ev.recall_at_k(RECS, RELEVANT, 2).tolist() == [0.5, 1, 0]
    assert ev.recall_at_k(RECS, RELEVANT, 4).tolist() == [1, 1, 0]


def test_ndcg_mrr_coverage_by_hand():
    ndcg4 = ev.ndcg_at_k(RECS, RELEVANT, 4)
    # user 0: hits at ranks 2 and 4 -> (1/log2 3 + 1/log2 5) / (1 + 1/log2 3)
    assert ndcg4[0] == pytest.approx((1 / log2(3) + 1 / log2(5)) / (1 + 1 / log2(3)))
    assert ndcg4[1] == pytest.approx(1.0) and ndcg4[2] == 0
    assert ev.ndcg_at_k(RECS, RELEVANT, 2)[0] == pytest.approx((1 / log2(3)) / (1 + 1 / log2(3)))
    assert ev.mrr_at_k(RECS, RELEVANT, 4).tolist() == [0.5, 1, 0]
    assert ev.mrr_at_k(RECS, RELEVANT, 1).tolist() == [0, 1, 0]
    assert ev.coverage_at_k(RECS, 2, 6) == pytest.approx(5 / 6)  # {0, 1, 2, 4, 5}; -1 is not an item
    assert ev.coverage_at_k(RECS, 4, 6) == 1.0
    assert ev.coverage_at_k(RECS, 1, 12) == pytest.approx(3 / 12)


def test_popularity_bias_share_of_the_most_rated_by_hand():
    counts = np.array([5, 9, 9, 1, 0, 7])
    assert ev.most_rated(counts, 3).tolist() == [1, 2, 5]  # 9, 9, 7
    assert ev.most_rated(counts, 2).tolist() == [1, 2]  # a tie goes to the lower row
    # places: user 0 (0, 1, 2, 3), user 1 (4, 2): 3 of 6 filled places are items 1, 2 or 5
    assert ev.popular_share_at_k(RECS[:2], 4, np.array([1, 2, 5])) == pytest.approx(3 / 6)
    assert ev.popular_share_at_k(RECS[:2], 1, np.array([1, 2, 5])) == 0.0


def test_nps_counts_passives_as_found():
    rated = csr([0, 0, 1], [1, 2, 4], (3, 6), values=np.array([1, 0, -1], np.float32))  # a stored 0 = passive
    sums, counts = ev.nps_at_k(RECS, rated, 4)
    assert sums.tolist() == [1, -1, 0] and counts.tolist() == [2, 1, 0]


# --------------------------------------------------------------------------- reference protocol


def test_reference_protocol_tiny_case():
    """2 scored users, 6 items, a hand-made neighbour table -> known lists, NPS and found count."""
    rows = [  # user, anime, opinion, split
        (1, 10, 1, "train"), (1, 11, 1, "train"), (1, 12, 1, "test"), (1, 13, -1, "test"),
        (2, 14, 1, "train"), (2, 15, -1, "train"), (2, 10, 1, "test"), (2, 13, -1, "test"),
        (3, 11, -1, "train"), (3, 12, 1, "test"),  # no promoter in train: not scored
        (1, 99, 1, "test"),  # anime not in the catalog: dropped
    ]
    split = pd.DataFrame(rows, columns=["user_id", "anime_id", "opinion", "split"])
    split, dropped = with_items(split, np.arange(10, 16))
    assert dropped == 1
    task = ev.reference_task(split, n_items=6, k=2)
    assert task.users.tolist() == [1, 2]
    assert task.promoted.toarray().tolist() == [[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0]]
    recs = np.array([[2, 3], [0, 1]])
    by = {r["metric"]: r for r in ev.score(task, recs, n_boot=200, seed=0)}
    # found: user 1 -> item 2 (+1), item 3 (-1); user 2 -> item 0 (+1)
    assert by["found@2"]["value"] == 3
    assert by["nps@2"]["value"] == pytest.approx(1 / 3)
    assert by["found_users@2"]["value"] == 1.0
    assert by["nps_rank_0-2"]["value"] == pytest.approx(1 / 3)
    assert by["coverage@2"]["value"] == pytest.approx(4 / 6)
    assert by["nps@2"]["n_users"] == 2


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_contains_mean_and_is_seeded():
    rng = np.random.default_rng(0)
    x = rng.random((300, 3))
    lo, hi = ev.bootstrap_ci(x, 500, seed=1)
    assert np.all(lo <= x.mean(axis=0)) and np.all(x.mean(axis=0) <= hi) and np.all(hi - lo > 0)
    lo2, hi2 = ev.bootstrap_ci(x, 500, seed=1)
    assert np.array_equal(lo, lo2) and np.array_equal(hi, hi2)
    lo3, _ = ev.bootstrap_ci(x, 500, seed=2)
    assert not np.array_equal(lo, lo3)
    num, den = rng.integers(-2, 3, 300).astype(float), rng.integers(0, 4, 300).astype(float)
    rlo, rhi = ev.bootstrap_ci(num, 500, seed=1, denominators=den)
    assert rlo <= num.sum() / den.sum() <= rhi
    assert np.isnan(ev.bootstrap_ci(x[:, 0], 0)[0])  # 0 resamples: no interval


def test_paired_difference_says_better_worse_or_no_difference():
    rng = np.random.default_rng(0)
    user_effect = rng.random(400) * 5  # users differ far more than the two methods do
    ref = user_effect + rng.normal(0, 0.01, 400)
    better = ref + 0.05 + rng.normal(0, 0.01, 400)
    r = ev.paired_difference(better, ref, 500, seed=1)
    assert r["diff"] == pytest.approx((better - ref).mean()) and r["ci_lo"] <= r["diff"] <= r["ci_hi"]
    assert ev.verdict(r) == "better" and r["better_users"] > 390 and r["n_users"] == 400
    # the separate intervals overlap widely, yet the paired one excludes 0
    lo_b, hi_b = ev.bootstrap_ci(better, 500, seed=1)
    lo_r, hi_r = ev.bootstrap_ci(ref, 500, seed=1)
    assert lo_b < hi_r
    assert ev.verdict(ev.paired_difference(ref, better, 500, seed=1)) == "worse"
    same = ref + rng.normal(0, 0.01, 400)
    assert ev.verdict(ev.paired_difference(same, ref, 500, seed=1)) == "no difference"
    assert ev.verdict(ev.paired_difference(better, ref, 0)) == "n/a"


# --------------------------------------------------------------------------- baselines


def test_popular_and_random_skip_seen_items():
    seen = csr([0, 0, 1], [0, 2, 5], (3, 6))
    counts = np.array([5, 1, 9, 9, 0, 3])
    # fitting users: item i promoted by counts[i] users
    fit = csr(np.arange(counts.sum()), np.repeat(np.arange(6), counts), (int(counts.sum()), 6))
    pop = make("popular").fit(fit, None)
    nobody = sp.csr_matrix((3, 6), dtype=np.float32)
    rec, _ = pop.recommend(nobody, 3, exclude=seen)
    # popularity order 2, 3 (tie: lower index first), 0, 5, 1, 4
    assert rec.tolist() == [[3, 5, 1], [2, 3, 0], [2, 3, 0]]
    assert pop.recommend(nobody, 2, exclude=seen, candidates=[1, 4, 5])[0].tolist() == [[5, 1], [1, 4], [5, 1]]
    rnd = make("random", {"seed": 3}).fit(fit, None)
    r1, _ = rnd.recommend(nobody, 4, exclude=seen)
    assert np.array_equal(r1, rnd.recommend(nobody, 4, exclude=seen)[0])
    assert not lookup(seen, r1)[0].any()
    assert all(len(set(row)) == 4 for row in r1.tolist())
    assert rnd.recommend(nobody, 5, exclude=seen)[0][0].tolist().count(-1) == 1  # only 4 unseen items left
    other = make("random", {"seed": 4}).fit(fit, None).recommend(nobody, 4, exclude=seen)[0]
    assert not np.array_equal(r1, other)  # the seed matters


def test_neighbour_tables():
    v = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    idx, _ = neighbor_table(v, 2, candidates=np.array([2, 3]))
    assert idx.tolist() == [[2, 3], [2, 3], [3, -1], [2, -1]]  # only candidates, never itself
    fit = csr([0, 0, 1, 2], [0, 1, 0, 3], (3, 4))  # users x items: item 2 unrated; item 3 shares no rater
    sidx, sval = neighbor_table(itemknn_vectors(fit), 3)
    assert sidx[2].tolist() == [-1, -1, -1] and np.isneginf(sval[2]).all()  # the top-k's padding
    assert sidx[0].tolist() == [1, -1, -1] and sidx[1].tolist() == [0, -1, -1] and sidx[3].tolist() == [-1, -1, -1]
    assert sval[0, 0] == pytest.approx(1 / np.sqrt(2))


def test_tfidf_finds_the_same_words():
    docs = ["a mecha pilot fights giant robots", "giant robots and a mecha pilot", "a cooking club bakes bread",
            "the club bakes cakes"]
    idx, _ = neighbor_table(tfidf_vectors(docs), 1)
    assert idx[:, 0].tolist() == [1, 0, 3, 2]


# --------------------------------------------------------------------------- holdout and cold start


def _opinions(n_users=40, n_items=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(u, i, int(rng.choice([-1, 0, 1]))) for u in range(n_users) for i in rng.choice(n_items, 12, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item", "opinion"])


def test_holdout_quota_and_no_leak():
    ops = _opinions().sort_values(["user_id", "item"]).reset_index(drop=True)
    held = ev.holdout_mask(ops["user_id"].to_numpy(), ops["opinion"].to_numpy(), 0.25, 2, seed=5)
    assert np.array_equal(held, ev.holdout_mask(ops["user_id"].to_numpy(), ops["opinion"].to_numpy(), 0.25, 2, seed=5))
    prom = ops["opinion"].to_numpy() > 0
    for u, g in ops.assign(held=held, prom=prom).groupby("user_id"):  # check per user, by hand
        n_p = int(g.prom.sum())
        want = 0 if n_p < 2 else min(max(1, int(np.floor(0.25 * n_p + 0.5))), n_p - 1)
        assert int((g.held & g.prom).sum()) == want
    task = ev.holdout_task(ops, 30, (5, 10), 0.25, 2, seed=5)
    kept = ops[~held]
    assert np.array_equal(make("popular").fit(task.fit, None).counts, np.bincount(kept.loc[kept.opinion > 0, "item"], minlength=30))
    assert task.fit.nnz == int((kept.opinion != 0).sum())
    # a target is never among the user's inputs or seen items
    assert task.seen.multiply(task.relevant).nnz == 0 and task.promoted.multiply(task.relevant).nnz == 0
    assert task.relevant.nnz == int((held & prom).sum()) and task.rated.nnz == int(held.sum())


def test_cold_start_never_leaks(mal_dir, mal_catalog):
    from anirec.data import load_ratings
    from anirec.opinions import to_opinions

    catalog, _ = mal_catalog
    ids = catalog["MAL_ID"].to_numpy()
    ratings = load_ratings(mal_dir)
    cold = ev.cold_anime_ids(ratings, ids, 0.15, seed=7)
    assert np.array_equal(cold, ev.cold_anime_ids(ratings, ids, 0.15, seed=7))
    rated = np.intersect1d(ratings["anime_id"], ids)
    assert np.isin(cold, rated).all() and len(cold) == int(np.floor(0.15 * len(rated) + 0.5))

    ops, _ = with_items(to_opinions(ratings, keep_passives=True), ids)
    cold_items = rows_of_ids(ids, cold)
    task = ev.coldstart_task(ops, len(ids), cold_items, (10,))
    assert task.fit[:, cold_items].nnz == 0 and task.fit.nnz > 0  # CF/popularity never see a cold rating
    assert task.promoted[:, cold_items].nnz == 0 and task.seen[:, cold_items].nnz == 0
    warm = np.setdiff1d(np.arange(len(ids)), cold_items)
    assert task.relevant[:, warm].nnz == 0 and task.relevant.nnz > 0
    idx, _ = neighbor_table(itemknn_vectors(task.fit), 10)
    assert (idx[cold_items] == -1).all() and not np.isin(idx, cold_items).any()
    cfg = ev.EvalConfig(catalog="unused")
    for method in ("itemknn", "ease"):
        recs, _ = ev.run_method(ev.MethodSpec(method, method), task, catalog, cfg)
        assert (recs == -1).all()  # CF knows nothing of an anime nobody rated
    for method, params in [("popular", {}), ("random", {}), ("text", {"model": "tfidf"}), ("hybrid", {})]:
        recs, info = ev.run_method(ev.MethodSpec(method, method, params), task, catalog, cfg)
        assert info["lists_sha256"] == hashlib.sha256(recs.astype(np.int64).tobytes()).hexdigest()
        assert np.isin(recs[recs >= 0], cold_items).all() and (recs >= 0).any()


def test_drop_anime_and_pairs_check(tmp_path, capsys):
    pairs = pd.DataFrame({"anime_a": [1, 2, 3], "anime_b": [4, 5, 6]})
    assert ev.drop_anime(pairs, [5, 3]).to_dict("list") == {"anime_a": [1], "anime_b": [4]}
    assert len(ev.drop_anime(pd.DataFrame({"anime_id": [1, 2, 2]}), [2])) == 1
    pairs.to_parquet(tmp_path / "p.parquet")
    assert ev.check_pairs_exclude([str(tmp_path / "p.parquet")], np.array([5, 3])) == {str(tmp_path / "p.parquet"): 2}
    assert "2 pairs contain a cold-start anime" in capsys.readouterr().err
    assert ev.check_pairs_exclude([str(tmp_path / "p.parquet")], np.array([7])) == {str(tmp_path / "p.parquet"): 0}


# --------------------------------------------------------------------------- CLI end to end


@pytest.fixture(scope="module")
def eval_inputs(mal_dir, mal_catalog, tmp_path_factory):
    """A small slice of the shared data: the 300 most rated catalog anime, 150 users, a saved split."""
    from anirec.data import load_ratings
    from anirec.split import make_split, save_split

    catalog, _ = mal_catalog
    d = tmp_path_factory.mktemp("evaldata")
    ratings = load_ratings(mal_dir)
    ratings = ratings[ratings["anime_id"].isin(catalog["MAL_ID"])]
    top = ratings["anime_id"].value_counts().index[:300]
    users = np.sort(ratings["user_id"].unique())[:150]
    ratings = ratings[ratings["anime_id"].isin(top) & ratings["user_id"].isin(users)].reset_index(drop=True)
    ratings.to_parquet(d / "ratings.parquet", index=False)
    catalog[catalog["MAL_ID"].isin(top)].reset_index(drop=True).to_parquet(d / "catalog.parquet", index=False)
    info = make_split(ratings, quantile=0.5)
    save_split(info.frame, d / "split.parquet", info.meta)
    return d


def expected_rows(methods, k=10, ks=(5, 10, 20)):
    buckets = ["nps_rank_0-2", "nps_rank_3-6", "nps_rank_7+"]
    ref = [f"nps@{k}", f"found@{k}", f"found_users@{k}", f"coverage@{k}", f"top100_share@{k}"] + buckets
    rank = [f"{m}@{x}" for x in ks for m in ("hit_rate", "precision", "recall", "ndcg", "mrr",
                                              "nps", "found", "found_users", "coverage", "top100_share")] + buckets
    mixed = rank + [f"{m}@{x}" for x in ks for m in ("new_share", "hits_new", "hits_known")]
    return {(p, m, metric) for m in methods for p, ms in
            [("reference", ref), ("holdout", rank), ("coldstart", rank), ("mixed", mixed)] for metric in ms}


def test_evaluate_cli_end_to_end(eval_inputs, tiny_model_path, tmp_path, capsys):
    d = eval_inputs
    args = ["evaluate", "--catalog", d / "catalog.parquet", "--ratings", d / "ratings.parquet",
            "--split", d / "split.parquet", "--models", f"tiny={tiny_model_path}", "-b", "all",
            "--bootstrap", "50", "--cache-dir", tmp_path / "cache", "--seed", "3"]
    code, out, err = run_cli(capsys, *args, "--out", tmp_path / "a")
    assert code == 0, err
    assert "holdout   tiny" in out and "| tfidf |" in out
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert {"results.csv", "results.md", "meta.json", "cold_anime.txt", "nps_by_rank.png",
            "reference_nps_at_10.png", "holdout_hit_rate_at_10.png", "coldstart_hit_rate_at_10.png",
            "mixed_ndcg_at_10.png"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    res = pd.read_csv(tmp_path / "a" / "results.csv")
    got = set(zip(res["protocol"], res["method"], res["metric"]))
    assert got == expected_rows(["random", "popular", "tfidf", "itemknn", "ease", "tiny"])
    assert len(res) == len(got)
    ci = res.dropna(subset=["ci_lo"])
    assert ((ci["ci_lo"] <= ci["value"] + 1e-9) & (ci["value"] <= ci["ci_hi"] + 1e-9)).all()
    cold = res[(res.protocol == "coldstart") & (res.method == "itemknn") & (res.metric == "hit_rate@10")]
    assert cold["value"].iloc[0] == 0  # CF cannot recommend an anime nobody rated
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["seed"] == 3 and len(meta["data"]["split"]["file_hash"]) == 64
    assert len(meta["data"]["catalog"]["description_hash"]) == 64 and meta["methods"]["tiny"]["method"] == "text"
    assert meta["methods"]["tiny"]["runs"]["holdout"]["embedding"]["fingerprint"]
    hashes = {(m, p): run["lists_sha256"] for m, v in meta["methods"].items() for p, run in v["runs"].items()}
    assert len(hashes) == 6 * 4 and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes.values())
    assert hashes[("popular", "holdout")] != hashes[("random", "holdout")]

    # same seed, same results (embeddings now come from the cache)
    code, _, err = run_cli(capsys, *args, "--out", tmp_path / "b")
    assert code == 0, err
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()
    again = json.loads((tmp_path / "b" / "meta.json").read_text())["methods"]
    assert {(m, p): run["lists_sha256"] for m, v in again.items() for p, run in v["runs"].items()} == hashes

    # `anirec cold-anime` writes the list evaluate drew with the same seed
    code, _, err = run_cli(capsys, "cold-anime", "--catalog", d / "catalog.parquet", "--ratings",
                           d / "ratings.parquet", "--seed", "3", "--out", tmp_path / "cold.txt")
    assert code == 0, err
    assert np.array_equal(ev.read_anime_ids(tmp_path / "cold.txt"), ev.read_anime_ids(tmp_path / "a" / "cold_anime.txt"))


def test_missing_model_names_the_config_line(eval_inputs, tmp_path, capsys):
    d = eval_inputs
    cfg = tmp_path / "x.toml"
    cfg.write_text(f'catalog = "{d / "catalog.parquet"}"\nratings = "{d / "ratings.parquet"}"\nbaselines = ["popular"]\n'
                   f'protocols = ["holdout"]\nbootstrap = 0\nout = "{tmp_path / "o"}"\n\n'
                   '[[models]]\nname = "gone"\nmodel = "out/models/does-not-exist"\n')
    err = expect_user_error(capsys, "evaluate", "--config", cfg)
    assert f"{cfg} line 10" in err and "does-not-exist" in err and "optional = true" in err
    cfg.write_text(cfg.read_text() + "optional = true\n")
    code, _, err = run_cli(capsys, "evaluate", "--config", cfg)
    assert code == 0 and "skipped" in err
    assert set(pd.read_csv(tmp_path / "o" / "results.csv")["method"]) == {"popular"}


def test_compare_to_reports_paired_differences(eval_inputs, tmp_path, capsys):
    d = eval_inputs
    args = ["evaluate", "--catalog", d / "catalog.parquet", "--ratings", d / "ratings.parquet", "-b", "popular,tfidf,ease",
            "--protocols", "holdout,coldstart", "--bootstrap", "50", "--out", tmp_path / "o"]
    code, out, err = run_cli(capsys, *args, "--compare-to", "tfidf", "--compare-to", "popular")
    assert code == 0, err
    paired = pd.read_csv(tmp_path / "o" / "paired.csv")
    assert set(zip(paired.protocol, paired.method, paired.reference)) == (
        {(p, m, "tfidf") for p in ("holdout", "coldstart") for m in ("popular", "ease")}
        | {(p, m, "popular") for p in ("holdout", "coldstart") for m in ("tfidf", "ease")})
    assert (paired.metric == "ndcg@10").all()
    paired = paired[paired.reference == "tfidf"]
    res = pd.read_csv(tmp_path / "o" / "results.csv").set_index(["protocol", "method", "metric"])["value"]
    for r in paired.itertuples():  # the paired mean is the difference of the two methods' means
        assert r.diff == pytest.approx(res[(r.protocol, r.method, "ndcg@10")] - res[(r.protocol, "tfidf", "ndcg@10")], abs=1e-5)
        assert r.ci_lo <= r.diff + 1e-9 <= r.ci_hi + 2e-9
    cold_ease = paired[(paired.protocol == "coldstart") & (paired.method == "ease")].iloc[0]
    assert cold_ease.verdict == "worse"  # CF recommends no anime nobody rated
    assert "minus tfidf's, paired" in (tmp_path / "o" / "results.md").read_text()
    assert "unknown" not in err
    msg = expect_user_error(capsys, *args, "--compare-to", "tfdif")
    assert "compare_to names 'tfdif'" in msg and "tfidf" in msg


def test_config_errors(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('catalog = "c.parquet"\nkk = 3\n')
    assert "unknown key 'kk'" in expect_user_error(capsys, "evaluate", "--config", cfg)
    assert "unknown baseline 'lightgcn'" in expect_user_error(capsys, "evaluate", "--catalog", "c.parquet", "-b", "lightgcn")


def test_holdout_never_holds_out_protected_rows():
    """Rows pair labels were mined from (split train) never become held-out targets."""
    rng = np.random.default_rng(3)
    n = 400
    ops = pd.DataFrame({"user_id": rng.integers(0, 20, n), "item": rng.integers(0, 50, n),
                        "opinion": rng.choice([-1, 0, 1], n, p=[0.2, 0.3, 0.5])})
    ops = ops.drop_duplicates(["user_id", "item"]).sort_values(["user_id", "item"]).reset_index(drop=True)
    protected = rng.random(len(ops)) < 0.6
    held = ev.holdout_mask(ops["user_id"].to_numpy(), ops["opinion"].to_numpy(), 0.3, 2, seed=1, protected=protected)
    assert held.any()
    assert not (held & protected).any()
    unprotected = ev.holdout_mask(ops["user_id"].to_numpy(), ops["opinion"].to_numpy(), 0.3, 2, seed=1)
    assert np.array_equal(unprotected, ev.holdout_mask(ops["user_id"].to_numpy(), ops["opinion"].to_numpy(), 0.3, 2,
                                                       seed=1, protected=np.zeros(len(ops), bool)))
    task = ev.holdout_task(ops.assign(protected=protected), 50, (5,), 0.3, 2, seed=1)
    prot = ops[protected]
    rel = task.relevant.tocoo()
    held_pairs = set(zip(task.users[rel.row], rel.col))
    assert not held_pairs & set(zip(prot["user_id"], prot["item"]))


# --------------------------------------------------------------------------- score() by hand


def _task(protocol, relevant, rated, n_items=8, candidates=None, new_items=None, ks=(2, 4)):
    n_users = relevant.shape[0]
    empty = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    return ev.Task(protocol, ks, np.arange(n_users), empty, empty, rated, relevant, empty,
                   candidates=None if candidates is None else np.asarray(candidates),
                   new_items=None if new_items is None else np.asarray(new_items))


def test_score_holdout_by_hand():
    # user 0: targets {1, 5}, also rated 2 (detractor) and 6 (passive); user 1: target {3}
    relevant = csr([0, 0, 1], [1, 5, 3], (2, 8))
    rated = csr([0, 0, 0, 0, 1], [1, 5, 2, 6, 3], (2, 8), values=np.array([1, 1, -1, 0, 1], np.float32))
    recs = np.array([[2, 1, 7, 5], [0, 4, 6, -1]])
    by = {r["metric"]: r for r in ev.score(_task("holdout", relevant, rated), recs, n_boot=0)}
    d = [1 / log2(r + 2) for r in range(4)]
    assert by["hit_rate@2"]["value"] == pytest.approx(0.5)  # user 0 hits at rank 2, user 1 never
    assert by["precision@4"]["value"] == pytest.approx((2 / 4 + 0) / 2)
    assert by["recall@2"]["value"] == pytest.approx((1 / 2 + 0) / 2)
    assert by["ndcg@4"]["value"] == pytest.approx(((d[1] + d[3]) / (d[0] + d[1]) + 0) / 2)
    assert by["mrr@4"]["value"] == pytest.approx((1 / 2 + 0) / 2)
    # found among ratings: user 0 -> 2 (-1), 1 (+1), 5 (+1); user 1 -> none (6 was user 0's)
    assert by["found@4"]["value"] == 3 and by["nps@4"]["value"] == pytest.approx(1 / 3)
    assert by["found@2"]["value"] == 2 and by["nps@2"]["value"] == pytest.approx(0.0)
    # coverage over all 8 items: {0, 1, 2, 4, 5, 6, 7} at 4; {0, 1, 2, 4} at 2
    assert by["coverage@4"]["value"] == pytest.approx(7 / 8) and by["coverage@2"]["value"] == pytest.approx(4 / 8)
    # ranks 0-2 hold 2 (-1) and 1 (+1); ranks 3-6 hold 5 (+1); 7+ is empty
    assert by["nps_rank_0-2"]["value"] == pytest.approx(0.0) and by["nps_rank_3-6"]["value"] == pytest.approx(1.0)
    assert np.isnan(by["nps_rank_7+"]["value"])
    assert all(r["n_users"] == 2 for r in by.values())


def test_score_coldstart_coverage_is_over_the_candidates():
    relevant = csr([0, 1], [6, 7], (2, 8))
    recs = np.array([[6, 5, -1, -1], [5, 6, -1, -1]])
    by = {r["metric"]: r for r in ev.score(_task("coldstart", relevant, relevant, candidates=[5, 6, 7]), recs, n_boot=0)}
    assert by["coverage@2"]["value"] == pytest.approx(2 / 3)  # 2 of the 3 cold anime, not of all 8 items
    assert by["hit_rate@4"]["value"] == pytest.approx(0.5)
    assert by["precision@4"]["value"] == pytest.approx(0.125)  # an unfilled list is not shortened


def test_score_mixed_counts_new_and_known_hits():
    relevant = csr([0, 0, 1], [1, 6, 7], (2, 8))  # 6 and 7 are new anime
    recs = np.array([[6, 1, 2, 7], [0, 3, -1, -1]])
    task = _task("mixed", relevant, relevant, new_items=[6, 7])
    by = {r["metric"]: r for r in ev.score(task, recs, n_boot=0)}
    assert by["hits_new@4"]["value"] == 1 and by["hits_known@4"]["value"] == 1
    assert by["new_share@4"]["value"] == pytest.approx(2 / 6)  # 6 filled slots, 2 of them new
    assert by["new_share@2"]["value"] == pytest.approx(1 / 4)


def test_mixed_protocol_hides_new_anime_from_fitting_but_offers_them():
    ops = _opinions(n_users=60, n_items=30, seed=2)
    cold = np.array([3, 11, 20])
    task = ev.mixed_task(ops, 30, cold, (5, 10), 0.25, 2, seed=1)
    assert task.candidates is None and task.new_items.tolist() == [3, 11, 20]
    assert task.fit[:, cold].nnz == 0 and task.promoted[:, cold].nnz == 0 and task.seen[:, cold].nnz == 0
    assert task.relevant[:, cold].nnz > 0 and task.info["targets_known"] > 0
    assert task.seen.multiply(task.relevant).nnz == 0
    # every promoted cold rating of an evaluated user is a target
    evaluated = ops[ops.user_id.isin(task.users) & ops.item.isin(cold) & (ops.opinion > 0)]
    assert task.info["targets_new"] == len(evaluated)


def test_rows_any_fine_tuned_model_learnt_from_are_protected(eval_inputs, tmp_path, capsys):
    """The train rows of each listed pairs file's own split are never held out, even without --split."""
    from anirec.evaluation.runner import load_inputs
    from anirec.split import load_split

    d = eval_inputs
    code, _, err = run_cli(capsys, "pairs", "--ratings", d / "ratings.parquet", "--catalog", d / "catalog.parquet",
                           "--out", tmp_path / "p.parquet", "--quantile", "0.5", "--min-support", "5")
    assert code == 0, err
    cfg = ev.EvalConfig(catalog=str(d / "catalog.parquet"), ratings=str(d / "ratings.parquet"),
                        pairs=[str(tmp_path / "p.parquet")], protocols=["holdout"]).check()
    data = load_inputs(cfg, ["holdout"])
    split, _ = load_split(tmp_path / "p.split.parquet")
    train = split[split["split"] == "train"]
    keys = set(zip(train["user_id"], train["anime_id"]))
    got = set(zip(data.opinions.loc[data.opinions["protected"], "user_id"], data.opinions.loc[data.opinions["protected"], "anime_id"]))
    assert got and got <= keys
    assert data.meta["ratings"]["protected_from"] == [str(tmp_path / "p.split.parquet")]
    task = ev.holdout_task(data.opinions, len(data.catalog), (10,))
    rel = task.relevant.tocoo()
    ids = data.catalog["MAL_ID"].to_numpy()
    assert not set(zip(task.users[rel.row], ids[rel.col])) & keys


# --------------------------------------------------------------------------- released candidates


def test_released_items_by_hand():
    catalog = pd.DataFrame({"Premiered": ["Spring 2015", "Fall 2016", "Winter 2017", "Unknown", "Unknown", "Unknown"],
                            "Aired": ["", "", "", "", "Mar 3, 2018", "Sep 1, 2016"]})
    rows, info = ev.released_items(catalog, np.array([0, 1, 1]))
    # Fall 2016 is the latest rated premiere: Winter 2017 and the film of March 2018 came later;
    # an anime with no date at all stays, and one aired in Sep 2016 (Summer) premiered before it
    assert rows.tolist() == [0, 1, 3, 5]
    assert info == {"as_of": "Fall 2016", "released": 4, "later": 2}
    rows, info = ev.released_items(catalog, np.array([3]))  # no dated rated anime: nothing to go by
    assert rows.tolist() == list(range(6)) and info["as_of"] is None


def test_anime_premiered_after_the_ratings_are_no_candidates(eval_inputs, mal_catalog, tmp_path):
    """Unrated anime that premiered after the ratings' latest season never reach a holdout or
    mixed list (with candidates = 'all' cEASE's quota does put them there)."""
    from anirec.evaluation.runner import load_inputs

    d = eval_inputs
    full, _ = mal_catalog
    small = pd.read_parquet(d / "catalog.parquet")
    later = full[~full["MAL_ID"].isin(small["MAL_ID"])].head(40).assign(Premiered="Spring 2031")
    catalog = pd.concat([small, later], ignore_index=True)
    catalog.to_parquet(tmp_path / "catalog.parquet", index=False)
    later_rows = np.arange(len(small), len(catalog))
    for candidates, expect_later in (("released", False), ("all", True)):
        cfg = ev.EvalConfig(catalog=str(tmp_path / "catalog.parquet"), ratings=str(d / "ratings.parquet"),
                            protocols=["holdout", "mixed"], candidates=candidates, baselines=["popular"]).check()
        data = load_inputs(cfg, cfg.protocols)
        released = None
        if candidates == "released":
            released, info = ev.released_items(data.catalog, data.opinions["item"].to_numpy())
            assert info["later"] == len(later)
        tasks, _ = ev.build_tasks(cfg, cfg.protocols, data.catalog["MAL_ID"].to_numpy(), None, data.opinions, {}, released)
        for task in tasks:
            rec = make("cease", {"new_slots": 2}).fit(task.fit, data.catalog)
            recs, _ = rec.recommend(task.promoted, k=10, exclude=task.seen, candidates=task.candidates)
            assert np.isin(recs, later_rows).any() == expect_later, (candidates, task.protocol)
    outcome = ev.run_evaluation(ev.EvalConfig(catalog=str(tmp_path / "catalog.parquet"), ratings=str(d / "ratings.parquet"),
                                              protocols=["holdout"], baselines=["popular"], bootstrap=0,
                                              out=str(tmp_path / "out")), echo=lambda *a: None)
    assert outcome.meta["data"]["candidates"]["later"] == len(later)
    assert outcome.meta["protocols"]["holdout"]["users"] > 0


def test_candidates_must_be_released_or_all(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('catalog = "x.parquet"\ncandidates = "future"\n')
    assert "candidates 'future'" in expect_user_error(capsys, "evaluate", "--config", str(cfg))


def test_undated_catalog_keeps_every_anime_and_says_so(eval_inputs, tmp_path):
    d = eval_inputs
    catalog = pd.read_parquet(d / "catalog.parquet").assign(Premiered="Unknown", Aired="Unknown")
    catalog.to_parquet(tmp_path / "catalog.parquet", index=False)
    said = []
    outcome = ev.run_evaluation(ev.EvalConfig(catalog=str(tmp_path / "catalog.parquet"), ratings=str(d / "ratings.parquet"),
                                              protocols=["holdout"], baselines=["popular"], bootstrap=0,
                                              out=str(tmp_path / "out")), echo=said.append)
    assert outcome.meta["data"]["candidates"] == {"rule": "released", "as_of": None, "released": len(catalog), "later": 0}
    assert "candidates: every anime (no rated anime has a premiere date to go by)" in said
