"""The ``anirec`` command line: a thin typer layer over the Python API, one file per stage."""

from __future__ import annotations

import os
import sys

import typer

from ..errors import AnirecError

app = typer.Typer(
    name="anirec",
    help="Anime recommendations from MyAnimeList data: collaborative filtering (EASE) where anime have ratings, "
    "sentence embedders fine-tuned on what users liked (or TF-IDF) where they do not, and a hybrid of both.\n\n"
    "Pipeline: build -> pairs -> finetune -> evaluate -> fit -> recommend (embed/export/distill for the text models).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _one_line(message: str) -> str:
    # A message built from a library's exception text (pandas' CSV errors end in a newline)
    # must still be the one line the CLI promises.
    return " ".join(str(message).split())


def _root_cause(exc: BaseException, kind: type) -> BaseException | None:
    """The first ``kind`` exception in ``exc``'s chain of causes/contexts, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 2, Ctrl-C exit 130."""
    # Hugging Face's tokenizers fork warning is noise for a CLI; keep it quiet.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app(args=argv, prog_name="anirec")
    except AnirecError as exc:
        print(f"anirec: error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # outside typer's reach (e.g. while it builds the command)
        print("anirec: interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit as exc:
        # Typer turns Ctrl-C in a command into a silent exit 130, and an EOFError nobody handled
        # into "Aborted!" exit 1; both keep the original exception in their chain.
        if exc.code == 130 and _root_cause(exc, KeyboardInterrupt) is not None:
            print("anirec: interrupted", file=sys.stderr)
            raise
        eof = _root_cause(exc, EOFError)
        if eof is not None:
            raise eof from None  # a bug: show where it happened instead of "Aborted!"
        raise


# Register the subcommands (each module adds its commands to ``app``).
from . import build  # noqa: E402,F401
from . import export, recommend  # noqa: E402,F401
from . import pairs  # noqa: E402,F401
from . import finetune  # noqa: E402,F401
from . import evaluate  # noqa: E402,F401
from . import fit  # noqa: E402,F401
from . import distill  # noqa: E402,F401
