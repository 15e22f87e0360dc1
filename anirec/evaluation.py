"""Honest comparison of embedders and baselines: `anirec evaluate` (METHOD.md sections 5-6).

Every method yields a (users x k) array of catalog row indices (-1 = no recommendation).
Text embedders, TF-IDF and item-kNN go through the same neighbour table + reference user
pooling (:mod:`anirec.baselines`, :func:`anirec.index.pool_for_users`); random and
most-popular rank directly. Three protocols score those arrays:

``reference``  faithful to the reference: the saved train/test split of `anirec pairs`;
    each test user's train promoters are pooled (k neighbours each, top k kept); the score
    is the mean opinion (+1/0/-1) of the recommendations the user rated in test, over all
    such "found" recommendations, reported with how many were found. It ignores misses.
``holdout``    leakage-free ranking metrics: for every user with >= ``min_promoted``
    promoted anime, a seeded ``fraction`` of their promoted anime (at least 1, never all)
    and the same fraction of their other ratings are held out. Targets = the held-out
    promoters; the user's remaining ratings are the input (promoters pooled) and are never
    recommended. CF and popularity are fit on the remaining ratings only. Hit rate,
    precision, recall, NDCG and MRR at each k, catalog coverage, and the NPS of the
    recommendations found among the held-out ratings. When a split is given, its train rows
    (the rows pair labels, hence fine-tuned models, were mined from) are never held out, so
    the protocol is leakage-free for fine-tuned models too, not only for what evaluation
    fits (CF, popularity).
``coldstart``  a seeded set of rated anime (``cold_fraction``) is treated as brand new:
    every rating of them is removed from the fitting data (CF, popularity, and the pair
    labels if `anirec pairs --exclude-anime` is given the same list). Users with a promoted
    cold anime and a promoted warm anime are evaluated: input = their warm ratings, targets
    = their promoted cold anime, and **methods recommend only among the cold anime** (the
    neighbour tables are restricted to cold candidates; random/popular rank only cold
    anime). CF has no rating of a cold anime, so it can recommend none: this is where text
    must win. Metrics as in ``holdout``; coverage is over the cold anime.

Bootstrap confidence intervals resample users (seeded, paired across methods: every method
sees the same resamples). Outputs: results.csv, results.md, PNG plots, meta.json,
cold_anime.txt, all written atomically.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import __version__
from .baselines import (
    dense_neighbors, itemknn_vectors, lookup, popular_recommend, promoter_counts, random_recommend,
    sparse_neighbors, tfidf_vectors,
)
from .data import read_anime_ids, write_anime_ids  # noqa: F401  (re-exported: the cold-start list helpers)
from .errors import AnirecError, warn
from .index import pool_for_users, rows_of_ids
from .io import atomic_path, hash_file, hash_strings, write_text

PROTOCOLS = ("reference", "holdout", "coldstart")
BASELINES = ("random", "popular", "tfidf", "itemknn")
RANK_BUCKETS = ((0, 3, "0-2"), (3, 7, "3-6"), (7, None, "7+"))

# Seed streams: one seed drives several independent random choices.
_STREAM_HOLDOUT, _STREAM_COLD, _STREAM_BOOT = 1, 2, 3


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream])


# --------------------------------------------------------------------------- sparse helpers


def user_item_matrix(rows: np.ndarray, cols: np.ndarray, values, shape: tuple[int, int]) -> sp.csr_matrix:
    """CSR (users x items) built directly, so explicit zeros (passive opinions) stay stored.

    A stored entry means "this user rated this item"; its value is the opinion. Duplicate
    (row, col) pairs keep the last one.
    """
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    values = np.broadcast_to(np.asarray(values, np.float32), rows.shape)
    keys = rows * shape[1] + cols
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    last = np.r_[keys[1:] != keys[:-1], True] if len(keys) else np.zeros(0, bool)
    keys, values = keys[last], values[last]
    indptr = np.r_[0, np.cumsum(np.bincount(keys // shape[1], minlength=shape[0]))]
    return sp.csr_matrix((values, keys % shape[1], indptr), shape=shape)


# --------------------------------------------------------------------------- metrics


def hit_matrix(recs: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """(users x k) bool: the recommendation at each rank is a relevant (non-zero) item."""
    found, values = lookup(relevant, recs)
    return found & (values != 0)


def _n_relevant(relevant: sp.csr_matrix) -> np.ndarray:
    r = sp.csr_matrix(relevant)
    return np.asarray((r != 0).sum(axis=1)).ravel().astype(np.float64)


def _hit_rate(hits, k):
    return hits[:, :k].any(axis=1).astype(np.float64)


def _precision(hits, k):
    return hits[:, :k].sum(axis=1) / float(k)  # an unfilled list is penalised, not shortened


def _recall(hits, n_rel, k):
    return np.divide(hits[:, :k].sum(axis=1), n_rel, out=np.zeros(len(hits)), where=n_rel > 0)


def _ndcg(hits, n_rel, k):
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, :k] * discount[: hits[:, :k].shape[1]]).sum(axis=1)
    ideal = np.r_[0.0, np.cumsum(discount)][np.minimum(n_rel, k).astype(np.int64)]
    return np.divide(dcg, ideal, out=np.zeros(len(hits)), where=ideal > 0)


def _mrr(hits, k):
    h = hits[:, :k]
    first = np.argmax(h, axis=1)
    return np.where(h.any(axis=1), 1.0 / (first + 1.0), 0.0)


def hit_rate_at_k(recs: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """Per user: 1 if any of the first k recommendations is relevant, else 0."""
    return _hit_rate(hit_matrix(recs, relevant), k)


def precision_at_k(recs: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """Per user: relevant items among the first k, divided by k."""
    return _precision(hit_matrix(recs, relevant), k)


def recall_at_k(recs: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """Per user: relevant items among the first k, divided by the user's number of relevant items."""
    return _recall(hit_matrix(recs, relevant), _n_relevant(relevant), k)


