"""The build stage: raw MAL catalog -> catalog parquet with one description per anime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .data import load_catalog, load_ratings, ratings_coverage, ratings_label, read_catalog, source_inputs
from .descriptions import (
    DEFAULT_TEMPLATE,
    TEMPLATE_COLUMN,
    TEMPLATES,
    TRUNCATION_LIMITS,
    build_descriptions,
    check_template,
    describe_rows,
    length_summary,
    save_length_histogram,
    token_lengths,
    truncation_table,
)
from .errors import AnirecError
from .io import check_outputs_not_inputs, check_writable_output, write_parquet
from .models import load_tokenizer

# What later stages read; the rest of the Kaggle columns are kept too when present.
FRONT_COLUMNS = ["MAL_ID", "Name", "English name", "Type", "Genres", "Premiered", "description"]
# Stored as float64 (NaN where MAL says Unknown), so sorting and filtering on them is numeric.
NUMERIC_COLUMNS = ["Score", "Members", "Popularity"]


@dataclass
class BuildResult:
    catalog: pd.DataFrame
    source: str
    out: Path | None
    rows_read: int
    duplicates_dropped: int
    dropped: dict[str, int]
    coverage: dict | None = None  # ratings_report of the ratings given, if any
    template: str = DEFAULT_TEMPLATE
    # every template's descriptions of the kept rows (only with compare_templates: the token table)
    descriptions_by_template: dict[str, list[str]] | None = None


def build_inputs(data, ratings=None) -> list[tuple[str, Path]]:
    """Every local file `anirec build` reads (for the check that no output overwrites one)."""
    return [*source_inputs("--data", data, "catalog"), *source_inputs("--ratings", ratings, "ratings")]


def build_catalog(data: str | Path, out: str | Path | None = None, skip_unknown: bool = False,
                  ratings=None, template: str = DEFAULT_TEMPLATE, compare_templates: bool = False) -> BuildResult:
    """Load, describe and (if ``out``) write the catalog atomically; with ``ratings``, validate
    them and count what falls outside the catalog first (bad ratings: nothing is written). The
    ``description_template`` column records which template wrote the descriptions."""
    check_template(template)
    if out is not None:
        check_writable_output(out, "file", "--out")
        check_outputs_not_inputs([("--out", out)], build_inputs(data, ratings))
    loaded = load_catalog(data)
    catalog, dropped = build_descriptions(loaded.frame, skip_unknown=skip_unknown, template=template)
    if len(catalog) == 0:
        reasons = ", ".join(f"{n:,} {why}" for why, n in dropped.items() if n)
        raise AnirecError(f"{loaded.source}: no anime left to describe ({reasons}). "
                          "Check the synopsis and Name columns of the data.")
    by_template = None
    if compare_templates:
        records = catalog.to_dict("records")
        by_template = {name: (catalog["description"].tolist() if name == template else describe_rows(records, name, skip_unknown))
                       for name in TEMPLATES}
    catalog[TEMPLATE_COLUMN] = template
    rest = [c for c in catalog.columns if c not in FRONT_COLUMNS]
    catalog = catalog[FRONT_COLUMNS + rest]
    # Mixed object columns (numbers read as text, 'Unknown') are stored as strings; ids stay ints.
    for c in rest:
        if c in NUMERIC_COLUMNS:
            catalog[c] = pd.to_numeric(catalog[c], errors="coerce").astype(np.float64)
        elif catalog[c].dtype == object:
            catalog[c] = catalog[c].astype("string")
    catalog["MAL_ID"] = catalog["MAL_ID"].astype(np.int64)
    coverage = ratings_report(ratings, catalog) if ratings else None
    if out is not None:
        write_parquet(catalog, out)
    return BuildResult(catalog, loaded.source, Path(out) if out else None, loaded.rows_read, loaded.duplicates_dropped,
                       dropped, coverage, template, by_template)


def open_catalog(source: str | Path) -> pd.DataFrame:
    """A catalog parquet written by `anirec build`, or any raw source built in memory (not written)."""
    path = Path(source).expanduser()
    if path.suffix == ".parquet":
        return read_catalog(path)
    return build_catalog(source).catalog


def format_build_summary(r: BuildResult) -> str:
    lens = r.catalog["description"].str.len().to_numpy()
    s = length_summary(lens)
    lines = [f"read     {r.rows_read:>7,} rows from {r.source}"]
    if r.duplicates_dropped:
        lines.append(f"dropped  {r.duplicates_dropped:>7,} duplicate MAL_ID rows")
    for why, n in r.dropped.items():
        if n or why != "no name":  # the synopsis counts are always worth seeing; a name is rarely missing
            lines.append(f"dropped  {n:>7,} ({why})")
    lines.append(f"kept     {len(r.catalog):>7,} anime" + (f" -> {r.out}" if r.out else "") + f" (template {r.template})")
    lines.append(
        f"description length (characters): min {s['min']}, p50 {s['p50']}, p90 {s['p90']}, "
        f"p99 {s['p99']}, max {s['max']}, mean {s['mean']:.0f}"
    )
    return "\n".join(lines)


def token_stats(descriptions: list[str], tokenizer_name: str, histogram: str | Path | None = None, tok=None) -> dict:
    tok = tok or load_tokenizer(tokenizer_name)
    lengths = token_lengths(descriptions, tok)
    stats = {"lengths": lengths, "summary": length_summary(lengths), "truncated": truncation_table(lengths)}
    if histogram:
        save_length_histogram(lengths, histogram, f"Description token lengths ({Path(tokenizer_name).name})")
    return stats


def template_token_stats(by_template: dict[str, list[str]], tokenizer_name: str, chosen: str,
                         histogram: str | Path | None = None) -> dict[str, dict]:
    """Token statistics of every template's descriptions (the histogram: the chosen template's)."""
    tok = load_tokenizer(tokenizer_name)
    return {name: token_stats(texts, tokenizer_name, histogram if name == chosen else None, tok)
            for name, texts in by_template.items()}


def format_template_token_stats(stats: dict[str, dict], name: str, chosen: str) -> str:
    """Both templates side by side; * marks the one written to the catalog."""
    names = list(stats)
    label = {t: t + ("*" if t == chosen else "") for t in names}
    lines = [f"tokens ({name}), per template (* = written to the catalog):"]
    for t in names:
        s = stats[t]["summary"]
        lines.append(f"  {label[t]:<14} p50 {s['p50']}, p90 {s['p90']}, p99 {s['p99']}, max {s['max']}")
    lines.append("max_seq_length  " + "  ".join(f"{label[t] + ' truncated':>26}" for t in names))
    for k in TRUNCATION_LIMITS:
        cells = []
        for t in names:
            share, n = stats[t]["truncated"][k], len(stats[t]["lengths"])
            cells.append(f"{share:>16.1%} ({round(share * n):>6,})")
        lines.append(f"{k:>14}  " + "  ".join(f"{c:>26}" for c in cells))
    lines.append("(fields-first puts type, studio, genres, source and premiere before the synopsis: "
                 "what it truncates is the synopsis' end and the producers; the reference loses its genres first)")
    return "\n".join(lines)


def ratings_report(ratings_source: str | Path, catalog: pd.DataFrame) -> dict:
    """Validate a ratings source and count what falls outside the catalog (normal: reported, not fatal)."""
    ratings = load_ratings(ratings_source)
    return {"source": ratings_label(ratings_source), **ratings_coverage(ratings, catalog["MAL_ID"].to_numpy())}


def format_coverage(c: dict) -> str:
    share = c["ratings_not_in_catalog"] / max(c["ratings"], 1)
    return (
        f"ratings  {c['ratings']:>7,} from {c['users']:,} users ({c['source']})\n"
        f"         {c['ratings_in_catalog']:>7,} on catalog anime; {c['ratings_not_in_catalog']:,} ({share:.0%}) on "
        f"{c['anime_not_in_catalog']:,} anime not in the catalog (ignored by later stages)"
    )
