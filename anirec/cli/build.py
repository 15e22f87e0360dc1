"""`anirec build` and `anirec demo`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import app
from .. import build as build_stage, demo as demo_stage
from ..io import check_outputs_not_inputs, check_writable_output


@app.command()
def build(
    data: str = typer.Option(..., "--data", help="Kaggle folder (anime.csv + anime_with_synopsis.csv), a merged CSV/parquet with a 'synopsis' column, or a Hugging Face dataset (hf:OWNER/NAME)."),
    out: Path = typer.Option(Path("catalog.parquet"), "--out", help="Catalog parquet to write (atomically)."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown", help="Leave out a sentence whose field is Unknown/missing instead of writing 'It premiered in Unknown.'"),
    template: str = typer.Option("reference", "--template", help="Description template: reference (the reference's sentences, genres last) or fields-first (type, studio, genres, source, premiere before the synopsis, so truncation cuts the synopsis, not the fields)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Model name or path: also print token-length percentiles and the share that 128/256/384/512 tokens would truncate, for both templates."),
    histogram: Optional[Path] = typer.Option(None, "--histogram", help="With --tokenizer: save a token-length histogram PNG here."),
    ratings: Optional[List[str]] = typer.Option(None, "--ratings", help="Also validate a ratings file (CSV/parquet/folder/HF id; repeatable) and report how many ratings fall outside the catalog."),
) -> None:
    """Build the catalog: one description per anime with a synopsis (reference template unless --template)."""
    if histogram and not tokenizer:
        raise typer.BadParameter("--histogram needs --tokenizer MODEL", param_hint="--histogram")
    if histogram:
        check_writable_output(histogram, "file", "--histogram")
        check_outputs_not_inputs([("--histogram", histogram)], [("--out", out), *build_stage.build_inputs(data, ratings)])
    result = build_stage.build_catalog(data, out, skip_unknown=skip_unknown, ratings=ratings, template=template,
                                       compare_templates=tokenizer is not None)
    typer.echo(build_stage.format_build_summary(result))
    if result.coverage:
        typer.echo(build_stage.format_coverage(result.coverage))
    if tokenizer:
        stats = build_stage.template_token_stats(result.descriptions_by_template, tokenizer, template, histogram)
        typer.echo(build_stage.format_template_token_stats(stats, tokenizer, template))
        if histogram:
            typer.echo(f"histogram: {histogram}")


@app.command()
def demo(
    model: str = typer.Option("all-MiniLM-L6-v2", "--model", help="Embedder name or path."),
    k: int = typer.Option(5, "-k", help="Recommendations per title."),
    out_dir: Path = typer.Option(Path("out/demo"), "--out-dir", help="Where the demo catalog is written."),
) -> None:
    """Build the shipped demo catalog (data/demo), embed it, print recommendations for a few titles,
    then fit the hybrid recommender into OUT_DIR/recommender and answer a new user's --likes."""
    check_writable_output(out_dir, "files-in", "--out-dir")
    demo_stage.run_demo(model=model, k=k, out_dir=out_dir, echo=typer.echo)