def ndcg_at_k(recs: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """Per user: binary-relevance DCG@k (1/log2(rank+2)) over the ideal DCG of min(n_relevant, k) hits."""
    return _ndcg(hit_matrix(recs, relevant), _n_relevant(relevant), k)


def mrr_at_k(recs: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """Per user: 1 / (rank of the first relevant item, 1-based) within the first k, else 0."""
    return _mrr(hit_matrix(recs, relevant), k)


def coverage_at_k(recs: np.ndarray, k: int, n_items: int) -> float:
    """Share of the ``n_items`` candidate items that appear in anyone's first k recommendations."""
    r = np.asarray(recs)[:, :k]
    return float(len(np.unique(r[r >= 0]))) / n_items if n_items else 0.0


def nps_at_k(recs: np.ndarray, rated: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per user: (sum of opinions, count) over the first k recommendations the user rated.

    ``rated`` stores one entry per scored rating, value = opinion (+1/0/-1; a stored 0 is a
    passive and counts as found). The NPS over users is sum(sums) / sum(counts): the mean over
    all found recommendations, as the reference reports it.
    """
    found, values = lookup(rated, np.asarray(recs)[:, :k])
    return (values * found).sum(axis=1), found.sum(axis=1).astype(np.float64)


# --------------------------------------------------------------------------- bootstrap


def bootstrap_ci(values, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05,
                 denominators=None) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI over users (rows), for one metric (n,) or many (n, m) at once.

    The statistic is the mean over users, or with ``denominators`` the ratio of sums
    sum(values) / sum(denominators) (e.g. NPS over found recommendations). Resamples are drawn
    as per-user counts in chunks and applied with one matrix product per chunk. The same
    seed and number of users give the same resamples, so methods are compared pairwise.
    """
    v = np.asarray(values, np.float64)
    one = v.ndim == 1
    v = v.reshape(len(v), -1)
    d = None if denominators is None else np.asarray(denominators, np.float64).reshape(len(v), -1)
    n, m = v.shape
    if n == 0 or n_resamples <= 0:
        nan = np.full(m, np.nan)
        return (nan[0], nan[0]) if one else (nan, nan.copy())
    rng = _rng(seed, _STREAM_BOOT)
    stats = np.empty((n_resamples, m))
    chunk = max(1, (1 << 23) // n)
    for start in range(0, n_resamples, chunk):
        c = min(chunk, n_resamples - start)
        draws = rng.integers(0, n, size=(c, n))
        counts = np.bincount((np.arange(c)[:, None] * n + draws).ravel(), minlength=c * n).reshape(c, n)
        counts = counts.astype(np.float64)
        num = counts @ v
        if d is None:
            stats[start:start + c] = num / n
        else:
            den = counts @ d
            with np.errstate(invalid="ignore", divide="ignore"):
                stats[start:start + c] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: nothing was ever found
        lo, hi = np.nanpercentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return (lo[0], hi[0]) if one else (lo, hi)


# --------------------------------------------------------------------------- cold anime


def cold_anime_ids(ratings: pd.DataFrame, catalog_ids, fraction: float = 0.15, seed: int = 42) -> np.ndarray:
    """The seeded cold-start anime: ``fraction`` of the catalog anime that have any rating.

    Depends only on (ratings' anime ids, catalog ids, fraction, seed), so `anirec cold-anime`
    can write the list before `anirec pairs` and the same list comes back here.
    """
    if not 0.0 < fraction < 1.0:
        raise AnirecError(f"cold fraction {fraction}: must be between 0 and 1 (e.g. 0.15).")
    rated = np.intersect1d(np.unique(ratings["anime_id"].to_numpy(np.int64)), np.asarray(catalog_ids, np.int64))
    if len(rated) < 2:
        raise AnirecError(f"only {len(rated)} catalog anime have ratings: too few for a cold-start view.")
    n_cold = min(max(1, int(np.floor(fraction * len(rated) + 0.5))), len(rated) - 1)
    return np.sort(rated[_rng(seed, _STREAM_COLD).permutation(len(rated))[:n_cold]])


def check_pairs_exclude(pair_files: list[str], cold_ids: np.ndarray) -> dict:
    """How many pairs of each training pairs file contain a cold anime (0 = a clean cold start).

    Fine-tuning sees an anime only through pairs that contain it, so this is the check that the
    fine-tuned models never learnt from a cold anime; a non-zero count is warned about.
    """
    counts = {}
    for f in pair_files:
        if not Path(f).exists():
            raise AnirecError(f"{f}: pairs file not found (listed under `pairs`, the files the fine-tuned models learnt from).")
        frame = pd.read_parquet(f, columns=["anime_a", "anime_b"])
        n = int(len(frame) - len(drop_anime(frame, cold_ids)))
        counts[str(f)] = n
        if n:
            warn(f"{f}: {n:,} pairs contain a cold-start anime, so models fine-tuned on it have seen them. "
                 "Make the pairs with `anirec pairs --exclude-anime cold_anime.txt` for a clean cold-start view.")
    return counts


def drop_anime(frame: pd.DataFrame, anime_ids) -> pd.DataFrame:
    """Rows of a ratings/split frame (``anime_id``) or pairs frame (``anime_a``/``anime_b``) that
    touch none of ``anime_ids``: how the pairs stage keeps cold anime out of pair labels."""
    ids = np.asarray(anime_ids, np.int64)
    cols = [c for c in ("anime_id", "anime_a", "anime_b") if c in frame.columns]
    if not cols:
        raise AnirecError("drop_anime: frame has no anime_id or anime_a/anime_b column.")
    touch = np.zeros(len(frame), bool)
    for c in cols:
        touch |= np.isin(frame[c].to_numpy(np.int64), ids)
    return frame[~touch].reset_index(drop=True)


# --------------------------------------------------------------------------- protocols


@dataclass
class Task:
    """One protocol's users and what each method may see (all matrices are users x catalog items)."""

    protocol: str
    ks: tuple[int, ...]
    n_neighbors: int  # neighbours per promoted item in the pooling
    users: np.ndarray  # user_id of each row
    promoted: sp.csr_matrix  # the pooled input
    seen: sp.csr_matrix  # never recommended
    rated: sp.csr_matrix  # ratings a found recommendation is scored against (value = opinion)
    relevant: sp.csr_matrix | None  # targets (None: the reference protocol has no targets)
    fit: sp.csr_matrix  # (fitting users x items) +1/-1: all that CF and popularity may learn from
    candidates: np.ndarray | None = None  # items that may be recommended (None: all)
    info: dict = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return self.promoted.shape[1]

    @property
    def n_candidates(self) -> int:
        return self.n_items if self.candidates is None else len(self.candidates)


def items_of(catalog_ids, anime_ids) -> np.ndarray:
    """Catalog row of each anime id, -1 for anime the catalog lacks."""
    return rows_of_ids(catalog_ids, anime_ids)


def _fit_matrix(frame: pd.DataFrame, n_items: int) -> sp.csr_matrix:
    """+1/-1 opinions of every fitting user (passives carry no CF signal and are left out)."""
    f = frame[frame["opinion"].to_numpy() != 0]
    codes, _ = pd.factorize(f["user_id"].to_numpy(), sort=True)
    return user_item_matrix(codes, f["item"].to_numpy(), f["opinion"].to_numpy(np.float32), (int(codes.max(initial=-1)) + 1, n_items))


def _user_matrix(frame: pd.DataFrame, users: np.ndarray, n_items: int, values=1.0) -> sp.csr_matrix:
    """(len(users) x items) from the rows of ``frame`` whose user is in ``users`` (sorted)."""
    rows = np.searchsorted(users, frame["user_id"].to_numpy())
    ok = (rows < len(users)) & (users[np.minimum(rows, len(users) - 1)] == frame["user_id"].to_numpy()) if len(users) else np.zeros(len(frame), bool)
    vals = values if np.isscalar(values) else np.asarray(values)[ok]
    return user_item_matrix(rows[ok], frame["item"].to_numpy()[ok], vals, (len(users), n_items))


def reference_task(split: pd.DataFrame, n_items: int, k: int = 10) -> Task:
    """The reference protocol on a split (columns user_id, item, opinion, split)."""
    is_train = (split["split"].astype(str) == "train").to_numpy()
    train, test = split[is_train], split[~is_train]
    train_prom = train[train["opinion"].to_numpy() > 0]
    users = np.intersect1d(test["user_id"].unique(), train_prom["user_id"].unique())
    promoted = _user_matrix(train_prom, users, n_items)
    rated = _user_matrix(test, users, n_items, test["opinion"].to_numpy(np.float32))
    info = {"users": int(len(users)), "test_users": int(test["user_id"].nunique()),
            "train_rows": int(len(train)), "test_rows": int(len(test)),
            "test_rows_of_users": int(rated.nnz), "k": int(k), "neighbours_per_item": int(k)}
    # Faithful: the reference excludes only the user's promoted anime from the pooled list.
    return Task("reference", (int(k),), int(k), users, promoted, promoted, rated, None, _fit_matrix(train, n_items), info=info)


def holdout_mask(user_id: np.ndarray, opinion: np.ndarray, fraction: float = 0.2, min_promoted: int = 2,
                 seed: int = 42, protected: np.ndarray | None = None) -> np.ndarray:
    """Which ratings are held out: per user with >= ``min_promoted`` promoters, round(fraction x n)
    of their promoters (at least 1, at most all but 1) and round(fraction x n) of their other
    ratings, chosen at random (seeded). Rows must come in a fixed order (the caller sorts).

    ``protected`` rows are never held out: the rows pair labels were mined from (the split's
    train rows), so that no held-out rating ever reached a fine-tuned model. Users without an
    unprotected promoter are not evaluated; quotas are capped by the unprotected rows."""
    if not 0.0 < fraction < 1.0:
        raise AnirecError(f"holdout fraction {fraction}: must be between 0 and 1 (e.g. 0.2).")
    if min_promoted < 2:
        raise AnirecError(f"min_promoted {min_promoted}: must be at least 2 (one to hold out, one to recommend from).")
    codes, _ = pd.factorize(np.asarray(user_id), sort=True)
    prom = np.asarray(opinion) > 0
    free = np.ones(len(prom), bool) if protected is None else ~np.asarray(protected, bool)
    n_users = int(codes.max(initial=-1)) + 1
    n_prom = np.bincount(codes[prom], minlength=n_users)
    n_other = np.bincount(codes[~prom], minlength=n_users)
    n_prom_free = np.bincount(codes[prom & free], minlength=n_users)
    n_other_free = np.bincount(codes[~prom & free], minlength=n_users)
    eligible = (n_prom >= min_promoted) & (n_prom_free >= 1)
    quota_prom = np.where(eligible, np.clip(np.floor(fraction * n_prom + 0.5), 1, np.minimum(n_prom - 1, n_prom_free)), 0)
    quota_other = np.where(eligible, np.minimum(np.floor(fraction * n_other + 0.5), n_other_free), 0)
    # rank of each row among its (user, promoter?) group, in a random order; protected rows last
    group = codes.astype(np.int64) * 2 + prom
    key = _rng(seed, _STREAM_HOLDOUT).random(len(group)) + (~free) * 2.0
    order = np.lexsort((key, group))
    g = group[order]
    rank = np.empty(len(g), np.int64)
    rank[order] = np.arange(len(g)) - np.searchsorted(g, g, side="left")
    quota = np.where(prom, quota_prom[codes], quota_other[codes])
    return (rank < quota) & free


def holdout_task(opinions: pd.DataFrame, n_items: int, ks=(5, 10, 20), fraction: float = 0.2,
                 min_promoted: int = 2, seed: int = 42) -> Task:
    """The leakage-free protocol on opinions (columns user_id, item, opinion; passives kept)."""
    ops = opinions.sort_values(["user_id", "item"], kind="stable").reset_index(drop=True)
    protected = ops["protected"].to_numpy(bool) if "protected" in ops else None
    held = holdout_mask(ops["user_id"].to_numpy(), ops["opinion"].to_numpy(), fraction, min_promoted, seed, protected)
    kept, out = ops[~held], ops[held]
    targets = out[out["opinion"].to_numpy() > 0]
    users = np.unique(targets["user_id"].to_numpy())
    kept_prom = kept[kept["opinion"].to_numpy() > 0]
    info = {"users": int(len(users)), "held_out_ratings": int(held.sum()), "targets": int(len(targets)),
            "protected_ratings": int(protected.sum()) if protected is not None else 0,
            "fit_ratings": int(len(kept)), "fraction": fraction, "min_promoted": int(min_promoted),
            "neighbours_per_item": int(max(ks))}
    return Task(
        "holdout", tuple(int(k) for k in ks), int(max(ks)), users,
        promoted=_user_matrix(kept_prom, users, n_items),
        seen=_user_matrix(kept, users, n_items),
        rated=_user_matrix(out, users, n_items, out["opinion"].to_numpy(np.float32)),
        relevant=_user_matrix(targets, users, n_items),
        fit=_fit_matrix(kept, n_items), info=info,
    )


def coldstart_task(opinions: pd.DataFrame, n_items: int, cold_items: np.ndarray, ks=(5, 10, 20)) -> Task:
    """The cold-start view (see the module docstring): only cold anime are recommended and scored."""
    cold_items = np.unique(np.asarray(cold_items, np.int64))
    is_cold = np.isin(opinions["item"].to_numpy(), cold_items)
    warm, cold = opinions[~is_cold], opinions[is_cold]
    warm_prom = warm[warm["opinion"].to_numpy() > 0]
    targets = cold[cold["opinion"].to_numpy() > 0]
    users = np.intersect1d(targets["user_id"].unique(), warm_prom["user_id"].unique())
    info = {"users": int(len(users)), "cold_anime": int(len(cold_items)), "cold_ratings_removed": int(len(cold)),
            "targets": int(_user_matrix(targets, users, n_items).nnz), "fit_ratings": int(len(warm)),
            "neighbours_per_item": int(max(ks))}
    return Task(
        "coldstart", tuple(int(k) for k in ks), int(max(ks)), users,
        promoted=_user_matrix(warm_prom, users, n_items),
        seen=_user_matrix(warm, users, n_items),
        rated=_user_matrix(cold, users, n_items, cold["opinion"].to_numpy(np.float32)),
        relevant=_user_matrix(targets, users, n_items),
        fit=_fit_matrix(warm, n_items),  # not one rating of a cold anime
        candidates=cold_items, info=info,
    )


# --------------------------------------------------------------------------- methods


def neighbor_table(kind: str, task: Task, item_rows=None) -> tuple[np.ndarray, np.ndarray]:
    """The (items x n_neighbors) table a pooled method serves ``task`` with."""
    if kind == "itemknn":
        return sparse_neighbors(itemknn_vectors(task.fit), task.n_neighbors, task.candidates)
    if sp.issparse(item_rows):
        return sparse_neighbors(item_rows, task.n_neighbors, task.candidates)
    return dense_neighbors(item_rows, task.n_neighbors, task.candidates)


def recommend(kind: str, task: Task, item_rows=None, seed: int = 42) -> np.ndarray:
    """(task users x max(ks)) catalog rows recommended by one method; -1 = nothing more."""
    k = max(task.ks)
    if kind == "random":
        return random_recommend(task.n_items, task.seen, k, seed, task.candidates)
    if kind == "popular":
        return popular_recommend(promoter_counts(task.fit), task.seen, k, task.candidates)
    idx, val = neighbor_table(kind, task, item_rows)
    recs, _ = pool_for_users(task.promoted, idx, val, k=k, exclude=task.seen)
    return recs


def score(task: Task, recs: np.ndarray, n_boot: int = 1000, seed: int = 42) -> list[dict]:
    """Metric rows (metric, value, ci_lo, ci_hi, n_users) of one method on one task."""
    n = len(task.users)
    means: dict[str, np.ndarray] = {}
    ratios: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    plain: dict[str, float] = {}
    if task.relevant is not None:
        hits = hit_matrix(recs, task.relevant)
        n_rel = _n_relevant(task.relevant)
        for k in task.ks:
            means[f"hit_rate@{k}"] = _hit_rate(hits, k)
            means[f"precision@{k}"] = _precision(hits, k)
            means[f"recall@{k}"] = _recall(hits, n_rel, k)
            means[f"ndcg@{k}"] = _ndcg(hits, n_rel, k)
            means[f"mrr@{k}"] = _mrr(hits, k)
    for k in task.ks:
        sums, counts = nps_at_k(recs, task.rated, k)
        ratios[f"nps@{k}"] = (sums, counts)
        plain[f"found@{k}"] = float(counts.sum())
        means[f"found_users@{k}"] = (counts > 0).astype(np.float64)
        plain[f"coverage@{k}"] = coverage_at_k(recs, k, task.n_candidates)
    found, values = lookup(task.rated, recs)
    for lo, hi, label in RANK_BUCKETS:
        sl = slice(lo, hi)
        ratios[f"nps_rank_{label}"] = ((values * found)[:, sl].sum(axis=1), found[:, sl].sum(axis=1).astype(np.float64))

    rows = []
    if means:
        names = list(means)
        mat = np.column_stack([means[m] for m in names])
        lo, hi = bootstrap_ci(mat, n_boot, seed)
        rows += [dict(metric=m, value=float(mat[:, i].mean()) if n else np.nan, ci_lo=float(lo[i]), ci_hi=float(hi[i]))
                 for i, m in enumerate(names)]
    names = list(ratios)
    num = np.column_stack([ratios[m][0] for m in names])
    den = np.column_stack([ratios[m][1] for m in names])
    lo, hi = bootstrap_ci(num, n_boot, seed, denominators=den)
    tot_num, tot_den = num.sum(axis=0), den.sum(axis=0)
    rows += [dict(metric=m, value=float(tot_num[i] / tot_den[i]) if tot_den[i] else np.nan, ci_lo=float(lo[i]), ci_hi=float(hi[i]))
             for i, m in enumerate(names)]
    rows += [dict(metric=m, value=v, ci_lo=np.nan, ci_hi=np.nan) for m, v in plain.items()]
    for r in rows:
        r["n_users"] = n
    return rows


# --------------------------------------------------------------------------- config


@dataclass
class ModelSpec:
    name: str
    model: str
    max_seq_length: int | None = None
    optional: bool = False
    where: str = ""  # "eval/x.toml line 12" or "--models": named in errors


@dataclass
class EvalConfig:
    catalog: str = ""
    ratings: str | None = None
    split: str | None = None
    out: str = "out/eval"
    models: list[ModelSpec] = field(default_factory=list)
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    protocols: list[str] = field(default_factory=lambda: list(PROTOCOLS))
    k: int = 10
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    seed: int = 42
    holdout_fraction: float = 0.2
    min_promoted: int = 2
    cold_fraction: float = 0.15
    cold_anime: str | None = None
    pairs: list[str] = field(default_factory=list)  # pair files the fine-tuned models learnt from (cold-start check)
    bootstrap: int = 1000
    max_seq_length: int | None = None
    cache_dir: str | None = None
    batch_size: int = 32
    source: str = ""  # the config file it came from

    def check(self) -> "EvalConfig":
        where = self.source or "evaluate"
        if not self.catalog:
            raise AnirecError(f"{where}: no catalog given. Set `catalog = ...` in the config or pass --catalog.")
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise AnirecError(f"{where}: unknown baseline {bad[0]!r}; choose from {', '.join(BASELINES)}.")
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        if bad:
            raise AnirecError(f"{where}: unknown protocol {bad[0]!r}; choose from {', '.join(PROTOCOLS)}.")
        if self.k < 1 or any(k < 1 for k in self.ks):
            raise AnirecError(f"{where}: k and ks must be positive (got k={self.k}, ks={self.ks}).")
        if self.k not in self.ks:
            self.ks = sorted(set(self.ks) | {self.k})
        if not 0 < self.holdout_fraction < 1 or not 0 < self.cold_fraction < 1:
            raise AnirecError(f"{where}: holdout_fraction and cold_fraction must be between 0 and 1.")
        if self.min_promoted < 2:
            raise AnirecError(f"{where}: min_promoted must be at least 2.")
        if self.bootstrap < 0:
            raise AnirecError(f"{where}: bootstrap must be 0 (off) or a number of resamples.")
        names = [*self.baselines, *(m.name for m in self.models)]
        dup = sorted({x for x in names if names.count(x) > 1})
        if dup:
            raise AnirecError(f"{where}: method name {dup[0]!r} is used twice; give each [[models]] entry its own name.")
        return self


_TOP_KEYS = {f for f in EvalConfig.__dataclass_fields__ if f not in ("models", "source")}
_MODEL_KEYS = {"name", "model", "max_seq_length", "optional"}


def _line_of(text: str, value: str) -> int | None:
    for no, line in enumerate(text.splitlines(), 1):
        if re.search(r"=\s*[\"']" + re.escape(value) + r"[\"']", line):
            return no
    return None


def model_name(model: str) -> str:
    """A short display name for a model path or hub id."""
    return Path(str(model).rstrip("/")).name or str(model)


def parse_model_arg(arg: str, where: str = "--models") -> ModelSpec:
    """``NAME=PATH_OR_ID`` or just ``PATH_OR_ID``."""
    name, sep, model = arg.partition("=")
    if not sep:
        name, model = model_name(arg), arg
    if not name.strip() or not model.strip():
        raise AnirecError(f"{where} {arg!r}: give NAME=MODEL or a model name/path.")
    return ModelSpec(name.strip(), model.strip(), where=where)


def load_config(path: str | Path) -> EvalConfig:
    """Read an eval/*.toml (see eval/smoke.toml). Relative paths are relative to the working
    directory, i.e. the configs are written to be run from the repository root."""
    import tomllib

    path = Path(path)
    if not path.exists():
        raise AnirecError(f"{path}: config not found (see eval/*.toml for examples).")
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AnirecError(f"{path}: not valid TOML ({exc}).") from None
    unknown = sorted(set(raw) - _TOP_KEYS - {"models"})
    if unknown:
        raise AnirecError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_TOP_KEYS | {'models'}))}).")
    models = []
    for i, m in enumerate(raw.pop("models", []), 1):
        if not isinstance(m, dict) or "model" not in m:
            raise AnirecError(f"{path}: [[models]] entry #{i} needs `model = \"NAME_OR_PATH\"`.")
        extra = sorted(set(m) - _MODEL_KEYS)
        if extra:
            raise AnirecError(f"{path}: [[models]] entry #{i} has unknown key {extra[0]!r} (known: {', '.join(sorted(_MODEL_KEYS))}).")
        line = _line_of(text, str(m["model"]))
        where = f"{path}" + (f" line {line}" if line else f" [[models]] #{i}")
        models.append(ModelSpec(str(m.get("name") or model_name(m["model"])), str(m["model"]),
                                m.get("max_seq_length"), bool(m.get("optional", False)), where))
    if isinstance(raw.get("pairs"), str):
        raw["pairs"] = [raw["pairs"]]
    try:
        cfg = EvalConfig(**raw, models=models, source=str(path))
    except TypeError as exc:
        raise AnirecError(f"{path}: {exc}.") from None
    return cfg


