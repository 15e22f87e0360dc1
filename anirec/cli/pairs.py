"""`anirec pairs`: labelled anime pairs from co-ratings (and the train/test split they came from)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from .app import app
from .. import cf_pairs, labels
from ..build import open_catalog
from ..data import load_ratings, ratings_label, read_anime_ids, ratings_coverage
from ..errors import AnirecError, warn
from ..io import atomic_path, check_writable_output
from .options import plain, seed_option


def _write_pairs(pairs, dest: Path, meta: dict, columns: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(pairs[columns], preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), labels.META_KEY: json.dumps(meta).encode()})
    with atomic_path(dest) as tmp:
        pq.write_table(table, tmp)


LABEL_CHOICES = (*labels.LABELS, "cf")


@app.command()
def pairs(
    ratings: List[str] = typer.Option(..., "--ratings", help="Ratings: rating_complete.csv, a parquet file, a folder holding it, or hf:OWNER/NAME. Repeat to stack sets with disjoint users (e.g. the 2020 and 2016 MAL sets)."),
    catalog: str = typer.Option(..., "--catalog", help="Catalog parquet from `anirec build` (only pairs of catalog anime are usable)."),
    out: Path = typer.Option(Path("pairs.parquet"), "--out", help="Pairs parquet to write (atomically)."),
    label: str = typer.Option("agreement", "--label", "--labels", help="agreement (the reference: share of both-promote vs disagree), jaccard (promoter-set overlap) or cf (each anime's top CF neighbours over the train rows' promoters: positives for contrastive losses; see --cf-method)."),
    min_support: int = typer.Option(50, "--min-support", min=0, help="Minimum non-passive train rows on the two anime together (reference: 50)."),
    min_co_raters: int = typer.Option(0, "--min-co-raters", min=0, help="Minimum users who rated both anime (reference: no minimum)."),
    positive: Optional[float] = typer.Option(None, "--positive", help="Positive if label >= this (agreement default 0.7; jaccard: a J value)."),
    negative: Optional[float] = typer.Option(None, "--negative", help="Negative if label < this (agreement default -0.7; jaccard: a J value)."),
    per_anime_quantile: Optional[float] = typer.Option(None, "--per-anime-quantile", help="jaccard: positive/negative = in the top/bottom (1-q) of both anime's pairs (default 0.9 without thresholds)."),
    quantile: Optional[float] = typer.Option(None, "--quantile", help="Keep anime with at least this quantile of per-anime non-passive rating counts (default 0.9; --label cf: 0, all rated anime, since --min-co-promoters is its support rule)."),
    min_count: Optional[int] = typer.Option(None, "--min-count", min=0, help="Also require at least this many non-passive ratings per anime."),
    promoter_min: Optional[int] = typer.Option(None, "--promoter-min", help="Lowest promoter rating (default 9)."),
    passive_min: Optional[int] = typer.Option(None, "--passive-min", help="Lowest passive rating (default 7); below it is a detractor."),
    test_size: Optional[float] = typer.Option(None, "--test-size", help="Share of rows held out as test (default 0.1)."),
    sample: Optional[int] = typer.Option(None, "--sample", help="Label only N random catalog pairs, drawn as the reference drew its 10,000."),
    max_pairs: Optional[int] = typer.Option(None, "--max-pairs", help="Keep at most N pairs, half positive and half negative (random)."),
    seed: int = seed_option(42, "Seed of the row split, the pair sample, --max-pairs and the validation split."),
    validation_size: float = typer.Option(0.2, "--validation-size", help="Share of pairs (per sign) for validation (reference 0.2)."),
    split_out: Optional[Path] = typer.Option(None, "--split-out", help="Where to save the train/test split (default: next to --out, NAME.split.parquet)."),
    split: Optional[Path] = typer.Option(None, "--split", help="Reuse a saved split instead of making one (must come from the same ratings)."),
    exclude_anime: Optional[Path] = typer.Option(None, "--exclude-anime", help="File of MAL_IDs (one per line, e.g. from `anirec cold-anime`) that no pair may contain: keeps the cold-start anime unseen by fine-tuning."),
    cf_method: Optional[str] = typer.Option(None, "--cf-method", help=plain("--label cf: itemknn (cosine of promoter sets) or ease (EASE weights) [itemknn].")),
    neighbors: Optional[int] = typer.Option(None, "--neighbors", help="--label cf: positives per anime, its top N CF neighbours [10]."),
    min_co_promoters: Optional[int] = typer.Option(None, "--min-co-promoters", help="--label cf: a neighbour needs at least this many users promoting both [3]."),
    lam: Optional[float] = typer.Option(None, "--lam", help="--label cf --cf-method ease: EASE's L2 weight lambda [200]."),
    hard_negatives: Optional[int] = typer.Option(None, "--hard-negatives", help="--label cf: per anime, up to N hard negatives (label -1): among its most TF-IDF-similar anime, those no train user promoted together although chance predicts >= 0.5 co-promoters [0 = none]."),
    text_pool: Optional[int] = typer.Option(None, "--text-pool", help="--label cf --hard-negatives: how many TF-IDF neighbours per anime are searched [200]."),
) -> None:
    """Label anime pairs by how their co-raters agree (METHOD.md sections 2-3), all pairs at once,
    or (--label cf) by each anime's collaborative-filtering neighbours."""
    if label not in LABEL_CHOICES:
        raise AnirecError(f"--label {label!r}: choose one of {', '.join(LABEL_CHOICES)}.")
    cf_args = {"method": cf_method, "neighbors": neighbors, "min_co_promoters": min_co_promoters, "lam": lam,
               "hard_negatives": hard_negatives, "text_pool": text_pool}
    if label == "cf":
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
    _pairs_run(ratings, catalog, out, config, split, split_out, exclude_anime, seed,
               {"promoter_min": promoter_min, "passive_min": passive_min, "quantile": quantile,
                "min_count": min_count, "test_size": test_size})


