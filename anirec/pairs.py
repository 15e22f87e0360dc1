"""The pairs stage (`anirec pairs`): ratings + catalog -> a row split and labelled anime pairs.

Each step has its own module: ratings -> opinions and the popular anime (``anirec.opinions``),
the row split and its file (``anirec.split``), co-rating counts over the train rows
(``anirec.co_ratings``), then the labels: the reference's agreement or Jaccard
(``anirec.labels``), each anime's CF neighbours (``anirec.cf_pairs``) or the cosine of EASE's
item factors (``anirec.ease_labels``). This module checks the
outputs before any work, loads the inputs, runs the steps and writes two files: the split first,
then the pairs, which record the split's id and path (``split.check_pairs_split`` refuses pairs
whose split has been replaced since). The progress lines go to ``echo``; the CLI prints the
result.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import cf_pairs, ease_labels, labels
from .build import open_catalog
from .co_ratings import pair_counts
from .data import load_ratings, ratings_coverage, ratings_label, read_anime_ids, source_inputs
from .errors import AnirecError, warn
from .io import check_outputs_not_inputs, check_writable_output
from .opinions import PASSIVE_MIN, PROMOTER_MIN
from .pairs_report import format_cf_summary, format_ease_summary, format_label_summary, format_split_summary
from .split import SplitInfo, make_split, pairs_split_link, reuse_split, save_split, train_rows, write_parquet

LABEL_CHOICES = (*labels.LABELS, "cf", ease_labels.LABEL)
# labels with their own support rule: their split keeps every rated anime by default
OWN_SUPPORT_RULE = ("cf", ease_labels.LABEL)


@dataclass
class SplitOptions:
    """The row split's parameters as given; None takes the default (``resolved``)."""

    promoter_min: int | None = None
    passive_min: int | None = None
    quantile: float | None = None
    min_count: int | None = None
    test_size: float | None = None

    def resolved(self, label: str) -> dict:
        # CF neighbours and EASE factors have their own support rule (--min-co-promoters,
        # --min-promoters), so by default their split keeps every rated anime instead of the
        # reference's top 10% most rated.
        defaults = {"promoter_min": PROMOTER_MIN, "passive_min": PASSIVE_MIN,
                    "quantile": 0.0 if label in OWN_SUPPORT_RULE else 0.9,
                    "min_count": None, "test_size": 0.1}
        return {k: (defaults[k] if v is None else v) for k, v in asdict(self).items()}


@dataclass
class PairsOutput:
    pairs_path: Path
    split_path: Path | None  # the split written beside the pairs (None: a saved split was reused)
    result: labels.PairsResult


def make_pairs(ratings: list[str], catalog: str, out: str | Path,
               config: labels.PairsConfig | cf_pairs.CFPairsConfig | ease_labels.EaseCosineConfig,
               split_options: SplitOptions | None = None, split: str | Path | None = None,
               split_out: str | Path | None = None, exclude_anime: str | Path | None = None, echo=print) -> PairsOutput:
    """Load, split (or reuse ``split``), label, write ``out`` and its split (``split_out``, default
    ``OUT_STEM.split.parquet`` beside it); ``config`` says which labels (checked first)."""
    config = config.resolved()
    out = Path(out)
    split_target = _check_outputs(out, split, split_out)
    check_outputs_not_inputs([("--out", out), ("--split-out", split_target)], [*source_inputs("--ratings", ratings, "ratings"), *source_inputs("--catalog", catalog, "catalog"), ("--split", split), ("--exclude-anime", exclude_anime)])
    catalog_frame = _allowed_catalog(catalog, exclude_anime, echo)
    table = _read_ratings(ratings, catalog, catalog_frame["MAL_ID"].to_numpy(np.int64), echo)
    info = _split_of(table, split, split_options or SplitOptions(), config)
    result = _label(info, catalog_frame, config, echo)
    if not info.reused:
        save_split(info.frame, split_target, info.meta)
    # Two files, written one after the other: the pairs name their split by id, and every reader
    # of pairs (split.check_pairs_split) refuses them if a later split has replaced it.
    split_file = split or split_target
    meta = {
        "config": {k: v for k, v in vars(config).items()},
        "split": str(split_file), "ratings_hash": info.meta.get("ratings_hash"),
        **pairs_split_link(out, split_file, info.meta),
        "ratings": ratings_label(ratings),
        "funnel": result.funnel,
        "excluded_anime": str(exclude_anime) if exclude_anime else None,
    }
    columns = {"cf": cf_pairs.CF_PAIR_COLUMNS, ease_labels.LABEL: ease_labels.EASE_PAIR_COLUMNS}.get(
        config.label, labels.PAIR_COLUMNS)
    write_pairs(result.pairs[columns], out, meta)
    return PairsOutput(out, None if info.reused else split_target, result)


