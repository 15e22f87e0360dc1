"""The ``anirec`` command line: a thin typer layer over the Python API, one file per stage."""

from __future__ import annotations

import os
import sys

import typer

from ..errors import AnirecError

app = typer.Typer(
    name="anirec",
    help="Anime recommendations from sentence embedders fine-tuned on what MyAnimeList users liked.\n\n"
    "Pipeline: build -> pairs -> finetune -> embed/recommend/export -> evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    # Hugging Face's tokenizers fork warning is noise for a CLI; keep it quiet.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app(args=argv, prog_name="anirec")
    except AnirecError as exc:
        print(f"anirec: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("anirec: interrupted", file=sys.stderr)
        sys.exit(130)


# Register the subcommands (each module adds its commands to ``app``).
from . import build  # noqa: E402,F401
from . import export, recommend  # noqa: E402,F401
from . import pairs  # noqa: E402,F401
from . import finetune  # noqa: E402,F401
from . import evaluate  # noqa: E402,F401
from . import fit  # noqa: E402,F401
