"""`anirec embed` and `anirec recommend` (one path for plain and --recommender: anirec.serving)."""

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
from ..serving import SCORE_COLUMN, Answer, Query, Served, answer, heading, user_query
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
_VALUE_COLUMNS = {SCORE_COLUMN: ("recommender score", "{:.4f}".format)}


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
    titles: Optional[List[str]] = typer.Argument(None, help="One or more titles (Name or English name; typos are matched fuzzily). One: the anime most like it; several: a user who liked them all."),
    ids: Optional[List[int]] = typer.Option(None, "--id", help="MAL_ID of an anime to start from (repeatable)."),
    user: Optional[int] = typer.Option(None, "--user", help="Recommend for this user_id from --ratings: their 9-10 ratings are the likes, everything they rated is excluded."),
    ratings: Optional[List[str]] = typer.Option(None, "--ratings", help="Ratings for --user: rating_complete.csv, a parquet file, a folder or an HF id (repeatable)."),
    recommender: Optional[Path] = typer.Option(None, "--recommender", help="A folder written by `anirec fit`: serve its method (default: the text method, fitted here on --catalog)."),
    likes: Optional[List[str]] = typer.Option(None, "--likes", help="A title a new user liked (repeatable); no ratings file needed."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP + f" Default {DEFAULT_MODEL} ('tfidf': TF-IDF); with --recommender: refuse the folder unless it was fitted with this model."),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help=CATALOG_HELP + " Default catalog.parquet; with --recommender: refuse the folder unless it was fitted on this catalog."),
    k: int = typer.Option(10, "-k", "--top", help="How many recommendations."),
    exclude_franchise: bool = typer.Option(False, "--exclude-franchise", help="Leave out titles sharing a liked anime's base name (sequels, movies, spin-offs)."),
    params: Optional[List[str]] = typer.Option(None, "--param", help="A parameter of the text method, KEY=VALUE as in `anirec fit --param` (e.g. tfidf_weight=0.5, n_neighbors=20); not with --recommender."),
    max_seq_length: Optional[int] = max_seq_length_option(MSL_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    batch_size: int = typer.Option(32, "--batch-size", help="Descriptions per encoder batch (first run only)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts) instead of a table."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the encoding progress bar."),
    backend: str = backend_option(),
) -> None:
    """Recommend anime like some titles / MAL_IDs, for a new user's liked titles, or for a user
    from their ratings: with the text method fitted here on --catalog (--model), or with any
    method fitted by `anirec fit` (--recommender). Both answer through the same path."""
    start = time.perf_counter()
    titles, ids, likes = list(titles or []), list(ids or []), list(likes or [])
    if k < 1:
        raise typer.BadParameter(f"{k}: must be at least 1", param_hint="-k")
    _check_query_options(bool(titles or ids), user, ratings, likes)
    if recommender is not None:
        unused = [opt for opt, given in (("--param", bool(params)), ("--max-seq-length", max_seq_length is not None),
                                         ("--backend", backend != "torch")) if given]
        if unused:
            raise AnirecError(f"{unused[0]} does not apply with --recommender (the folder fixes how it recommends).")
        served, about = _served_folder(recommender, catalog, model)
    else:
        served, about = _served_text(catalog or Path("catalog.parquet"), model or DEFAULT_MODEL, params, max_seq_length,
                                     backend, cache_dir, batch_size, progress)
    # The query (titles, ids, the user's ratings) is checked before the recommender is needed.
    if user is not None:
        query = user_query(load_ratings(ratings), user, served.ids, k, exclude_franchise=exclude_franchise)
    else:
        query = Query(titles=tuple(titles or likes), mal_ids=tuple(ids), k=k, exclude_franchise=exclude_franchise,
                      as_user=bool(likes))
    result = answer(served, query)
    info = (lambda msg: print(msg, file=sys.stderr)) if as_json else typer.echo
    _say_matches(result.matches, info)
    _show(served, result, about, user, ratings, k, as_json, info, start)


def _check_query_options(title_query: bool, user, ratings, likes) -> None:
    """One kind of query per call, with what it needs."""
    asked = [name for name, given in (("titles/--id", title_query), ("--user", user is not None), ("--likes", bool(likes))) if given]
    if len(asked) > 1:
        raise AnirecError(f"give one of titles/--id, --user or --likes, not {' and '.join(asked)}.")
    if not asked:
        raise AnirecError('give a title, --id MAL_ID, --likes "TITLE" or --user ID --ratings FILE.')
    if user is not None and not ratings:
        raise AnirecError("--user needs --ratings FILE.")
    if user is None and ratings:
        raise AnirecError("--ratings is only used with --user ID.")


def _served_folder(folder: Path, catalog, model) -> tuple[Served, dict]:
    from ..fitted import load_fitted

    fitted = load_fitted(folder, read_catalog(catalog) if catalog is not None else None, model)
    return Served(fitted.catalog, fitted.recommender), {"method": fitted.method, "recommender": str(folder),
                                                         "model": fitted.model}


def _served_text(catalog: Path, model: str, params, max_seq_length, backend, cache_dir, batch_size,
                 progress) -> tuple[Served, dict]:
    """The text method on ``catalog``, fitted when first needed (from cached vectors: fast)."""
    from ..fitting import fit_on_catalog, method_spec
    from ..recommenders import make

    spec = method_spec("text", params, model=model, max_seq_length=max_seq_length, backend=backend)
    text = make(spec.method, spec.params, where="--param", cache_dir=cache_dir, batch_size=batch_size, progress=progress)
    cat = read_catalog(catalog)
    return Served(cat, fit=lambda: fit_on_catalog(text, cat)), {"method": "text", "recommender": None, "model": model}


def _show(served: Served, result: Answer, about: dict, user, ratings, k: int, as_json: bool, info, start: float) -> None:
    """Print the answer: a table (with how the vectors were found) or --json."""
    rec = served.recommender
    emb = getattr(rec, "embeddings", None)  # the text method's vectors, when it made them here
    if about["recommender"] is None and emb is not None:
        info(format_embed_summary(emb))
    asked = dict(result.asked)
    if user is not None:
        asked = {"user": int(user), "ratings": ratings_label(ratings), **asked}
    elapsed = time.perf_counter() - start
    frame = result.frame
    if as_json:
        payload = {"query": asked, **about, "k": k, "seconds": round(elapsed, 3)}
        if about["recommender"] is None:
            payload.update(_embedding_fields(rec))
        payload["recommendations"] = json.loads(frame.to_json(orient="records", double_precision=6))
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    title = heading(served, result, user)
    where = about["recommender"] or "fitted on the catalog"
    _print_table(frame, f"{title}  [{about['method']}: {where}]")
    if len(frame) < k:
        typer.echo(f"only {len(frame)} recommendation(s) found (fewer than -k {k}).")
    typer.echo(f"done in {elapsed:.2f} s")


def _embedding_fields(rec) -> dict:
    """What --json says about the text method's vectors (plain `recommend` only)."""
    emb = rec.describe().get("embedding") or {}
    return {"model": emb.get("resolved", rec.params.model), "backend": emb.get("backend", rec.params.backend),
            "cache_hit": emb.get("cache_hit"), "embed_seconds": emb.get("embed_seconds")}


def _say_matches(matches, info) -> None:
    """Tell the user when a title was matched loosely, so a wrong guess is visible."""
    for m in matches:
        if m.how == "fuzzy":
            info(f"matched '{m.query}' -> '{clean_text(m.title)}' (fuzzy, {m.score:.0f}/100)")
        elif m.how == "case":
            info(f"matched '{m.query}' -> '{clean_text(m.title)}'")