# --------------------------------------------------------------------------- running


@dataclass
class EvalOutcome:
    results: pd.DataFrame
    meta: dict
    out: Path
    files: list[Path]


def _looks_like_path(s: str) -> bool:
    return s.startswith((".", "/", "~")) or os.sep in s.removeprefix("sentence-transformers/")


def check_models(models: list[ModelSpec]) -> list[ModelSpec]:
    """Fail (or skip an ``optional`` entry) before any work when a model cannot be found."""
    from .models import not_found_message, resolve_model

    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")
    kept = []
    for m in models:
        resolved = resolve_model(m.model)
        missing = not Path(resolved).exists() and (_looks_like_path(m.model) or offline)
        if not missing:
            kept.append(m)
            continue
        if _looks_like_path(m.model):
            hint = f"{m.where}: model folder {m.model!r} not found (train it with `anirec finetune --out {m.model}` first)"
        else:
            hint = f"{m.where}: {not_found_message(m.model).rstrip('.')}"
        if m.optional:
            warn(hint + "; skipped (optional = true).")
            continue
        raise AnirecError(hint + (". Fix it, remove the entry, or mark it `optional = true`." if m.where != "--models" else "."))
    return kept


def _load_catalog(source: str) -> tuple[pd.DataFrame, str | None]:
    """A catalog parquet from `anirec build`, or a raw Kaggle folder/CSV built in memory, and
    the parquet file's hash (None for a raw source)."""
    from .build import open_catalog

    p = Path(source).expanduser()
    catalog = open_catalog(source).reset_index(drop=True)
    return catalog, hash_file(p) if p.suffix == ".parquet" else None


