"""`anirec embed`: encode the catalog's descriptions into the embedding cache."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app
from ..data import read_catalog
from ..embeddings import format_embed_summary, load_or_embed
from ..models import DEFAULT_MODEL
from .options import CACHE_HELP, CATALOG_HELP, MODEL_HELP, MSL_HELP, backend_option, max_seq_length_option


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
