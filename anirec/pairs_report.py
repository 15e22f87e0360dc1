"""What `anirec pairs` prints: how the split was made, the labelling funnel, the labels' spread.

Plain text from the stage's results (``split.SplitInfo``, ``labels.PairsResult``), so the
library and the CLI print the same lines and the labelling modules print nothing.
"""

from __future__ import annotations

import json

import numpy as np

from .cf_pairs import NEGATIVE, POSITIVE
from .ease_labels import PAIR_KINDS
from .labels import PairsResult
from .split import SplitInfo


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


def format_label_summary(split: SplitInfo, result: PairsResult) -> str:
    """The split, then the labelling funnel and a histogram of the labelled pairs' scores."""
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


def format_cf_summary(result: PairsResult) -> str:
    """The CF neighbours: what was allowed, how many anime got a pair, the pairs' agreement labels."""
    f, cfg = result.funnel, result.config
    how = "cosine of promoter sets" if cfg.method == "itemknn" else f"EASE weight (lambda {cfg.lam:g})"
    lines = [
        f"cf       {cfg.method}: top {cfg.neighbors} neighbours by {how}, >= {cfg.min_co_promoters} co-promoters, train rows only",
        f"anime    {f['anime_in_catalog']:>12,} allowed catalog anime, {f['catalog_anime_with_promoters']:,} with a train promoter, "
        f"{f['anime_with_a_neighbor']:,} with a CF neighbour",
        f"covered  {f['catalog_anime_in_a_pair']:>12,} catalog anime in at least one pair "
        f"({f['catalog_anime_in_a_positive']:,} in a positive)",
        f"pairs    {f['positives']:>12,} positive (label {POSITIVE:g}), {f['negatives']:,} hard negative (label {NEGATIVE:g})"
        + (f" for {f['anchors_with_hard_negatives']:,} anime" if "anchors_with_hard_negatives" in f else ""),
        f"         {f['pairs_with_agreement_label']:>12,} with a reference agreement label (support >= {cfg.min_support}, "
        f"both outcomes); {f['validation_with_agreement_label']:,} of the {f['validation']:,} validation pairs",
        "agreement labels of the CF pairs:",
        text_histogram(result.scores, -1.0, 1.0),
    ]
    return "\n".join(lines)


def format_ease_summary(result: PairsResult) -> str:
    """The ease-cosine labels: which anime got pairs, how many of each kind, the labels' spread."""
    f, cfg, pairs = result.funnel, result.config, result.pairs
    lines = [
        f"ease     cosine of rank-{cfg.rank} EASE factors (lambda {cfg.lam:g}), train rows only",
        f"anime    {f['anime_in_catalog']:>12,} allowed catalog anime, {f['catalog_anime_with_promoters']:,} with a train "
        f"promoter, {f[f'anime_with_{cfg.min_promoters}+_promoters']:,} with >= {cfg.min_promoters} (these get pairs)",
        f"drawn    {sum(f[k + '_pairs_drawn'] for k in PAIR_KINDS):>12,} pairs: "
        + ", ".join(f"{f[k + '_pairs_drawn']:,} {k}" for k in PAIR_KINDS) + f"; {f['pairs']:,} kept"
        + (f" (--max-pairs {cfg.max_pairs:,}, an equal share per kind)" if cfg.max_pairs is not None else ""),
        f"covered  {f['catalog_anime_in_a_pair']:>12,} catalog anime in at least one pair",
    ]
    for kind in PAIR_KINDS:
        labels = pairs.loc[pairs["pair_kind"] == kind, "label"].to_numpy()
        if len(labels):
            lines.append(f"  {kind:<8} {len(labels):>10,} kept, label median {np.median(labels):+.3f}")
    lines.append("labels of all pairs:")
    lines.append(text_histogram(result.scores, -1.0, 1.0))
    return "\n".join(lines)