def _row_keys(frame: pd.DataFrame) -> np.ndarray:
    """One int64 per (user_id, anime_id) row, for set membership tests."""
    return (frame["user_id"].to_numpy(np.int64) << 32) | frame["anime_id"].to_numpy(np.int64)


def _with_items(frame: pd.DataFrame, catalog_ids: np.ndarray) -> tuple[pd.DataFrame, int]:
    items = items_of(catalog_ids, frame["anime_id"].to_numpy())
    ok = items >= 0
    out = frame[ok].copy()
    out["item"] = items[ok]
    return out.reset_index(drop=True), int((~ok).sum())


def _ratings_file_hash(source: str) -> str | None:
    from .data import RATINGS_FILE

    p = Path(source).expanduser()
    if p.is_dir():
        p = p / RATINGS_FILE
    return hash_file(p) if p.is_file() else None


def _method_list(cfg: EvalConfig) -> list[dict]:
    out = [dict(name=b, kind=b) for b in cfg.baselines]
    out += [dict(name=m.name, kind="embedder", model=m.model,
                 max_seq_length=m.max_seq_length if m.max_seq_length is not None else cfg.max_seq_length) for m in cfg.models]
    return out


@dataclass
class Inputs:
    """The data every protocol is built from, plus what meta.json records about it."""

    catalog: pd.DataFrame
    split: pd.DataFrame | None  # split rows on catalog anime, with ``item``
    opinions: pd.DataFrame | None  # all ratings on catalog anime as opinions (passives kept), with ``item``
    meta: dict


