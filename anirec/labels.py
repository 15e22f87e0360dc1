"""Pair labels from co-ratings (METHOD.md sections 2-3), every anime pair at once.

Pipeline: ratings -> opinions (NPS) -> popular anime -> 90/10 row split (saved) -> pair counts over
the *train* rows only -> labels -> positives/negatives -> train/validation pairs.

How we read the reference (METHOD.md sections 2-3, checked against its published notebook):

* Opinions: 9-10 promoter (+1), 7-8 passive (0), 1-6 detractor (-1); passives are dropped.
* Popularity: count the remaining (non-passive) ratings of every anime, take the q-th quantile of
  those counts (pandas' linear interpolation, q = 0.90) and keep anime with count >= it. The
  counts include anime the catalog lacks, as in the reference.
* Split: shuffle the rows with ``numpy.random.RandomState(seed).permutation`` (exactly what
  ``DataFrame.sample(frac=1, random_state=seed)`` does) and cut at ``int((1 - test_size) * n)``.
* Candidate pairs: every unordered pair (a < b) of anime that are in train *and* in the catalog.
* For a pair, the reference filters train to the rows of a and b and requires ``>= 50`` rows:
  **support = n(a) + n(b)**, the non-passive train rows of the two anime (not the co-raters).
  It then keeps users with rows on both (co-raters), looks at each user's sorted opinion pair and
  counts ``[1, 1]`` (both promote) and ``[-1, 1]`` (one promotes, the other detracts, either way);
  ``[-1, -1]`` is ignored. It returns nothing unless **both outcomes are present** (it checks that
  the two-outcome value counts have length 2), so both_promote > 0 and disagree > 0.
  With p = both / (both + disagree) and d = disagree / (both + disagree): label = p if p > d else -d
  (a tie, p = d = 0.5, gives -0.5).
* Positives: label >= 0.7; negatives: label < -0.7 (strict, as in the reference); the rest unused.

Vectorised: with P (users x anime, 1 where promoter) and D (1 where detractor),
both_promote = P'P, disagree = P'D + D'P, co_raters = R'R with R = P + D, and n = column sums of R.
All three come from ONE sparse product: with X = P + K * D (K > number of users),
X'X = P'P + K (P'D + D'P) + K^2 D'D, decoded with integer division (users are processed in chunks
so that every entry stays below K^3 <= 2^63).

``jaccard`` labels use the promoter sets instead: J = |Pa & Pb| / |Pa | Pb|. Positives/negatives
come from thresholds on J (J >= positive, J < negative) or, by default, from per-anime quantiles:
a pair is positive when J is in the top (1 - q) of *both* anime's eligible pairs, negative when it
is in the bottom (1 - q) of both. The label written is +J for positives and -(1 - J) for
negatives (so that, as with ``agreement``, the sign is the class and a larger magnitude is a
stronger signal).
"""

from __future__ import annotations

import hashlib
import json
import random
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import AnirecError
from .io import atomic_path

SPLIT_COLUMNS = ["user_id", "anime_id", "rating", "opinion", "split"]
PAIR_COLUMNS = ["anime_a", "anime_b", "label", "both_promote", "disagree", "co_raters", "support", "split"]
META_KEY = b"anirec"
LABELS = ("agreement", "jaccard")
PROMOTER_MIN = 9  # MAL ratings 9-10 are promoters, 7-8 passives, 1-6 detractors (METHOD.md section 2)
PASSIVE_MIN = 7


# --------------------------------------------------------------------------- opinions and split


def to_opinions(ratings: pd.DataFrame, promoter_min: int = PROMOTER_MIN, passive_min: int = PASSIVE_MIN, keep_passives: bool = False) -> pd.DataFrame:
    """Add ``opinion`` (+1 promoter, 0 passive, -1 detractor) and drop passives unless asked not to."""
    if not 1 <= passive_min <= promoter_min <= 10:
        raise AnirecError(
            f"opinion thresholds: need 1 <= passive_min ({passive_min}) <= promoter_min ({promoter_min}) <= 10."
        )
    rating = ratings["rating"].to_numpy()
    opinion = np.where(rating >= promoter_min, 1, np.where(rating >= passive_min, 0, -1)).astype(np.int8)
    keep = slice(None) if keep_passives else opinion != 0
    return pd.DataFrame(
        {
            "user_id": ratings["user_id"].to_numpy(np.int32)[keep],
            "anime_id": ratings["anime_id"].to_numpy(np.int32)[keep],
            "rating": rating.astype(np.int8)[keep],
            "opinion": opinion[keep],
        }
    )


