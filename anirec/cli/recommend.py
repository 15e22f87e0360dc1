"""`anirec recommend` (one path for plain and --recommender: anirec.serving)."""

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
from ..embeddings import format_embed_summary
from ..models import DEFAULT_MODEL
from ..serving import SCORE_COLUMN, Answer, Query, Served, answer, heading, likes_query, payload, user_query
from . import query_options as qo
from .options import CACHE_HELP, CATALOG_HELP, MODEL_HELP, MSL_HELP, backend_option, max_seq_length_option

# The value columns a result frame may carry, in display order, and how each is shown.
_VALUE_COLUMNS = {SCORE_COLUMN: ("recommender score", "{:.4f}".format),
                  "because": ("because you liked", lambda v: as_rich_text(v) if v else "-")}


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
        if r.get("is_new") is True:
            title += " [green]new[/green]"
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
    query_text: Optional[str] = qo.QUERY,
    mal_list: Optional[Path] = qo.MAL_LIST,
    types: Optional[List[str]] = qo.TYPE,
    year_min: Optional[int] = qo.YEAR_MIN,
    year_max: Optional[int] = qo.YEAR_MAX,
    seasons: Optional[List[str]] = qo.SEASON,
    genres: Optional[List[str]] = qo.GENRE,
    exclude_genres: Optional[List[str]] = qo.EXCLUDE_GENRE,
    min_score: Optional[float] = qo.MIN_SCORE,
    new_only: bool = qo.NEW_ONLY,
    adult: bool = qo.ADULT,
    one_per_franchise: bool = qo.ONE_PER_FRANCHISE,
    liked_franchises: bool = qo.LIKED_FRANCHISES,
    no_unstarted_sequels: bool = qo.NO_UNSTARTED_SEQUELS,
    unfiltered: bool = qo.UNFILTERED,
    params: Optional[List[str]] = typer.Option(None, "--param", help="A parameter of the text method, KEY=VALUE as in `anirec fit --param` (e.g. tfidf_weight=0.5, n_neighbors=20); not with --recommender."),
    max_seq_length: Optional[int] = max_seq_length_option(MSL_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    batch_size: int = typer.Option(32, "--batch-size", help="Descriptions per encoder batch (first run only)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts; what `anirec serve` answers to POST /recommend) instead of a table."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the encoding progress bar."),
    backend: str = backend_option(),
) -> None:
    """Recommend anime like some titles / MAL_IDs, for a new user's liked titles or MAL list, for a
    user from their ratings, or for a free-text description, under filters (type, years, genres,
    MAL score, age rating, franchises): with the text method fitted here on --catalog (--model),
    or with any method fitted by `anirec fit` (--recommender). Both answer through the same path."""
    start = time.perf_counter()
    titles, ids, likes = list(titles or []), list(ids or []), list(likes or [])
    if k < 1:
        raise typer.BadParameter(f"{k}: must be at least 1", param_hint="-k")
    _check_query_options(bool(titles or ids), user, ratings, likes, mal_list is not None, query_text is not None)
    filters = qo.filters_from_options(types, year_min, year_max, seasons, genres, exclude_genres, min_score, new_only,
                                      adult, one_per_franchise, liked_franchises, no_unstarted_sequels, unfiltered)
    mal_text, mal_name = qo.read_mal_list_text(mal_list)
    if recommender is not None:
        unused = [opt for opt, given in (("--param", bool(params)), ("--max-seq-length", max_seq_length is not None),
                                         ("--backend", backend != "torch")) if given]
        if unused:
            raise AnirecError(f"{unused[0]} does not apply with --recommender (the folder fixes how it recommends).")
        served, about = _served_folder(recommender, catalog, model)
    else:
        served, about = _served_text(catalog or Path("catalog.parquet"), model or DEFAULT_MODEL, params, max_seq_length,
                                     backend, cache_dir, batch_size, progress)
    # The query (titles, ids, the user's ratings, the MAL list) is checked before the recommender is needed.
    extra: dict = {}
    if user is not None:
        query = user_query(load_ratings(ratings), user, served.ids, k, filters=filters, text=query_text)
    elif titles or ids:
        query = Query(titles=tuple(titles), mal_ids=tuple(ids), k=k, filters=filters, text=query_text)
    else:  # a new user: what `POST /recommend` takes
        query, extra = likes_query(served, likes, (), mal_text, query_text, k, filters, mal_name)
    result = answer(served, query)
    result.extra.update(extra)
    info = (lambda msg: print(msg, file=sys.stderr)) if as_json else typer.echo
    _say_matches(result.matches, info)
    _show(served, result, about, user, ratings, k, as_json, info, start)


def _check_query_options(title_query: bool, user, ratings, likes, mal_list: bool, text: bool) -> None:
    """One kind of query per call, with what it needs; a MAL list goes with --likes, a free text with any."""
    asked = [name for name, given in (("titles/--id", title_query), ("--user", user is not None),
                                      ("--likes/--mal-list", bool(likes) or mal_list)) if given]
    if len(asked) > 1:
        raise AnirecError(f"give one of titles/--id, --user or --likes/--mal-list, not {' and '.join(asked)}.")
    if not asked and not text:
        raise AnirecError('give a title, --id MAL_ID, --likes "TITLE", --mal-list FILE, --query TEXT or --user ID --ratings FILE.')
    if user is not None and not ratings:
        raise AnirecError("--user needs --ratings FILE.")
    if user is None and ratings:
        raise AnirecError("--ratings is only used with --user ID.")


def _served_folder(folder: Path, catalog, model) -> tuple[Served, dict]:
    from ..fitted import load_fitted

    from ..service import about

    fitted = load_fitted(folder, read_catalog(catalog) if catalog is not None else None, model)
    return Served(fitted.catalog, fitted.recommender), about(fitted)


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
    elapsed = time.perf_counter() - start
    frame = result.frame
    if as_json:
        out = payload(served, result, about)
        if user is not None:
            out["query"] = {"user": int(user), "ratings": ratings_label(ratings), **out["query"]}
        if about["recommender"] is None:
            out.update(_embedding_fields(rec))
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
        info(f"done in {elapsed:.2f} s")
        return
    title = heading(served, result, user)
    where = about["recommender"] or "fitted on the catalog"
    explained = result.call != "similar_items" and frame["because"].astype(bool).any()  # "Like X": always X
    _print_table(frame if explained else frame.drop(columns=["because"]), f"{title}  [{about['method']}: {where}]")
    for note in payload(served, result, about)["notes"]:
        typer.echo(f"note: {note}.")
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
