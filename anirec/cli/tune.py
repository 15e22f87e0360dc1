"""`anirec tune`: a parameter grid scored on the validation split (never on the real targets)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import app
from .. import evaluation as ev
from ..config import override
from ..evaluation.tune import run_tune
from .options import plain


@app.command()
def tune(
    config: Path = typer.Option(..., "--config", help=plain("Evaluation TOML whose [[methods]] may list values (lam = [50, 100, 200]): every combination is run. See eval/tune.toml.")),
    ratings: Optional[List[str]] = typer.Option(None, "--ratings", help="Ratings to carve the validation split from (overrides the config; repeatable)."),
    cold_anime: Optional[Path] = typer.Option(None, "--cold-anime", help="The real evaluation's cold anime list (their ratings never enter the validation split)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder: the evaluation's files plus grid.md."),
    bootstrap: Optional[int] = typer.Option(None, "--bootstrap", help="Bootstrap resamples (0: off)."),
) -> None:
    """Choose parameters honestly: every combination of a grid, evaluated on a validation split carved out
    of the ratings that no evaluation protocol scores or holds out (grid.md: NDCG@k per protocol)."""
    cfg = ev.load_config(config)
    override(cfg, {"ratings": list(ratings) if ratings else None, "out": str(out) if out else None,
                   "cold_anime": str(cold_anime) if cold_anime else None, "bootstrap": bootstrap})
    run_tune(cfg, echo=typer.echo)