def _counts_per_anime(anime_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct anime ids, rows per anime), without a Python loop."""
    if len(anime_id) and anime_id.min() >= 0 and anime_id.max() < 4 * len(anime_id) + 1_000_000:
        counts = np.bincount(anime_id)
        ids = np.flatnonzero(counts)
        return ids, counts[ids]
    return np.unique(anime_id, return_counts=True)


def popularity_threshold(opinions: pd.DataFrame, quantile: float | None = 0.9, min_count: int | None = None) -> float:
    """The minimum ratings per anime: the ``quantile`` of per-anime counts, raised to ``min_count``."""
    if quantile is not None and not 0.0 <= quantile <= 1.0:
        raise AnirecError(f"--quantile {quantile}: must be between 0 and 1 (the reference uses 0.9).")
    _, counts = _counts_per_anime(opinions["anime_id"].to_numpy())
    threshold = float(np.quantile(counts, quantile)) if quantile and len(counts) else 0.0
    return max(threshold, float(min_count or 0))


def filter_popular(opinions: pd.DataFrame, quantile: float | None = 0.9, min_count: int | None = None) -> pd.DataFrame:
    """Keep the rows of anime with at least the ``quantile`` of per-anime rating counts (and ``min_count``)."""
    threshold = popularity_threshold(opinions, quantile, min_count)
    ids, counts = _counts_per_anime(opinions["anime_id"].to_numpy())
    popular = ids[counts >= threshold]
    keep = opinions["anime_id"].isin(popular).to_numpy()
    return opinions[keep].reset_index(drop=True)


def split_ratings(opinions: pd.DataFrame, test_size: float = 0.1, seed: int = 42) -> pd.DataFrame:
    """Add ``split`` ('train'/'test', categorical): the reference's shuffled row split.

    Rows keep their order; the shuffle only decides which rows are test.
    """
    if not 0.0 <= test_size < 1.0:
        raise AnirecError(f"--test-size {test_size}: must be in [0, 1) (the reference uses 0.1).")
    n = len(opinions)
    order = np.random.RandomState(seed).permutation(n)  # == DataFrame.sample(frac=1, random_state=seed)
    is_test = np.zeros(n, np.int8)
    is_test[order[int((1.0 - test_size) * n):]] = 1
    out = opinions.copy()
    out["split"] = pd.Categorical.from_codes(is_test, categories=["train", "test"])
    return out


def ratings_fingerprint(ratings: pd.DataFrame) -> str:
    """sha256 of the ratings' (user_id, anime_id, rating) values in row order, dtype-normalised.

    The same file loaded from CSV or parquet gives the same fingerprint; any changed, added,
    removed or reordered row gives another (the split depends on row order).
    """
    h = hashlib.sha256(f"ratings:{len(ratings)}".encode())
    for col, dtype in (("user_id", np.int32), ("anime_id", np.int32), ("rating", np.int8)):
        h.update(np.ascontiguousarray(ratings[col].to_numpy(dtype)).data)
    return h.hexdigest()


def save_split(df: pd.DataFrame, path: str | Path, meta: dict) -> Path:
    """Write the split as parquet with ``meta`` (JSON) under the ``anirec`` key, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df[SPLIT_COLUMNS], preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def load_split(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Read a split file written by :func:`save_split`: (DataFrame, meta)."""
    import pyarrow.parquet as pq

    path = Path(path).expanduser()
    if not path.exists():
        raise AnirecError(f"{path}: split file not found. `anirec pairs` writes one (see --split-out).")
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise AnirecError(f"{path}: not a readable parquet split file ({exc}).") from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    missing = [c for c in SPLIT_COLUMNS if c not in table.column_names]
    if raw is None or missing:
        raise AnirecError(
            f"{path}: not an anirec split file (missing {', '.join(missing) or 'anirec metadata'}). "
            "Use the .split.parquet written by `anirec pairs`."
        )
    df = table.select(SPLIT_COLUMNS).to_pandas()
    df = df.astype({"user_id": np.int32, "anime_id": np.int32, "rating": np.int8, "opinion": np.int8})
    df["split"] = pd.Categorical(df["split"].astype(str), categories=["train", "test"])
    return df, json.loads(raw)


# --------------------------------------------------------------------------- pair counts


@dataclass
class PairCounts:
    """Co-rating counts of every anime pair over train (dense, symmetric, rows/cols = ``anime_ids``)."""

    anime_ids: np.ndarray  # (n,) int64, sorted
    both_promote: np.ndarray  # (n, n) int32: users promoting both
    disagree: np.ndarray  # (n, n) int32: users promoting one and detracting the other
    co_raters: np.ndarray  # (n, n) int32: users with a non-passive rating on both
    rows: np.ndarray  # (n,) int32: non-passive train rows per anime
    promoters: np.ndarray  # (n,) int32: promoters per anime

    def support(self) -> np.ndarray:
        """(n, n): non-passive rows on the two anime together (the reference's ``>= 50`` filter)."""
        return self.rows[:, None] + self.rows[None, :]


def pair_counts(train: pd.DataFrame, user_chunk: int = 1 << 17, progress: bool = False) -> PairCounts:
    """All pair statistics with one sparse product per chunk of users (see the module docstring)."""
    user_codes, _ = pd.factorize(train["user_id"].to_numpy(), sort=False)
    anime_codes, anime_ids = pd.factorize(train["anime_id"].to_numpy(), sort=True)
    opinion = train["opinion"].to_numpy()
    if (opinion == 0).any():
        raise AnirecError("pair counts need passives removed (opinion 0 found); use to_opinions(keep_passives=False).")
    n_users, n = int(user_codes.max(initial=-1)) + 1, len(anime_ids)
    user_chunk = max(1, min(user_chunk, 1 << 20))
    K = np.int64(user_chunk + 1)  # every count within a chunk is <= user_chunk < K, and K^3 < 2^63
    X = sp.csr_matrix(
        (np.where(opinion > 0, np.int64(1), K), (user_codes, anime_codes)), shape=(n_users, n), dtype=np.int64
    )
    if X.nnz != len(train):
        raise AnirecError(
            f"ratings: {len(train) - X.nnz:,} repeated (user_id, anime_id) rows in train. "
            "Keep one rating per user and anime, then run again."
        )
    both, disagree, co = (np.zeros((n, n), np.int32) for _ in range(3))
    starts = range(0, n_users, user_chunk)
    if progress and n_users > user_chunk:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="pair counts (user chunks)", leave=False)
    for start in starts:
        block = X[start : start + user_chunk]
        prod = (block.T.tocsr() @ block).tocoo()  # P'P + K(P'D + D'P) + K^2 D'D; (row, col) unique
        rest, pp = np.divmod(prod.data, K)
        dd, pd_dp = np.divmod(rest, K)
        both[prod.row, prod.col] += pp.astype(np.int32)
        disagree[prod.row, prod.col] += pd_dp.astype(np.int32)
        co[prod.row, prod.col] += (pp + pd_dp + dd).astype(np.int32)
        del prod, pp, rest, dd, pd_dp
    rows = np.bincount(anime_codes, minlength=n)
    promoters = np.bincount(anime_codes[opinion > 0], minlength=n)
    return PairCounts(
        anime_ids=np.asarray(anime_ids, np.int64),
        both_promote=both,
        disagree=disagree,
        co_raters=co,
        rows=rows.astype(np.int32),
        promoters=promoters.astype(np.int32),
    )


# --------------------------------------------------------------------------- labels


@dataclass
class PairsConfig:
    label: str = "agreement"
    min_support: int = 50
    min_co_raters: int = 0
    positive: float | None = None  # None: 0.7 for agreement; per-anime quantiles for jaccard
    negative: float | None = None  # None: -0.7 for agreement
    per_anime_quantile: float | None = None  # jaccard only; None: 0.9 when no thresholds are given
    sample: int | None = None
    max_pairs: int | None = None
    validation_size: float = 0.2
    seed: int = 42

    def resolved(self) -> "PairsConfig":
        """Fill the label-dependent defaults and check the values; raise AnirecError on bad ones."""
        c = PairsConfig(**asdict(self))
        if c.label not in LABELS:
            raise AnirecError(f"--label {c.label!r}: choose one of {', '.join(LABELS)}.")
        if c.label == "agreement":
            if c.per_anime_quantile is not None:
                raise AnirecError("--per-anime-quantile applies to --label jaccard only.")
            c.positive = 0.7 if c.positive is None else c.positive
            c.negative = -0.7 if c.negative is None else c.negative
        elif c.positive is None and c.negative is None:
            c.per_anime_quantile = 0.9 if c.per_anime_quantile is None else c.per_anime_quantile
        elif c.per_anime_quantile is not None:
            raise AnirecError("--label jaccard: give either --positive/--negative thresholds or --per-anime-quantile, not both.")
        elif c.positive is None or c.negative is None:
            raise AnirecError("--label jaccard with thresholds needs both --positive and --negative (values of J in [0, 1]).")
        if c.per_anime_quantile is not None and not 0.5 < c.per_anime_quantile < 1.0:
            raise AnirecError(f"--per-anime-quantile {c.per_anime_quantile}: must be in (0.5, 1), e.g. 0.9.")
        if c.positive is not None and c.negative is not None and c.negative > c.positive:
            raise AnirecError(f"--negative {c.negative} is above --positive {c.positive}; a pair cannot be both.")
        if not 0.0 <= c.validation_size < 1.0:
            raise AnirecError(f"--validation-size {c.validation_size}: must be in [0, 1).")
        for name in ("sample", "max_pairs"):
            v = getattr(c, name)
            if v is not None and v < 1:
                raise AnirecError(f"--{name.replace('_', '-')} {v}: must be at least 1.")
        return c


@dataclass
class PairsResult:
    pairs: pd.DataFrame  # PAIR_COLUMNS
    funnel: dict  # counts, in the order they were applied
    scores: np.ndarray = field(repr=False)  # labels of every eligible candidate (for the histogram)
    config: PairsConfig | None = None


def agreement_scores(counts: PairCounts) -> np.ndarray:
    """(n, n) reference label: p if p > d else -d; NaN where no co-rater promoted/disagreed."""
    return agreement_from_counts(counts.both_promote, counts.disagree)


def agreement_from_counts(both: np.ndarray, dis: np.ndarray) -> np.ndarray:
    """The reference label from both-promote and disagree counts (any shape): p if p > d else -d."""
    both, dis = np.asarray(both), np.asarray(dis)
    total = (both + dis).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        # p > d  <=>  both > disagree (same denominator); the shares are computed as the reference does.
        return np.where(both > dis, both / total, -(dis / total))


def jaccard_scores(counts: PairCounts) -> np.ndarray:
    """(n, n) |Pa & Pb| / |Pa | Pb| over promoters; NaN where neither anime has a promoter."""
    both = counts.both_promote.astype(np.float64)
    union = counts.promoters[:, None].astype(np.float64) + counts.promoters[None, :] - both
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, both / union, np.nan)