def load_inputs(cfg: EvalConfig, protocols: list[str], echo=print) -> Inputs:
    """Catalog, split (reference protocol) and ratings (holdout/coldstart), mapped to catalog rows."""
    from .data import load_ratings
    from .labels import load_split, ratings_fingerprint, to_opinions

    catalog, catalog_file_hash = _load_catalog(cfg.catalog)
    catalog_ids = catalog["MAL_ID"].to_numpy(np.int64)
    meta: dict = {"catalog": {"path": cfg.catalog, "rows": len(catalog), "file_hash": catalog_file_hash,
                              "description_hash": hash_strings(catalog["description"].astype(str)),
                              "id_hash": hash_strings(catalog_ids)}}
    split = None
    if "reference" in protocols:
        split_df, split_meta = load_split(cfg.split)
        split, dropped = _with_items(split_df, catalog_ids)
        meta["split"] = {"path": cfg.split, "file_hash": hash_file(cfg.split), "rows": int(len(split_df)),
                         "rows_not_in_catalog": dropped, "meta": split_meta}
    opinions = None
    if "holdout" in protocols or "coldstart" in protocols:
        if cfg.ratings:
            ratings = load_ratings(cfg.ratings)
            meta["ratings"] = {"path": cfg.ratings, "file_hash": _ratings_file_hash(cfg.ratings),
                               "fingerprint": ratings_fingerprint(ratings), "rows": int(len(ratings))}
            made_from = meta.get("split", {}).get("meta", {}).get("ratings_hash")
            if made_from not in (None, meta["ratings"]["fingerprint"]):
                warn(f"{cfg.split} was made from other ratings than {cfg.ratings} (fingerprints differ).")
            op = to_opinions(ratings.drop_duplicates(["user_id", "anime_id"], keep="last"), keep_passives=True)
        elif cfg.split:
            op = load_split(cfg.split)[0]
            echo("note: no ratings given: the holdout/coldstart protocols use the split's rows (passives dropped).")
            meta["ratings"] = {"path": None, "from_split": cfg.split}
        else:
            raise AnirecError("the holdout/coldstart protocols need ratings: pass --ratings (or --split).")
        opinions, dropped = _with_items(op[["user_id", "anime_id", "opinion"]], catalog_ids)
        meta["ratings"].update(rows_not_in_catalog=dropped, rows_used=int(len(opinions)))
        if cfg.split:
            # The rows pair labels were mined from may not be held out (see holdout_mask).
            train = (split_df if split is not None else load_split(cfg.split)[0])
            train = train[train["split"].astype(str).to_numpy() == "train"]
            opinions["protected"] = np.isin(_row_keys(opinions), _row_keys(train))
            meta["ratings"]["protected_rows"] = int(opinions["protected"].sum())
    return Inputs(catalog, split, opinions, meta)


