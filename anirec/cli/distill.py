"""`anirec distill`: a static model2vec embedder from any model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app
from ..models import DEFAULT_MODEL
from .recommend import MODEL_HELP


@app.command()
def distill(
    model: str = typer.Option(DEFAULT_MODEL, "--model", help=MODEL_HELP + " Fine-tuned folders work too."),
    out: Path = typer.Option(..., "--out", help="Folder to write the static model to (replaced atomically)."),
    pca_dims: Optional[int] = typer.Option(256, "--pca-dims", help="Reduce the vectors to this many dimensions with PCA (at most the model's own)."),
) -> None:
    """Distill a static model2vec embedder (about 100x faster on a CPU) from any sentence-transformers model."""
    from ..distill import distill_model

    distill_model(model, out, pca_dims, echo=typer.echo)
