"""Ranking metrics as small pure functions over (users x k) recommendation arrays, the paired
bootstrap over users, and ``score``: every metric of one method on one protocol's task.

Recommendations are catalog rows, -1 = no recommendation at that rank. ``relevant`` and
``rated`` are sparse (users x items): a stored non-zero entry is a target; in ``rated`` a
stored entry is a rating the user gave and its value the opinion (+1/0/-1).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from ..interactions import lookup
from .seeds import STREAM_BOOT, seeded_rng

RANK_BUCKETS = ((0, 3, "0-2"), (3, 7, "3-6"), (7, None, "7+"))
POPULAR_HEAD = 100  # top100_share@k: list places among the 100 most-rated anime of the protocol's data

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
    # ranks past the list and past every user's relevant count add nothing: k = 10**9 must not
    # allocate 10**9 discounts (lists are at most the catalog long)
    k = min(k, max(hits.shape[1], int(n_rel.max(initial=0))))
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


def most_rated(item_ratings: np.ndarray, n: int = 100) -> np.ndarray:
    """The ``n`` items with the most ratings (ties -> the lower item row): the head of the data."""
    counts = np.asarray(item_ratings)
    order = np.lexsort((np.arange(len(counts)), -counts))
    return np.sort(order[:min(n, len(counts))])


def popular_share_at_k(recs: np.ndarray, k: int, popular: np.ndarray) -> float:
    """Share of the filled places of everyone's first k recommendations that go to ``popular``
    items (e.g. the 100 most rated): how much of what is served is the head of the catalog."""
    r = np.asarray(recs)[:, :k]
    filled = r >= 0
    return float(np.isin(r[filled], popular).sum() / filled.sum()) if filled.any() else 0.0


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
    rng = seeded_rng(seed, STREAM_BOOT)
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


def paired_difference(values: np.ndarray, reference: np.ndarray, n_boot: int = 1000, seed: int = 42) -> dict:
    """Mean of ``values - reference`` over the same users, with its percentile bootstrap CI.

    Two methods' separate intervals can overlap while one is better for nearly every user (the
    users vary more than the methods); resampling the per-user differences is the test that
    says whether a method is better, worse or indistinguishable."""
    diff = np.asarray(values, np.float64) - np.asarray(reference, np.float64)
    lo, hi = bootstrap_ci(diff, n_boot, seed)
    return dict(diff=float(diff.mean()) if len(diff) else np.nan, ci_lo=float(lo), ci_hi=float(hi),
                better_users=int((diff > 0).sum()), worse_users=int((diff < 0).sum()), n_users=len(diff))


def verdict(row: dict) -> str:
    """'better' / 'worse' when the CI of the difference excludes 0, else 'no difference'."""
    if np.isnan(row["ci_lo"]):
        return "n/a"
    return "better" if row["ci_lo"] > 0 else "worse" if row["ci_hi"] < 0 else "no difference"


def score(task, recs: np.ndarray, n_boot: int = 1000, seed: int = 42) -> list[dict]:
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
        if task.item_ratings is not None:
            plain[f"top100_share@{k}"] = popular_share_at_k(recs, k, most_rated(task.item_ratings, POPULAR_HEAD))
    if task.new_items is not None and task.relevant is not None:
        # mixed protocol: how much of each list is new anime, and where the hits come from
        is_new = np.zeros(task.n_items, bool)
        is_new[task.new_items] = True
        rec_new = (recs >= 0) & is_new[np.maximum(recs, 0)]
        for k in task.ks:
            plain[f"new_share@{k}"] = float(rec_new[:, :k].sum() / max(int((recs[:, :k] >= 0).sum()), 1))
            plain[f"hits_new@{k}"] = float((hits[:, :k] & rec_new[:, :k]).sum())
            plain[f"hits_known@{k}"] = float((hits[:, :k] & ~rec_new[:, :k]).sum())
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