def build_tasks(cfg: EvalConfig, protocols: list[str], data: Inputs) -> tuple[list[Task], np.ndarray | None]:
    """The protocols' tasks (and the cold anime ids when there is a cold-start view)."""
    catalog_ids = data.catalog["MAL_ID"].to_numpy(np.int64)
    n_items = len(catalog_ids)
    tasks, cold_ids = [], None
    if "reference" in protocols:
        tasks.append(reference_task(data.split, n_items, cfg.k))
    if "holdout" in protocols:
        tasks.append(holdout_task(data.opinions, n_items, cfg.ks, cfg.holdout_fraction, cfg.min_promoted, cfg.seed))
    if "coldstart" in protocols:
        if cfg.cold_anime:
            cold_ids = read_anime_ids(cfg.cold_anime)
        else:
            cold_ids = cold_anime_ids(data.opinions, catalog_ids, cfg.cold_fraction, cfg.seed)
        cold_items = items_of(catalog_ids, cold_ids)
        cold_items = cold_items[cold_items >= 0]
        if len(cold_items) == 0:
            raise AnirecError(f"{cfg.cold_anime or 'cold anime'}: none of the cold anime is in the catalog.")
        tasks.append(coldstart_task(data.opinions, n_items, cold_items, cfg.ks))
        data.meta["cold_anime"] = {
            "count": int(len(cold_ids)), "in_catalog": int(len(cold_items)), "hash": hash_strings(cold_ids),
            "file": cfg.cold_anime, "fraction": None if cfg.cold_anime else cfg.cold_fraction,
            "pairs_with_cold_anime": check_pairs_exclude(cfg.pairs, cold_ids),
        }
    for task in tasks:
        if len(task.users) == 0:
            raise AnirecError(f"{task.protocol} protocol: no user qualifies ({json.dumps(task.info)}). "
                              "Pass more ratings or lower min_promoted.")
    return tasks, cold_ids


