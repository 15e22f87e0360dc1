"""The ``anirec`` command line: a thin typer layer over the Python API, one file per stage.

``app.py`` holds the typer app; each command module imports it and adds its commands; this
package imports the command modules (which registers them, in the order ``anirec --help``
lists them) and defines ``main``, the console entry point (``anirec.cli:main``): a user error
(AnirecError) becomes one line on stderr and exit 2, Ctrl-C exit 130. Every import inside the
CLI runs downward: this package -> command modules -> app.
"""

from __future__ import annotations

import os
import sys

from ..errors import AnirecError
from . import build, export, recommend, pairs, finetune, evaluate, fit, distill  # noqa: F401  (registers the commands)
from .app import app


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