def _pairs_run(ratings, catalog, out, config, split, split_out, exclude_anime, seed, split_args) -> None:
    """Load, split, label (reference labels or CF neighbours), write: what every --label shares."""
    if split and split_out:
        raise typer.BadParameter("--split reuses a saved split; --split-out would write a new one. Give one of them.", param_hint="--split-out")
    check_writable_output(out, "file", "--out")
    split_target = None if split else (split_out or out.with_name(f"{out.stem}.split.parquet"))
    if split_target is not None:
        check_writable_output(split_target, "file", "--split-out")

    catalog_frame = open_catalog(catalog)
    catalog_ids = catalog_frame["MAL_ID"].to_numpy(np.int64)
    if exclude_anime:
        excluded = read_anime_ids(exclude_anime)
        kept = ~np.isin(catalog_ids, excluded)
        typer.echo(f"exclude  {int((~kept).sum()):>12,} catalog anime listed in {exclude_anime} (no pair may contain them)")
        catalog_ids, catalog_frame = catalog_ids[kept], catalog_frame[kept]
    table = load_ratings(ratings)
    coverage = ratings_coverage(table, catalog_ids)
    typer.echo(f"ratings  {coverage['ratings']:>12,} from {coverage['users']:,} users ({ratings_label(ratings)})")
    if coverage["ratings_in_catalog"] == 0:
        raise AnirecError(
            f"{ratings_label(ratings)}: none of its {coverage['ratings']:,} ratings is on an anime of {catalog}. "
            "Pass the catalog built from the same MAL data."
        )

    if split:
        info = labels.reuse_split(split, table)
        used = info.meta.get("params", {})
        ignored = [f"--{k.replace('_', '-')}" for k, v in split_args.items() if v is not None and used.get(k) != v]
        if ignored:
            warn(f"{', '.join(ignored)} ignored: the split in {split} was made with {json.dumps(used)}.")
    else:
        # CF neighbours have their own support rule (--min-co-promoters), so by default the cf
        # split keeps every rated anime instead of the reference's top 10% most rated.
        popular_q = 0.0 if config.label == "cf" else 0.9
        defaults = {"promoter_min": labels.PROMOTER_MIN, "passive_min": labels.PASSIVE_MIN, "quantile": popular_q, "min_count": None, "test_size": 0.1}
        args = {k: (defaults[k] if v is None else v) for k, v in split_args.items()}
        info = labels.make_split(table, seed=seed, **args)

    if config.label == "cf":
        result = cf_pairs.label_cf_pairs(info.frame, catalog_frame, config)
        typer.echo(labels.format_split_summary(info))
        typer.echo(cf_pairs.format_cf_summary(result))
        columns = cf_pairs.CF_PAIR_COLUMNS
        if len(result.pairs) == 0:
            raise AnirecError(
                f"no CF neighbour pair: {result.funnel['catalog_anime_with_promoters']:,} catalog anime have train promoters "
                f"but no pair reaches {config.min_co_promoters} co-promoters. Lower --min-co-promoters or pass more ratings.")
    else:
        counts = labels.pair_counts(labels.train_rows(info), progress=True)
        result = labels.label_pairs(counts, catalog_ids, config)
        typer.echo(labels.format_summary(info, result))
        columns = labels.PAIR_COLUMNS
        if len(result.pairs) == 0:
            f = result.funnel
            raise AnirecError(
                f"no pair is positive or negative: {f['candidate_pairs']:,} candidate pairs, "
                f"{f[f'support>={config.min_support}']:,} with support >= {config.min_support}, {f['labelled']:,} labelled, "
                f"0 beyond the thresholds. Lower --min-support/--min-co-raters or widen --positive/--negative."
            )

    split_path = None
    if not info.reused:
        split_path = split_target
        labels.save_split(info.frame, split_path, info.meta)
    # Two files, written one after the other: the pairs name their split by id, and every reader
    # of pairs (labels.check_pairs_split) refuses them if a later split has replaced it.
    meta = {
        "config": {k: v for k, v in vars(config).items()},
        "split": str(split or split_path), "ratings_hash": info.meta.get("ratings_hash"),
        **labels.pairs_split_link(out, split or split_path, info.meta),
        "ratings": ratings_label(ratings),
        "funnel": result.funnel,
        "excluded_anime": str(exclude_anime) if exclude_anime else None,
    }
    _write_pairs(result.pairs, out, meta, columns)
    if split_path:
        typer.echo(f"split    -> {split_path}")
    typer.echo(f"pairs    {len(result.pairs):>12,} ({result.funnel['train']:,} train / {result.funnel['validation']:,} validation) -> {out}")
