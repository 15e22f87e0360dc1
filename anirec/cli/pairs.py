"""`anirec pairs`: labelled anime pairs from co-ratings (and the train/test split they came from).

The options are parsed and checked here; the work is ``anirec.pairs.make_pairs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import app
from .options import plain, seed_option
from .. import cf_pairs, ease_labels, labels
from ..errors import AnirecError
from ..pairs import LABEL_CHOICES, SplitOptions, make_pairs


@app.command()
def pairs(
    ratings: List[str] = typer.Option(..., "--ratings", help="Ratings: rating_complete.csv, a parquet file, a folder holding it, or hf:OWNER/NAME. Repeat to stack sets with disjoint users (e.g. the 2020 and 2016 MAL sets)."),
    catalog: str = typer.Option(..., "--catalog", help="Catalog parquet from `anirec build` (only pairs of catalog anime are usable)."),
    out: Path = typer.Option(Path("pairs.parquet"), "--out", help="Pairs parquet to write (atomically)."),
    label: str = typer.Option("agreement", "--label", "--labels", help="agreement (the reference: share of both-promote vs disagree), jaccard (promoter-set overlap), cf (each anime's top CF neighbours over the train rows' promoters: positives for contrastive losses; see --cf-method) or ease-cosine (cosine of the anime's low-rank EASE factors over the train rows: a graded label for regression; see --rank)."),
    min_support: int = typer.Option(50, "--min-support", min=0, help="Minimum non-passive train rows on the two anime together (reference: 50)."),
    min_co_raters: int = typer.Option(0, "--min-co-raters", min=0, help="Minimum users who rated both anime (reference: no minimum)."),
    positive: Optional[float] = typer.Option(None, "--positive", help="Positive if label >= this (agreement default 0.7; jaccard: a J value)."),
    negative: Optional[float] = typer.Option(None, "--negative", help="Negative if label < this (agreement default -0.7; jaccard: a J value)."),
    per_anime_quantile: Optional[float] = typer.Option(None, "--per-anime-quantile", help="jaccard: positive/negative = in the top/bottom (1-q) of both anime's pairs (default 0.9 without thresholds)."),
    quantile: Optional[float] = typer.Option(None, "--quantile", help="Keep anime with at least this quantile of per-anime non-passive rating counts (default 0.9; --label cf / ease-cosine: 0, all rated anime, since --min-co-promoters / --min-promoters is their support rule)."),
    min_count: Optional[int] = typer.Option(None, "--min-count", min=0, help="Also require at least this many non-passive ratings per anime."),
    promoter_min: Optional[int] = typer.Option(None, "--promoter-min", help="Lowest promoter rating (default 9)."),
    passive_min: Optional[int] = typer.Option(None, "--passive-min", help="Lowest passive rating (default 7); below it is a detractor."),
    test_size: Optional[float] = typer.Option(None, "--test-size", help="Share of rows held out as test (default 0.1)."),
    sample: Optional[int] = typer.Option(None, "--sample", help="Label only N random catalog pairs, drawn as the reference drew its 10,000."),
    max_pairs: Optional[int] = typer.Option(None, "--max-pairs", help="Keep at most N pairs, half positive and half negative (random); ease-cosine: an equal share of each pair kind."),
    seed: int = seed_option(42, "Seed of the row split, the pair sample, --max-pairs and the validation split."),
    validation_size: float = typer.Option(0.2, "--validation-size", help="Share of pairs (per sign) for validation (reference 0.2)."),
    split_out: Optional[Path] = typer.Option(None, "--split-out", help="Where to save the train/test split (default: next to --out, NAME.split.parquet)."),
    split: Optional[Path] = typer.Option(None, "--split", help="Reuse a saved split instead of making one (must come from the same ratings)."),
    exclude_anime: Optional[Path] = typer.Option(None, "--exclude-anime", help="File of MAL_IDs (one per line, e.g. from `anirec cold-anime`) that no pair may contain: keeps the cold-start anime unseen by fine-tuning."),
    cf_method: Optional[str] = typer.Option(None, "--cf-method", help=plain("--label cf: itemknn (cosine of promoter sets) or ease (EASE weights) [itemknn].")),
    neighbors: Optional[int] = typer.Option(None, "--neighbors", help="--label cf: positives per anime, its top N CF neighbours [10]; ease-cosine: pairs per anime with its N nearest by factor cosine [5]."),
    min_co_promoters: Optional[int] = typer.Option(None, "--min-co-promoters", help="--label cf: a neighbour needs at least this many users promoting both [3]."),
    lam: Optional[float] = typer.Option(None, "--lam", help="--label cf --cf-method ease and --label ease-cosine: EASE's L2 weight lambda [200]."),
    hard_negatives: Optional[int] = typer.Option(None, "--hard-negatives", help="--label cf: per anime, up to N hard negatives (label -1): among its most TF-IDF-similar anime, those no train user promoted together although chance predicts >= 0.5 co-promoters [0 = none]."),
    text_pool: Optional[int] = typer.Option(None, "--text-pool", help="--label cf --hard-negatives: how many TF-IDF neighbours per anime are searched [200]."),
    rank: Optional[int] = typer.Option(None, "--rank", help="--label ease-cosine: EASE factors kept from the SVD of its weights [64]."),
    min_promoters: Optional[int] = typer.Option(None, "--min-promoters", help="--label ease-cosine: train promoters an anime needs to get pairs [5]."),
    text_neighbors: Optional[int] = typer.Option(None, "--text-neighbors", help="--label ease-cosine: pairs per anime with its N most TF-IDF-similar anime [5]."),
    random_pairs: Optional[int] = typer.Option(None, "--random-pairs", help="--label ease-cosine: pairs per anime with N random anime [5]."),
) -> None:
    """Label anime pairs by how their co-raters agree (METHOD.md sections 2-3), all pairs at once,
    by each anime's collaborative-filtering neighbours (--label cf) or by the cosine of their EASE
    item factors (--label ease-cosine)."""
    if label not in LABEL_CHOICES:
        raise AnirecError(f"--label {label!r}: choose one of {', '.join(LABEL_CHOICES)}.")
    cf_args = {"method": cf_method, "neighbors": neighbors, "min_co_promoters": min_co_promoters, "lam": lam,
               "hard_negatives": hard_negatives, "text_pool": text_pool}
    ease_args = {"rank": rank, "min_promoters": min_promoters, "text_neighbors": text_neighbors, "random_pairs": random_pairs}
    if label != ease_labels.LABEL:
        _refuse(ease_args, f"only used by --label {ease_labels.LABEL}.")
    if label == ease_labels.LABEL:
        _refuse({"method": cf_method, "min_co_promoters": min_co_promoters, "hard_negatives": hard_negatives,
                 "text_pool": text_pool, "min_co_raters": min_co_raters or None, "positive": positive, "negative": negative,
                 "per_anime_quantile": per_anime_quantile, "sample": sample},
                f"not used by --label {ease_labels.LABEL} (its knobs: --lam, --rank, --min-promoters, --neighbors, "
                "--text-neighbors, --random-pairs, --max-pairs).")
        config = _ease_config({"lam": lam, "neighbors": neighbors, "max_pairs": max_pairs, **ease_args},
                              validation_size, seed)
    elif label == "cf":
        reference_only = {"--min-co-raters": min_co_raters or None, "--positive": positive, "--negative": negative,
                          "--per-anime-quantile": per_anime_quantile, "--sample": sample, "--max-pairs": max_pairs}
        given = [k for k, v in reference_only.items() if v is not None]
        if given:
            raise AnirecError(f"{', '.join(given)}: not used by --label cf (its knobs: --neighbors, --min-co-promoters, --hard-negatives).")
        config = cf_pairs.CFPairsConfig(
            **{k: v for k, v in cf_args.items() if v is not None}, min_support=min_support,
            validation_size=validation_size, seed=seed,
        ).resolved()
    else:
        given = [f"--{k.replace('_', '-')}".replace("--method", "--cf-method") for k, v in cf_args.items() if v is not None]
        if given:
            raise AnirecError(f"{', '.join(given)}: only used by --label cf.")
        config = labels.PairsConfig(
            label=label, min_support=min_support, min_co_raters=min_co_raters, positive=positive, negative=negative,
            per_anime_quantile=per_anime_quantile, sample=sample, max_pairs=max_pairs,
            validation_size=validation_size, seed=seed,
        ).resolved()  # argument errors before any heavy loading
    split_options = SplitOptions(promoter_min=promoter_min, passive_min=passive_min, quantile=quantile,
                                 min_count=min_count, test_size=test_size)
    made = make_pairs(ratings, catalog, out, config, split_options, split=split, split_out=split_out,
                      exclude_anime=exclude_anime, echo=typer.echo)
    if made.split_path:
        typer.echo(f"split    -> {made.split_path}")
    f = made.result.funnel
    typer.echo(f"pairs    {len(made.result.pairs):>12,} ({f['train']:,} train / {f['validation']:,} validation) -> {made.pairs_path}")


def _refuse(given: dict, why: str) -> None:
    """One error naming every option that was given but means nothing for this --label."""
    named = [f"--{k.replace('_', '-')}".replace("--method", "--cf-method") for k, v in given.items() if v is not None]
    if named:
        raise AnirecError(f"{', '.join(named)}: {why}")


def _ease_config(given: dict, validation_size: float, seed: int) -> ease_labels.EaseCosineConfig:
    """--label ease-cosine's settings: the options given, the rest at their defaults (checked)."""
    return ease_labels.EaseCosineConfig(
        **{k: v for k, v in given.items() if v is not None}, validation_size=validation_size, seed=seed,
    ).resolved()