def write_pairs(pairs: pd.DataFrame, path: Path, meta: dict) -> Path:
    """The pairs file: parquet, ``meta`` (config, split link, funnel) under the ``anirec`` key, atomically."""
    return write_parquet(pairs, path, meta)


def _check_outputs(out: Path, split: str | Path | None, split_out: str | Path | None) -> Path | None:
    """Refuse unwritable outputs before any work; return where a new split goes (None: reused)."""
    if split and split_out:
        raise AnirecError("--split reuses a saved split; --split-out would write a new one. Give one of them.")
    check_writable_output(out, "file", "--out")
    if split:
        return None
    split_target = Path(split_out) if split_out else out.with_name(f"{out.stem}.split.parquet")
    check_writable_output(split_target, "file", "--split-out")
    return split_target


def _allowed_catalog(catalog: str, exclude_anime, echo) -> pd.DataFrame:
    """The catalog rows a pair may name: all but the ``exclude_anime`` list (e.g. cold-start anime)."""
    catalog_frame = open_catalog(catalog)
    if exclude_anime:
        excluded = read_anime_ids(exclude_anime)
        kept = ~np.isin(catalog_frame["MAL_ID"].to_numpy(np.int64), excluded)
        echo(f"exclude  {int((~kept).sum()):>12,} catalog anime listed in {exclude_anime} (no pair may contain them)")
        catalog_frame = catalog_frame[kept]
    return catalog_frame


def _read_ratings(ratings: list[str], catalog: str, catalog_ids: np.ndarray, echo) -> pd.DataFrame:
    table = load_ratings(ratings)
    coverage = ratings_coverage(table, catalog_ids)
    echo(f"ratings  {coverage['ratings']:>12,} from {coverage['users']:,} users ({ratings_label(ratings)})")
    if coverage["ratings_in_catalog"] == 0:
        raise AnirecError(
            f"{ratings_label(ratings)}: none of its {coverage['ratings']:,} ratings is on an anime of {catalog}. "
            "Pass the catalog built from the same MAL data."
        )
    return table


def _split_of(table: pd.DataFrame, split: str | Path | None, options: SplitOptions, config) -> SplitInfo:
    """A new split of ``table``, or the saved ``split`` (a warning names the options it overrides)."""
    if not split:
        return make_split(table, seed=config.seed, **options.resolved(config.label))
    info = reuse_split(split, table)
    used = info.meta.get("params", {})
    ignored = [f"--{k.replace('_', '-')}" for k, v in asdict(options).items() if v is not None and used.get(k) != v]
    if ignored:
        warn(f"{', '.join(ignored)} ignored: the split in {split} was made with {json.dumps(used)}.")
    return info


def _label(info: SplitInfo, catalog_frame: pd.DataFrame, config, echo) -> labels.PairsResult:
    """The labelled pairs of the split's train rows (refused when none is positive or negative)."""
    if config.label == "cf":
        result = cf_pairs.label_cf_pairs(info.frame, catalog_frame, config)
        echo(format_split_summary(info))
        echo(format_cf_summary(result))
        if len(result.pairs) == 0:
            raise AnirecError(
                f"no CF neighbour pair: {result.funnel['catalog_anime_with_promoters']:,} catalog anime have train promoters "
                f"but no pair reaches {config.min_co_promoters} co-promoters. Lower --min-co-promoters or pass more ratings.")
        return result
    if config.label == ease_labels.LABEL:
        result = ease_labels.label_ease_pairs(info.frame, catalog_frame, config)
        echo(format_split_summary(info))
        echo(format_ease_summary(result))
        return result
    counts = pair_counts(train_rows(info), progress=True)
    result = labels.label_pairs(counts, catalog_frame["MAL_ID"].to_numpy(np.int64), config)
    echo(format_label_summary(info, result))
    if len(result.pairs) == 0:
        f = result.funnel
        raise AnirecError(
            f"no pair is positive or negative: {f['candidate_pairs']:,} candidate pairs, "
            f"{f[f'support>={config.min_support}']:,} with support >= {config.min_support}, {f['labelled']:,} labelled, "
            f"0 beyond the thresholds. Lower --min-support/--min-co-raters or widen --positive/--negative."
        )
    return result
