"""Pair labels from co-rating counts (METHOD.md section 3): which anime pairs are positive or negative.

How we read the reference (checked against its published notebook); the counts themselves come
from ``anirec.co_ratings`` over the split's train rows (``anirec.split``):

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

``jaccard`` labels use the promoter sets instead: J = |Pa & Pb| / |Pa | Pb|. Positives/negatives
come from thresholds on J (J >= positive, J < negative) or, by default, from per-anime quantiles:
a pair is positive when J is in the top (1 - q) of *both* anime's eligible pairs, negative when it
is in the bottom (1 - q) of both. The label written is +J for positives and -(1 - J) for
negatives (so that, as with ``agreement``, the sign is the class and a larger magnitude is a
stronger signal).

The labelled pairs are split into train and validation pairs, stratified by sign
(``validation_split``; the CF pairs of ``anirec.cf_pairs`` use the same split).
"""

from __future__ import annotations

import random
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .co_ratings import PairCounts
from .errors import AnirecError

PAIR_COLUMNS = ["anime_a", "anime_b", "label", "both_promote", "disagree", "co_raters", "support", "split"]
AGREEMENT_COLUMN = "agreement_label"  # CF pairs: the reference label of a pair where it exists (NaN elsewhere)
LABELS = ("agreement", "jaccard")


@dataclass
class PairsConfig:
    """How `anirec pairs --label agreement|jaccard` labels pairs (the CF labels: anirec.cf_pairs)."""

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
    """Labelled pairs and how many candidates each step kept (the CF labels return one too)."""

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


def validation_split(sign: np.ndarray, size: float, seed: int) -> np.ndarray:
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
    support_ok, co_ok, eligible = _eligible(counts, score, cfg)
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

    keep = _keep(keep_pos, keep_neg, cfg, funnel)
    pairs = _pairs_frame(counts, score, pos, a[keep], b[keep], cfg)
    funnel["train"] = int((pairs["split"] == "train").sum())
    funnel["validation"] = int((pairs["split"] == "validation").sum())
    return PairsResult(pairs=pairs, funnel=funnel, scores=scores, config=cfg)


def _eligible(counts: PairCounts, score: np.ndarray, cfg: PairsConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(support ok, co-raters ok, eligible) masks over the dense (n, n) pair matrix."""
    support_ok = counts.support() >= cfg.min_support
    co_ok = counts.co_raters >= cfg.min_co_raters
    if cfg.label == "agreement":  # the reference returns None unless both outcomes occur
        outcome_ok = (counts.both_promote > 0) & (counts.disagree > 0)
    else:
        outcome_ok = ~np.isnan(score)
    return support_ok, co_ok, support_ok & co_ok & outcome_ok


def _keep(keep_pos: np.ndarray, keep_neg: np.ndarray, cfg: PairsConfig, funnel: dict) -> np.ndarray:
    """Positions of the candidates kept: every positive and negative, or (``max_pairs``) a balanced
    random sample, at most half of max_pairs from each class."""
    keep = np.flatnonzero(keep_pos | keep_neg)
    if cfg.max_pairs is not None:
        rng = np.random.default_rng(cfg.seed)
        half = cfg.max_pairs // 2
        p_idx, n_idx = keep[keep_pos[keep]], keep[keep_neg[keep]]
        keep = np.sort(np.concatenate([
            rng.permutation(p_idx)[: cfg.max_pairs - half], rng.permutation(n_idx)[:half]
        ]))
        funnel["kept_max_pairs"] = len(keep)
    return keep


def _pairs_frame(counts: PairCounts, score: np.ndarray, pos: np.ndarray, a: np.ndarray, b: np.ndarray,
                 cfg: PairsConfig) -> pd.DataFrame:
    """The kept pairs (positions a, b) as PAIR_COLUMNS, sorted by (anime_a, anime_b)."""
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
    pairs["split"] = validation_split(pos[a, b], cfg.validation_size, cfg.seed)
    return pairs.sort_values(["anime_a", "anime_b"], kind="stable").reset_index(drop=True)
