"""`anirec fit`: fit a registered recommender and save it as a folder `recommend --recommender` serves."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import app
from .options import backend_option, max_seq_length_option, plain, seed_option
from ..fitting import fit_to_folder, format_fit_summary, method_spec
from ..recommenders import DEFAULT_METHOD, REGISTRY


@app.command()
def fit(
    method: Optional[str] = typer.Option(None, "--method", help=f"Recommender: {', '.join(REGISTRY)} (default: {DEFAULT_METHOD}, or the config's)."),
    params: Optional[List[str]] = typer.Option(None, "--param", help="A method parameter as key=value (repeatable), e.g. lam=200."),
    ratings: List[str] = typer.Option(..., "--ratings", help="Ratings to fit on: rating_complete.csv, parquet, a folder or an HF id (repeatable: sets are stacked)."),
    catalog: Path = typer.Option(Path("catalog.parquet"), "--catalog", help="Catalog parquet written by `anirec build`."),
    model: Optional[str] = typer.Option(None, "--model", help="Text model of text/hybrid (sets the `model` parameter): tfidf, a name or a folder."),
    max_seq_length: Optional[int] = max_seq_length_option("Text/hybrid: truncate descriptions to this many tokens."),
    out: Path = typer.Option(..., "--out", help="Folder to write (replaced atomically)."),
    config: Optional[Path] = typer.Option(None, "--config", help=plain('TOML file with a [method] table: method = "hybrid" and parameters, as in an eval config\'s [[methods]]; the command line wins.')),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Embedding cache folder (default: $ANIREC_CACHE, else ~/.cache/anirec/embeddings)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Descriptions per encoder batch (text models)."),
    seed: Optional[int] = seed_option(None, plain("The seed parameter of methods that draw at random (random): 0..2^32-1 [42]; wins over the config's.")),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the encoding progress bar."),
    backend: Optional[str] = backend_option(None, " Text/hybrid with a sentence-transformers model (sets the `backend` parameter)."),
) -> None:
    """Fit a recommender on ratings + a catalog and save it (method, parameters, arrays, manifest with hashes)."""
    spec = method_spec(method, params, config, model, max_seq_length, backend, seed)
    result = fit_to_folder(spec, ratings, catalog, out, config_file=config, cache_dir=cache_dir, batch_size=batch_size,
                           progress=progress)
    typer.echo(format_fit_summary(result))