def sample_pair_ranks(m: int, k: int, seed: int) -> np.ndarray:
    """The reference's pair sample: Python's ``random`` seeded, the pair list shuffled, then sampled.

    ``random.shuffle``/``random.sample`` depend only on the list length, so shuffling the ranks of
    ``itertools.combinations(range(m), 2)`` picks the same positions as shuffling the pairs.
    """
    total = m * (m - 1) // 2
    rng = random.Random(seed)
    ranks = list(range(total))
    rng.shuffle(ranks)
    return np.asarray(rng.sample(ranks, min(k, total)), np.int64)


def unrank_pairs(ranks: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Map ranks in ``itertools.combinations(range(m), 2)`` order to (i, j) with i < j."""
    i_all = np.arange(m, dtype=np.int64)
    offsets = i_all * (2 * m - i_all - 1) // 2  # rank of (i, i + 1)
    i = np.searchsorted(offsets, ranks, side="right") - 1
    return i, ranks - offsets[i] + i + 1


def _classify(score: np.ndarray, eligible: np.ndarray, cfg: PairsConfig) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) masks over the dense (n, n) score matrix."""
    if cfg.per_anime_quantile is None:
        return eligible & (score >= cfg.positive), eligible & (score < cfg.negative)
    masked = np.where(eligible, score, np.nan)
    np.fill_diagonal(masked, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: anime with no eligible pair
        hi = np.nanquantile(masked, cfg.per_anime_quantile, axis=1)
        lo = np.nanquantile(masked, 1.0 - cfg.per_anime_quantile, axis=1)
    pos = eligible & (score > 0) & (score >= hi[:, None]) & (score >= hi[None, :])  # no overlap is never positive
    neg = eligible & (score <= lo[:, None]) & (score <= lo[None, :]) & ~pos
    return pos, neg


def _validation_split(sign: np.ndarray, size: float, seed: int) -> np.ndarray:
    """'train'/'validation' per pair, stratified by class (``sign`` True = positive): round(size * n) of
    each class to validation."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(sign), bool)
    for cls in (True, False):
        members = np.flatnonzero(sign == cls)
        is_val[rng.permutation(members)[: int(round(size * len(members)))]] = True
    return np.where(is_val, "validation", "train")


def label_pairs(counts: PairCounts, catalog_ids, config: PairsConfig | None = None) -> PairsResult:
    """Label the candidate pairs (both anime in the catalog); count every step of the funnel."""
    cfg = (config or PairsConfig()).resolved()
    n = len(counts.anime_ids)
    in_cat = np.isin(counts.anime_ids, np.asarray(catalog_ids, np.int64))
    cat_idx = np.flatnonzero(in_cat)
    m = len(cat_idx)
    funnel = {"anime_in_train": n, "anime_in_catalog": m, "all_pairs": n * (n - 1) // 2}
    if m < 2:
        raise AnirecError(
            f"only {m} of the {n:,} popular anime in train are in the catalog, so there is no pair to label. "
            "Check that --catalog matches the ratings, or lower --quantile."
        )
    score = agreement_scores(counts) if cfg.label == "agreement" else jaccard_scores(counts)
    support_ok = counts.support() >= cfg.min_support
    co_ok = counts.co_raters >= cfg.min_co_raters
    if cfg.label == "agreement":  # the reference returns None unless both outcomes occur
        outcome_ok = (counts.both_promote > 0) & (counts.disagree > 0)
    else:
        outcome_ok = ~np.isnan(score)
    eligible = support_ok & co_ok & outcome_ok
    pos, neg = _classify(score, eligible, cfg)

    # Pairs an anime outside the catalog spoils: counted, never used.
    upper = np.triu(np.ones((n, n), bool), 1)
    both_in = in_cat[:, None] & in_cat[None, :]
    funnel["pairs_not_in_catalog"] = int((upper & ~both_in).sum())
    funnel["labelled_not_in_catalog"] = int((upper & ~both_in & (pos | neg)).sum())

    if cfg.sample is not None:
        i, j = unrank_pairs(sample_pair_ranks(m, cfg.sample, cfg.seed), m)
    else:
        i, j = np.triu_indices(m, 1)
    a, b = cat_idx[i], cat_idx[j]
    funnel["candidate_pairs"] = len(a)
    funnel[f"support>={cfg.min_support}"] = int(support_ok[a, b].sum())
    if cfg.min_co_raters:
        funnel[f"co_raters>={cfg.min_co_raters}"] = int((support_ok & co_ok)[a, b].sum())
    funnel["labelled"] = int(eligible[a, b].sum())
    keep_pos, keep_neg = pos[a, b], neg[a, b]
    funnel["positives"], funnel["negatives"] = int(keep_pos.sum()), int(keep_neg.sum())
    funnel["unused"] = funnel["labelled"] - funnel["positives"] - funnel["negatives"]
    scores = score[a, b][eligible[a, b]]

    keep = np.flatnonzero(keep_pos | keep_neg)
    if cfg.max_pairs is not None:  # balanced: at most half of max_pairs from each class
        rng = np.random.default_rng(cfg.seed)
        half = cfg.max_pairs // 2
        p_idx, n_idx = keep[keep_pos[keep]], keep[keep_neg[keep]]
        keep = np.sort(np.concatenate([
            rng.permutation(p_idx)[: cfg.max_pairs - half], rng.permutation(n_idx)[:half]
        ]))
        funnel["kept_max_pairs"] = len(keep)
    a, b = a[keep], b[keep]
    label = score[a, b]
    if cfg.label == "jaccard":
        label = np.where(pos[a, b], label, label - 1.0)
    pairs = pd.DataFrame(
        {
            "anime_a": counts.anime_ids[a],
            "anime_b": counts.anime_ids[b],
            "label": label.astype(np.float32),
            "both_promote": counts.both_promote[a, b].astype(np.int32),
            "disagree": counts.disagree[a, b].astype(np.int32),
            "co_raters": counts.co_raters[a, b].astype(np.int32),
            "support": counts.support()[a, b].astype(np.int32),
        }
    )
    pairs["split"] = _validation_split(pos[a, b], cfg.validation_size, cfg.seed)
    pairs = pairs.sort_values(["anime_a", "anime_b"], kind="stable").reset_index(drop=True)
    funnel["train"] = int((pairs["split"] == "train").sum())
    funnel["validation"] = int((pairs["split"] == "validation").sum())
    return PairsResult(pairs=pairs, funnel=funnel, scores=scores, config=cfg)


# --------------------------------------------------------------------------- the whole stage


@dataclass
class SplitInfo:
    frame: pd.DataFrame
    meta: dict
    reused: bool


def make_split(
    ratings: pd.DataFrame,
    promoter_min: int = PROMOTER_MIN,
    passive_min: int = PASSIVE_MIN,
    quantile: float | None = 0.9,
    min_count: int | None = None,
    test_size: float = 0.1,
    seed: int = 42,
) -> SplitInfo:
    """Opinions -> popular anime -> row split, with the metadata that makes it checkable later."""
    opinions = to_opinions(ratings, promoter_min, passive_min)
    threshold = popularity_threshold(opinions, quantile, min_count)
    popular = filter_popular(opinions, quantile, min_count)
    if len(popular) == 0:
        raise AnirecError("ratings: no promoter or detractor ratings left (all passive?). Check --promoter-min/--passive-min.")
    frame = split_ratings(popular, test_size, seed)
    meta = {
        "ratings_hash": ratings_fingerprint(ratings),
        "params": {
            "promoter_min": promoter_min, "passive_min": passive_min, "quantile": quantile,
            "min_count": min_count, "test_size": test_size, "seed": seed,
        },
        "counts": {
            "ratings": int(len(ratings)), "non_passive": int(len(opinions)), "min_ratings_per_anime": threshold,
            "anime_kept": int(popular["anime_id"].nunique()), "rows_kept": int(len(popular)),
            "train": int((frame["split"] == "train").sum()), "test": int((frame["split"] == "test").sum()),
        },
    }
    meta["split_id"] = split_id(meta)
    return SplitInfo(frame, meta, reused=False)


def split_id(meta: dict) -> str:
    """What identifies a split: a hash of everything that determines its rows (the ratings' own
    fingerprint, the parameters, the counts). Pairs record it, so a split rewritten after its
    pairs (an `anirec pairs` killed between its two writes) is noticed by whoever reads them."""
    blob = json.dumps({k: meta.get(k) for k in ("ratings_hash", "params", "counts")}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def read_parquet_meta(path: str | Path) -> dict:
    """The anirec metadata of a parquet file (pairs or split) without reading its rows; {} if none."""
    import pyarrow.parquet as pq

    try:
        raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
        meta = json.loads(raw) if raw else {}
    except Exception:  # noqa: BLE001 - not parquet / no metadata: the caller's own reader reports it
        return {}
    return meta if isinstance(meta, dict) else {}


def pairs_split_link(pairs_path: str | Path, split_path: str | Path, meta: dict) -> dict:
    """The fields that tie a pairs file to the split it was mined from (kept in the pairs' metadata)."""
    import os

    rel = os.path.relpath(Path(split_path).expanduser().resolve(), Path(pairs_path).expanduser().resolve().parent)
    return {"split_id": meta.get("split_id"), "split_file": rel}


def pairs_split_path(pairs_path: str | Path) -> Path | None:
    """The split file a pairs file was mined from (None: not recorded, or no longer there)."""
    pairs_path = Path(pairs_path).expanduser()
    meta = read_parquet_meta(pairs_path) or {}
    for candidate in (pairs_path.parent / meta["split_file"] if meta.get("split_file") else None,
                      Path(meta["split"]) if meta.get("split") else None):
        if candidate is not None and candidate.exists():
            return candidate
    return None


def check_pairs_split(pairs_path: str | Path) -> None:
    """Refuse pairs whose split file (beside them, as they recorded it) is not the split they came from."""
    pairs_path = Path(pairs_path).expanduser()
    meta = read_parquet_meta(pairs_path)
    made_from, rel = meta.get("split_id"), meta.get("split_file")
    if not made_from or not rel:
        return  # pairs from before the link existed, or not from `anirec pairs`
    split_path = pairs_path.parent / rel
    if not split_path.exists():
        return  # moved or deleted: nothing there can contradict the pairs
    split_meta = read_parquet_meta(split_path)
    now = (split_meta.get("split_id") or split_id(split_meta)) if split_meta else None
    if now != made_from:
        raise AnirecError(
            f"{pairs_path}: made from another split than the one now at {split_path} (split id {made_from[:12]}, "
            f"file has {str(now)[:12]}), e.g. after an interrupted `anirec pairs`. Run `anirec pairs` again to remake both."
        )


def reuse_split(path: str | Path, ratings: pd.DataFrame) -> SplitInfo:
    """Load a saved split, refusing one made from other ratings."""
    frame, meta = load_split(path)
    if meta.get("ratings_hash") != ratings_fingerprint(ratings):
        raise AnirecError(
            f"{path}: this split was made from other ratings (fingerprint differs). "
            "Pass the ratings it was made from, or drop --split to make a new one."
        )
    meta.setdefault("split_id", split_id(meta))  # splits saved before the id existed
    return SplitInfo(frame, meta, reused=True)


def train_rows(split: SplitInfo) -> pd.DataFrame:
    return split.frame[(split.frame["split"] == "train").to_numpy()]


def text_histogram(values: np.ndarray, lo: float, hi: float, bins: int = 20, width: int = 40) -> str:
    """A few lines of '#' bars: how the labels of the labelled pairs are spread."""
    if len(values) == 0:
        return "  (no labelled pairs)"
    counts, edges = np.histogram(np.clip(values, lo, hi), bins=bins, range=(lo, hi))
    scale = width / max(int(counts.max()), 1)
    return "\n".join(
        f"  [{edges[k]:+.2f}, {edges[k + 1]:+.2f}{']' if k == bins - 1 else ')'} {counts[k]:>9,} "
        + "#" * int(np.ceil(counts[k] * scale))
        for k in range(bins)
    )


def format_split_summary(split: SplitInfo) -> str:
    """How the split was made: ratings, popular anime, train/test rows."""
    c = split.meta.get("counts", {})
    lines = []
    if split.reused:
        lines.append(f"split    reused (params {json.dumps(split.meta.get('params', {}))})")
    if c:
        lines += [
            f"ratings  {c['ratings']:>12,}   non-passive {c['non_passive']:,}",
            f"popular  {c['anime_kept']:>12,} anime with >= {c['min_ratings_per_anime']:g} non-passive ratings ({c['rows_kept']:,} rows)",
            f"split    {c['train']:>12,} train rows / {c['test']:,} test rows",
        ]
    return "\n".join(lines)


def format_summary(split: SplitInfo, result: PairsResult) -> str:
    f, cfg = result.funnel, result.config
    lines = [head] if (head := format_split_summary(split)) else []
    lines.append(f"anime    {f['anime_in_train']:>12,} in train, {f['anime_in_catalog']:,} of them in the catalog")
    lines.append(
        f"dropped  {f['pairs_not_in_catalog']:>12,} pairs with an anime not in the catalog "
        f"({f['labelled_not_in_catalog']:,} of them would have been positive/negative)"
    )
    skip = {"anime_in_train", "anime_in_catalog", "all_pairs", "pairs_not_in_catalog", "labelled_not_in_catalog"}
    for k, v in f.items():
        if k not in skip:
            lines.append(f"  {k:<22} {v:>12,}")
    lo = -1.0 if cfg.label == "agreement" else 0.0
    rule = (
        f"positive >= {cfg.positive:g}, negative < {cfg.negative:g}" if cfg.per_anime_quantile is None
        else f"per-anime quantile {cfg.per_anime_quantile:g} (top/bottom of both anime)"
    )
    lines.append(f"{cfg.label} scores of the {len(result.scores):,} labelled pairs ({rule}):")
    lines.append(text_histogram(result.scores, lo, 1.0))
    return "\n".join(lines)