def run_evaluation(cfg: EvalConfig, echo=print) -> EvalOutcome:
    """Load data, build the protocols, run every method through them, write the outputs."""
    t_start = time.perf_counter()
    cfg.check()
    cfg.models = check_models(cfg.models)
    protocols = list(cfg.protocols)
    if "reference" in protocols and not cfg.split:
        echo("note: no split given (--split / `split = ...`): skipping the reference protocol.")
        protocols.remove("reference")
    if not protocols:
        raise AnirecError("nothing to evaluate: no protocol left (the reference protocol needs --split).")
    data = load_inputs(cfg, protocols, echo)
    tasks, cold_ids = build_tasks(cfg, protocols, data)
    timings = {"load": time.perf_counter() - t_start}
    for task in tasks:
        echo(f"{task.protocol:<9} {len(task.users):>8,} users  " + ", ".join(f"{k} {v}" for k, v in task.info.items() if k != "users"))

    rows: list[dict] = []
    methods_meta: dict = {}
    for method in _method_list(cfg):
        name, kind = method["name"], method["kind"]
        m_meta = {"kind": kind, "seconds": {}}
        item_rows = None
        if kind == "tfidf":
            t = time.perf_counter()
            item_rows = tfidf_vectors(data.catalog["description"].astype(str).tolist())
            m_meta["seconds"]["fit"] = time.perf_counter() - t
            m_meta["vocabulary"] = int(item_rows.shape[1])
        elif kind == "embedder":
            item_rows, info = _embed(data.catalog, method, cfg)
            m_meta.update(info)
        for task in tasks:
            t = time.perf_counter()
            recs = recommend(kind, task, item_rows, cfg.seed)
            task_rows = score(task, recs, cfg.bootstrap, cfg.seed)
            secs = time.perf_counter() - t
            m_meta["seconds"][task.protocol] = secs
            rows += [dict(protocol=task.protocol, method=name, **r) for r in task_rows]
            echo(f"{task.protocol:<9} {name:<24} {_headline(task, task_rows, cfg.k)}  ({secs:.1f} s)")
        methods_meta[name] = m_meta

    results = pd.DataFrame(rows, columns=["protocol", "method", "metric", "value", "ci_lo", "ci_hi", "n_users"])
    timings["total"] = time.perf_counter() - t_start
    meta = {
        "anirec_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": asdict(cfg),
        "config_file_hash": hash_file(cfg.source) if cfg.source and Path(cfg.source).exists() else None,
        "seed": cfg.seed,
        "data": data.meta,
        "protocols": {t.protocol: t.info for t in tasks},
        "methods": methods_meta,
        "timings_s": timings,
        "versions": _versions(),
    }
    out = Path(cfg.out)
    files = write_outputs(out, results, meta, cfg, cold_ids)
    echo(f"wrote {', '.join(str(f) for f in files)} in {timings['total']:.1f} s")
    return EvalOutcome(results, meta, out, files)


def _embed(catalog: pd.DataFrame, method: dict, cfg: EvalConfig) -> tuple[np.ndarray, dict]:
    from . import embeddings

    e = embeddings.load_or_embed(catalog, method["model"], method["max_seq_length"], cfg.cache_dir,
                                 batch_size=cfg.batch_size, show_progress=True)
    return e.vectors, {"model": method["model"], "resolved": e.model, "fingerprint": e.model_fingerprint,
                       "max_seq_length": e.max_seq_length, "cache_hit": e.cache_hit, "seconds": {"embed": e.seconds}}


def _headline(task: Task, rows: list[dict], k: int) -> str:
    by = {r["metric"]: r["value"] for r in rows}
    keys = [f"nps@{k}"] if task.relevant is None else [f"hit_rate@{k}", f"ndcg@{k}", f"nps@{k}"]
    return "  ".join([f"{m} {by[m]:.4f}" for m in keys] + [f"found@{k} {by[f'found@{k}']:,.0f}"])


def _versions() -> dict:
    import scipy
    import sklearn

    v = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
         "scikit-learn": sklearn.__version__, "pandas": pd.__version__}
    try:
        import sentence_transformers
        import torch

        v.update({"sentence-transformers": sentence_transformers.__version__, "torch": torch.__version__})
    except ImportError:
        pass
    return v


# --------------------------------------------------------------------------- outputs


# Columns of the markdown tables: (metric template, header); {k} is the headline k.
TABLE_COLUMNS = {
    "reference": [("nps@{k}", "mean NPS of found"), ("found@{k}", "found"), ("found_users@{k}", "users with a found rec"),
                  ("coverage@{k}", "coverage")],
    "holdout": [("hit_rate@{k}", "hit rate@{k}"), ("precision@{k}", "precision@{k}"), ("recall@{k}", "recall@{k}"),
                ("ndcg@{k}", "NDCG@{k}"), ("mrr@{k}", "MRR@{k}"), ("coverage@{k}", "coverage@{k}"),
                ("nps@{k}", "NPS of found@{k}"), ("found@{k}", "found@{k}")],
}
TABLE_COLUMNS["coldstart"] = TABLE_COLUMNS["holdout"]
TITLES = {
    "reference": "Reference protocol: mean NPS of the recommendations found in the test split",
    "holdout": "Leakage-free holdout: held-out promoted anime as targets",
    "coldstart": "Cold start: recommending only anime with no ratings in any fitting data",
}
PLOTS = {"reference": ["nps@{k}"], "holdout": ["hit_rate@{k}", "ndcg@{k}"], "coldstart": ["hit_rate@{k}", "ndcg@{k}"]}


def _cell(r, metric: str) -> str:
    if r is None or pd.isna(r["value"]):
        return "n/a"
    if metric.startswith("found@"):
        return f"{r['value']:,.0f}"
    if pd.isna(r["ci_lo"]):
        return f"{r['value']:.3f}"
    return f"{r['value']:.3f} [{r['ci_lo']:.3f}, {r['ci_hi']:.3f}]"


