"""`anirec export`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app
from ..data import read_catalog
from ..embeddings import format_embed_summary, load_or_embed
from ..export import FILES, FORMATS, check_export_replaceable, export_embeddings, require_faiss
from ..io import check_outputs_not_inputs
from .options import (MSL_HELP, backend_option, batch_size_option, cache_dir_option, catalog_option, max_seq_length_option,
                      model_option, progress_option)


@app.command()
def export(
    out: Path = typer.Option(..., "--out", help="Folder to write (a new folder, or an earlier export to replace)."),
    fmt: str = typer.Option("npy", "--format", help=f"One of: {', '.join(FORMATS)} (tsv = TensorBoard Embedding Projector files)."),
    model: str = model_option(),
    catalog: Path = catalog_option(),
    max_seq_length: Optional[int] = max_seq_length_option(MSL_HELP),
    cache_dir: Optional[Path] = cache_dir_option(),
    batch_size: int = batch_size_option("Descriptions per encoder batch (if not cached)."),
    progress: bool = progress_option(),
    backend: str = backend_option(),
) -> None:
    """Write the catalog embeddings as npy, parquet, a faiss index or TensorBoard TSV, with manifest.json."""
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}: use one of {', '.join(FORMATS)}", param_hint="--format")
    check_export_replaceable(out)
    check_outputs_not_inputs([("--out", out, "dir")], [("--catalog", catalog), ("--model", model if Path(model).exists() else None)])
    if fmt == "faiss":
        require_faiss()  # before minutes of encoding, not after
    cat = read_catalog(catalog)
    emb = load_or_embed(cat, model, max_seq_length, cache_dir, batch_size, progress, backend=backend)
    typer.echo(format_embed_summary(emb))
    export_embeddings(cat, emb, fmt, out)
    n, d = emb.vectors.shape
    typer.echo(f"exported {n:,} x {d} ({fmt}) to {out}: {', '.join(FILES[fmt])}, manifest.json")
