"""`anirec embed` and `anirec recommend`."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from .app import app
from .display import as_rich_text
from ..data import load_ratings, ratings_label, read_catalog
from ..descriptions import clean_text
from ..errors import AnirecError
from ..embeddings import format_embed_summary, load_or_embed
from ..models import DEFAULT_MODEL
from ..recommend import Recommender, TitleIndex, user_ratings
from ..serving import SCORE_COLUMN
from .options import backend_option, max_seq_length_option

MODEL_HELP = "Embedder: a name (looked up in ~/.cache/anirec/models, then the hub) or a sentence-transformers folder."
CATALOG_HELP = "Catalog parquet written by `anirec build`."
MSL_HELP = "Truncate descriptions to this many tokens."
CACHE_HELP = "Embedding cache folder (default: $ANIREC_CACHE, else ~/.cache/anirec/embeddings)."


@app.command()
def embed(
    model: str = typer.Option(DEFAULT_MODEL, "--model", help=MODEL_HELP),
    catalog: Path = typer.Option(Path("catalog.parquet"), "--catalog", help=CATALOG_HELP),
    max_seq_length: Optional[int] = max_seq_length_option(MSL_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    batch_size: int = typer.Option(32, "--batch-size", help="Descriptions per encoder batch."),
    force: bool = typer.Option(False, "--force", help="Encode again even when the cache has these vectors."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the encoding progress bar."),
    backend: str = backend_option(),
) -> None:
    """Encode every catalog description (normalised float32) into the on-disk cache, or find it there."""
    cat = read_catalog(catalog)
    emb = load_or_embed(cat, model, max_seq_length, cache_dir, batch_size, progress, force=force, backend=backend)
    typer.echo(format_embed_summary(emb))


# The value columns a result frame may carry, in display order, and how each is shown.
_VALUE_COLUMNS = {"votes": ("votes", str), "similarity": ("similarity", "{:.3f}".format),
                  SCORE_COLUMN: ("recommender score", "{:.4f}".format)}


def _print_table(frame, heading: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=as_rich_text(heading), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("MAL_ID", justify="right")
    table.add_column("title")
    table.add_column("type")
    table.add_column("premiered")
    table.add_column("score", justify="right")
    values = [c for c in _VALUE_COLUMNS if c in frame]
    for c in values:
        table.add_column(_VALUE_COLUMNS[c][0], justify="right")
    for r in frame.to_dict("records"):  # k rows at most: display only
        title = as_rich_text(r["title"])
        if r["english_title"] not in ("Unknown", r["title"]):
            title += f" [dim]({as_rich_text(r['english_title'])})[/dim]"
        cells = [str(r["rank"]), str(r["MAL_ID"]), title, as_rich_text(r["type"]), as_rich_text(r["premiered"]),
                 "-" if r["score"] != r["score"] else f"{r['score']:.2f}"]
        cells += [_VALUE_COLUMNS[c][1](r[c]) for c in values]
        table.add_row(*cells)
    # Piped output (no terminal width to honour) gets room for "Name (English name)" titles.
    Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 130).print(table)


@app.command()
def recommend(
    titles: Optional[List[str]] = typer.Argument(None, help="One or more titles (Name or English name; typos are matched fuzzily). Several are pooled."),
    ids: Optional[List[int]] = typer.Option(None, "--id", help="MAL_ID of an anime to start from (repeatable)."),
    user: Optional[int] = typer.Option(None, "--user", help="Recommend for this user_id from --ratings (without --recommender: reference pooling over their 9-10 ratings)."),
    ratings: Optional[List[str]] = typer.Option(None, "--ratings", help="Ratings for --user: rating_complete.csv, a parquet file, a folder or an HF id (repeatable)."),
    recommender: Optional[Path] = typer.Option(None, "--recommender", help="A folder written by `anirec fit`: serve its method instead of text embeddings."),
    likes: Optional[List[str]] = typer.Option(None, "--likes", help="With --recommender: a title a new user liked (repeatable); no ratings file needed."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP + f" Default {DEFAULT_MODEL}; with --recommender: refuse the folder unless it was fitted with this model."),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help=CATALOG_HELP + " Default catalog.parquet; with --recommender: refuse the folder unless it was fitted on this catalog."),
    k: int = typer.Option(10, "-k", "--top", help="How many recommendations."),
    pool: str = typer.Option("mean", "--pool", help="Several titles: 'mean' (cosine to their mean vector) or 'votes' (reference vote pooling)."),
    exclude_franchise: bool = typer.Option(False, "--exclude-franchise", help="Leave out titles sharing the query's base name (sequels, movies, spin-offs)."),
    max_seq_length: Optional[int] = max_seq_length_option(MSL_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    batch_size: int = typer.Option(32, "--batch-size", help="Descriptions per encoder batch (first run only)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts) instead of a table."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the encoding progress bar."),
    backend: str = backend_option(),
) -> None:
    """Recommend anime like some titles / MAL_IDs, for a user from their ratings, or (with
    --recommender) for a new user's liked titles."""
    start = time.perf_counter()
    titles, ids, likes = list(titles or []), list(ids or []), list(likes or [])
    if k < 1:
        raise typer.BadParameter(f"{k}: must be at least 1", param_hint="-k")
    if recommender is not None:
        _check_fitted_options(titles or ids, user, ratings, likes, pool, exclude_franchise, max_seq_length, backend)
        _recommend_fitted(recommender, titles, ids, user, ratings, likes, catalog, model, k, as_json, start)
        return
    if likes:
        raise AnirecError("--likes needs --recommender DIR (a folder from `anirec fit`); without it pass the titles themselves.")
    model = model or DEFAULT_MODEL
    catalog = catalog or Path("catalog.parquet")
    if user is None and ratings:
        raise typer.BadParameter("--ratings is only used with --user ID", param_hint="--ratings")
    if user is not None and not ratings:
        raise typer.BadParameter("--user needs --ratings FILE", param_hint="--ratings")
    if user is not None and (titles or ids):
        raise typer.BadParameter("give titles/--id or --user, not both", param_hint="--user")
    if user is None and not (titles or ids):
        raise typer.BadParameter("give a title, --id MAL_ID or --user ID --ratings FILE", param_hint="TITLES")
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
        _say_matches(matches, info)
        unknown = sorted(set(ids) - set(cat["MAL_ID"].tolist()))
        if unknown:
            raise AnirecError(f"--id {unknown[0]}: no anime with that MAL_ID in {catalog} ({len(cat):,} anime).")
        queries = [int(cat["MAL_ID"].iat[m.row]) for m in matches] + ids

    rec = Recommender.from_catalog(cat, model, max_seq_length, cache_dir, batch_size, progress, backend=backend)
    info(format_embed_summary(rec.embeddings))
    if user is not None:
        frame = rec.for_user(mine, k)
        heading = f"For user {user} ({frame.attrs['promoted']} promoted anime pooled, already-rated excluded)"
        query = {"user": user, "ratings": ratings_label(ratings), "promoted": frame.attrs["promoted"]}
    else:
        frame = rec.similar(queries, k, pool=pool, exclude_franchise=exclude_franchise)
        names = [str(rec.catalog["Name"].iat[m.row]) for m in frame.attrs["matches"]]
        heading = "Because you liked " + ", ".join(names)
        query = {"titles": names, "mal_ids": [int(q) for q in queries], "pool": pool, "exclude_franchise": exclude_franchise}

    elapsed = time.perf_counter() - start
    if as_json:
        payload = {"query": query, "model": rec.embeddings.model, "backend": backend, "k": k, "cache_hit": rec.embeddings.cache_hit,
                   "embed_seconds": round(rec.embeddings.seconds, 3), "seconds": round(elapsed, 3),
                   "recommendations": json.loads(frame.to_json(orient="records", double_precision=6))}
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    _print_table(frame, heading)
    if len(frame) < k:
        typer.echo(f"only {len(frame)} candidate(s) found (fewer than -k {k}).")
    typer.echo(f"done in {elapsed:.2f} s")