def results_markdown(results: pd.DataFrame, k: int, meta: dict | None = None) -> str:
    """One markdown table per protocol: method rows, headline metrics as 'mean [95% CI]'."""
    lines = []
    idx = {(r.protocol, r.method, r.metric): r._asdict() for r in results.itertuples(index=False)}
    for protocol in [p for p in PROTOCOLS if p in set(results["protocol"])]:
        sub = results[results["protocol"] == protocol]
        methods = list(dict.fromkeys(sub["method"]))
        n_users = int(sub["n_users"].iloc[0])
        cols = [(m.format(k=k), h.format(k=k)) for m, h in TABLE_COLUMNS[protocol]]
        lines += [f"### {TITLES[protocol]} (k = {k}, {n_users:,} users)", "",
                  "| method | " + " | ".join(h for _, h in cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for m in methods:
            lines.append(f"| {m} | " + " | ".join(_cell(idx.get((protocol, m, c)), c) for c, _ in cols) + " |")
        lines.append("")
    boot = (meta or {}).get("config", {}).get("bootstrap", 1)
    lines.append("Values are means over users" + (" with 95% bootstrap intervals [lo, hi] (users resampled)" if boot else "")
                 + "; NPS = mean opinion (+1 promoter, 0 passive, -1 detractor) over found recommendations.")
    if meta:
        d = meta.get("data", {})
        bits = [f"seed {meta.get('seed')}", f"anirec {meta.get('anirec_version')}"]
        if "catalog" in d:
            bits.append(f"catalog descriptions {d['catalog']['description_hash'][:12]}")
        if d.get("split"):
            bits.append(f"split file {d['split']['file_hash'][:12]}")
        lines.append("Run: " + ", ".join(bits) + " (details in meta.json).")
    return "\n".join(lines) + "\n"


def _save_fig(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path


BASELINE_COLORS = {"random": "#c8c8c8", "popular": "#9a9a9a", "tfidf": "#b39b8e", "itemknn": "#6d4c41"}


def _colors(methods: list[str]) -> list:
    """Muted greys/browns for the baselines, tab10 colours for the embedders."""
    import matplotlib.pyplot as plt

    palette = plt.get_cmap("tab10").colors
    out, j = [], 0
    for m in methods:
        if m in BASELINE_COLORS:
            out.append(BASELINE_COLORS[m])
        else:
            out.append(palette[j % len(palette)])
            j += 1
    return out


def plot_metric(results: pd.DataFrame, protocol: str, metric: str, path: Path) -> Path:
    """Bars of one metric per method (baselines grey), with the bootstrap interval as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = results[(results["protocol"] == protocol) & (results["metric"] == metric)]
    methods = sub["method"].tolist()
    vals = sub["value"].to_numpy(float)
    lo = np.nan_to_num(vals - sub["ci_lo"].to_numpy(float))
    hi = np.nan_to_num(sub["ci_hi"].to_numpy(float) - vals)
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(methods) + 2), 4))
    x = np.arange(len(methods))
    ax.bar(x, np.nan_to_num(vals), yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], color=_colors(methods), capsize=4)
    tops = np.fmax(vals, sub["ci_hi"].to_numpy(float))
    for xi, v, top in zip(x, vals, tops):
        if np.isfinite(v):
            ax.text(xi, top, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, methods, rotation=30, ha="right")
    ax.set_ylabel(metric)
    ax.set_title(f"{protocol}: {metric} ({int(sub['n_users'].iloc[0]) if len(sub) else 0:,} users, 95% bootstrap CI)")
    ax.axhline(0, color="black", linewidth=0.5)
    fig.tight_layout()
    try:
        return _save_fig(fig, path)
    finally:
        plt.close(fig)


def plot_nps_by_rank(results: pd.DataFrame, path: Path) -> Path:
    """NPS of found recommendations by rank bucket (0-2, 3-6, 7+), one panel per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = [p for p in PROTOCOLS if p in set(results["protocol"])]
    fig, axes = plt.subplots(1, len(protocols), figsize=(6 * len(protocols), 4), squeeze=False)
    buckets = [b[2] for b in RANK_BUCKETS]
    for ax, protocol in zip(axes[0], protocols):
        sub = results[results["protocol"] == protocol]
        methods = list(dict.fromkeys(sub["method"]))
        width = 0.8 / max(len(methods), 1)
        for j, (m, c) in enumerate(zip(methods, _colors(methods))):
            vals = [sub[(sub["method"] == m) & (sub["metric"] == f"nps_rank_{b}")]["value"].iloc[0] for b in buckets]
            ax.bar(np.arange(len(buckets)) + (j - (len(methods) - 1) / 2) * width, np.nan_to_num(vals), width, label=m, color=c)
        ax.set_xticks(np.arange(len(buckets)), [f"ranks {b}" for b in buckets])
        ax.set_title(f"{protocol}: NPS of found recs by rank")
        ax.axhline(0, color="black", linewidth=0.5)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    try:
        return _save_fig(fig, path)
    finally:
        plt.close(fig)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", s.replace("@", "_at_")).strip("_")


def write_outputs(out: Path, results: pd.DataFrame, meta: dict, cfg: EvalConfig, cold_ids) -> list[Path]:
    """results.csv, results.md, plots, cold_anime.txt and meta.json, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    with atomic_path(out / "results.csv") as tmp:
        results.to_csv(tmp, index=False, float_format="%.6g")
    files.append(out / "results.csv")
    files.append(write_text(results_markdown(results, cfg.k, meta), out / "results.md"))
    for protocol in [p for p in PROTOCOLS if p in set(results["protocol"])]:
        for metric in PLOTS[protocol]:
            metric = metric.format(k=cfg.k)
            files.append(plot_metric(results, protocol, metric, out / f"{protocol}_{_slug(metric)}.png"))
    files.append(plot_nps_by_rank(results, out / "nps_by_rank.png"))
    if cold_ids is not None:
        files.append(write_anime_ids(cold_ids, out / "cold_anime.txt",
                                     f"anirec cold-start anime (seed {cfg.seed}); exclude them from pairs/fine-tuning"))
    files.append(write_text(json.dumps(meta, indent=2, default=str) + "\n", out / "meta.json"))
    return files
