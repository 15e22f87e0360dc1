"""`anirec embed` and `anirec recommend`."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from . import app
from ..data import load_ratings, read_catalog
from ..errors import AnirecError
from ..embeddings import format_embed_summary, load_or_embed
from ..models import DEFAULT_MODEL
from ..recommend import Recommender, TitleIndex, user_ratings

MODEL_HELP = "Embedder: a name (looked up in ~/.cache/anirec/models, then the hub) or a sentence-transformers folder."
CATALOG_HELP = "Catalog parquet written by `anirec build`."
MSL_HELP = "Truncate descriptions to this many tokens (default: the model's own setting)."
CACHE_HELP = "Embedding cache folder (default: $ANIREC_CACHE, else ~/.cache/anirec/embeddings)."


@app.command()
def embed(
    model: str = typer.Option(DEFAULT_MODEL, "--model", help=MODEL_HELP),
    catalog: Path = typer.Option(Path("catalog.parquet"), "--catalog", help=CATALOG_HELP),
    max_seq_length: Optional[int] = typer.Option(None, "--max-seq-length", help=MSL_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    batch_size: int = typer.Option(32, "--batch-size", help="Descriptions per encoder batch."),
    force: bool = typer.Option(False, "--force", help="Encode again even when the cache has these vectors."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the encoding progress bar."),
) -> None:
    """Encode every catalog description (normalised float32) into the on-disk cache, or find it there."""
    cat = read_catalog(catalog)
    emb = load_or_embed(cat, model, max_seq_length, cache_dir, batch_size, progress, force=force)
    typer.echo(format_embed_summary(emb))


def _print_table(frame, heading: str, user_mode: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=heading, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("MAL_ID", justify="right")
    table.add_column("title")
    table.add_column("type")
    table.add_column("premiered")
    table.add_column("score", justify="right")
    if user_mode or "votes" in frame:
        table.add_column("votes", justify="right")
    table.add_column("similarity", justify="right")
    for r in frame.itertuples(index=False):  # k rows at most: display only
        title = r.title if r.english_title in ("Unknown", r.title) else f"{r.title} [dim]({r.english_title})[/dim]"
        cells = [str(r.rank), str(r.MAL_ID), title, str(r.type), str(r.premiered),
                 "-" if r.score != r.score else f"{r.score:.2f}"]
        if user_mode or "votes" in frame:
            cells.append(str(r.votes))
        cells.append(f"{r.similarity:.3f}")
        table.add_row(*cells)
    # Piped output (no terminal width to honour) gets room for "Name (English name)" titles.
    Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 130).print(table)


@app.command()
def recommend(
    titles: Optional[List[str]] = typer.Argument(None, help="One or more titles (Name or English name; typos are matched fuzzily). Several are pooled."),
    ids: Optional[List[int]] = typer.Option(None, "--id", help="MAL_ID of an anime to start from (repeatable)."),
    user: Optional[int] = typer.Option(None, "--user", help="Recommend for this user_id from --ratings (reference pooling over their 9-10 ratings)."),
    ratings: Optional[str] = typer.Option(None, "--ratings", help="Ratings for --user: rating_complete.csv, a parquet file, a folder or an HF id."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help=MODEL_HELP),
    catalog: Path = typer.Option(Path("catalog.parquet"), "--catalog", help=CATALOG_HELP),
    k: int = typer.Option(10, "-k", "--top", help="How many recommendations."),
    pool: str = typer.Option("mean", "--pool", help="Several titles: 'mean' (cosine to their mean vector) or 'votes' (reference vote pooling)."),
    exclude_franchise: bool = typer.Option(False, "--exclude-franchise", help="Leave out titles sharing the query's base name (sequels, movies, spin-offs)."),
    max_seq_length: Optional[int] = typer.Option(None, "--max-seq-length", help=MSL_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    batch_size: int = typer.Option(32, "--batch-size", help="Descriptions per encoder batch (first run only)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts) instead of a table."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the encoding progress bar."),
) -> None:
    """Recommend anime like some titles / MAL_IDs, or for a user from their ratings."""
    start = time.perf_counter()
    titles, ids = list(titles or []), list(ids or [])
    if user is None and ratings:
        raise typer.BadParameter("--ratings is only used with --user ID", param_hint="--ratings")
    if user is not None and not ratings:
        raise typer.BadParameter("--user needs --ratings FILE", param_hint="--ratings")
    if user is not None and (titles or ids):
        raise typer.BadParameter("give titles/--id or --user, not both", param_hint="--user")
    if user is None and not (titles or ids):
        raise typer.BadParameter("give a title, --id MAL_ID or --user ID --ratings FILE", param_hint="TITLES")
    if k < 1:
        raise typer.BadParameter(f"{k}: must be at least 1", param_hint="-k")
    if pool not in ("mean", "votes"):
        raise typer.BadParameter(f"{pool!r}: use 'mean' or 'votes'", param_hint="--pool")

    # Everything that can fail cheaply (titles, ids, the user) is checked before any encoding.
    cat = read_catalog(catalog)
    info = (lambda msg: print(msg, file=sys.stderr)) if as_json else typer.echo
    if user is not None:
        mine = user_ratings(load_ratings(ratings), user, cat["MAL_ID"].to_numpy())
    else:
        index = TitleIndex(cat)
        matches = [index.match(t) for t in titles]
        for m in matches:
            if m.how == "fuzzy":
                info(f"matched '{m.query}' -> '{m.title}' (fuzzy, {m.score:.0f}/100)")
            elif m.how == "case":
                info(f"matched '{m.query}' -> '{m.title}'")
        unknown = sorted(set(ids) - set(cat["MAL_ID"].tolist()))
        if unknown:
            raise AnirecError(f"--id {unknown[0]}: no anime with that MAL_ID in {catalog} ({len(cat):,} anime).")
        queries = [int(cat["MAL_ID"].iat[m.row]) for m in matches] + ids

    rec = Recommender.from_catalog(cat, model, max_seq_length, cache_dir, batch_size, progress)
    info(format_embed_summary(rec.embeddings))
    if user is not None:
        frame = rec.for_user(mine, k)
        heading = f"For user {user} ({frame.attrs['promoted']} promoted anime pooled, already-rated excluded)"
        query = {"user": user, "ratings": ratings, "promoted": frame.attrs["promoted"]}
    else:
        frame = rec.similar(queries, k, pool=pool, exclude_franchise=exclude_franchise)
        names = [str(rec.catalog["Name"].iat[m.row]) for m in frame.attrs["matches"]]
        heading = "Because you liked " + ", ".join(names)
        query = {"titles": names, "mal_ids": [int(q) for q in queries], "pool": pool, "exclude_franchise": exclude_franchise}

    elapsed = time.perf_counter() - start
    if as_json:
        payload = {"query": query, "model": rec.embeddings.model, "k": k, "cache_hit": rec.embeddings.cache_hit,
                   "embed_seconds": round(rec.embeddings.seconds, 3), "seconds": round(elapsed, 3),
                   "recommendations": json.loads(frame.to_json(orient="records", double_precision=6))}
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    _print_table(frame, heading, user is not None)
    if len(frame) < k:
        typer.echo(f"only {len(frame)} candidate(s) found (fewer than -k {k}).")
    typer.echo(f"done in {elapsed:.2f} s")