def _say_matches(matches, info) -> None:
    """Tell the user when a title was matched loosely, so a wrong guess is visible."""
    for m in matches:
        if m.how == "fuzzy":
            info(f"matched '{m.query}' -> '{clean_text(m.title)}' (fuzzy, {m.score:.0f}/100)")
        elif m.how == "case":
            info(f"matched '{m.query}' -> '{clean_text(m.title)}'")


def _check_fitted_options(title_query: bool, user, ratings, likes, pool, exclude_franchise, max_seq_length,
                          backend: str = "torch") -> None:
    """One kind of query per call, and no option that only the text-embedding path reads."""
    asked = [name for name, given in (("titles/--id", title_query), ("--user", user is not None), ("--likes", bool(likes))) if given]
    if len(asked) > 1:
        raise AnirecError(f"give one of titles/--id, --user or --likes, not {' and '.join(asked)}.")
    if not asked:
        raise AnirecError('give a title, --id MAL_ID, --likes "TITLE" or --user ID --ratings FILE.')
    if user is not None and not ratings:
        raise AnirecError("--user needs --ratings FILE.")
    if user is None and ratings:
        raise AnirecError("--ratings is only used with --user ID.")
    unused = [opt for opt, given in (("--pool", pool != "mean"), ("--exclude-franchise", exclude_franchise),
                                     ("--max-seq-length", max_seq_length is not None), ("--backend", backend != "torch")) if given]
    if unused:
        raise AnirecError(f"{unused[0]} does not apply with --recommender (the folder fixes how it recommends).")


def _recommend_fitted(folder: Path, titles, ids, user, ratings, likes, catalog, model, k, as_json, start) -> None:
    from ..fitted import load_fitted
    from ..serving import FittedQueries

    info = (lambda msg: print(msg, file=sys.stderr)) if as_json else typer.echo
    fitted = load_fitted(folder, read_catalog(catalog) if catalog is not None else None, model)
    queries = FittedQueries(fitted)
    if user is not None:
        answer = queries.for_user(load_ratings(ratings), user, k, ratings_label(ratings))
    elif likes:
        answer = queries.for_likes(likes, (), k)
    else:
        answer = queries.similar(titles, ids, k)
    _say_matches(answer.matches, info)
    elapsed = time.perf_counter() - start
    frame = answer.frame
    if as_json:
        payload = {"query": answer.query, "method": fitted.method, "recommender": str(folder), "model": fitted.model,
                   "k": k, "seconds": round(elapsed, 3),
                   "recommendations": json.loads(frame.to_json(orient="records", double_precision=6))}
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    _print_table(frame, f"{answer.heading}  [{fitted.method}: {folder}]")
    if len(frame) < k:
        typer.echo(f"only {len(frame)} recommendation(s) found (fewer than -k {k}).")
    typer.echo(f"done in {elapsed:.2f} s")
