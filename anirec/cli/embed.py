"""`anirec embed`: encode the catalog's descriptions into the embedding cache."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app
from ..data import read_catalog
from ..embeddings import format_embed_summary, load_or_embed
from .options import (MSL_HELP, backend_option, batch_size_option, cache_dir_option, catalog_option, max_seq_length_option,
                      model_option, progress_option)


@app.command()
def embed(
    model: str = model_option(),
    catalog: Path = catalog_option(),
    max_seq_length: Optional[int] = max_seq_length_option(MSL_HELP),
    cache_dir: Optional[Path] = cache_dir_option(),
    batch_size: int = batch_size_option(),
    force: bool = typer.Option(False, "--force", help="Encode again even when the cache has these vectors."),
    progress: bool = progress_option(),
    backend: str = backend_option(),
) -> None:
    """Encode every catalog description (normalised float32) into the on-disk cache, or find it there."""
    cat = read_catalog(catalog)
    emb = load_or_embed(cat, model, max_seq_length, cache_dir, batch_size, progress, force=force, backend=backend)
    typer.echo(format_embed_summary(emb))
