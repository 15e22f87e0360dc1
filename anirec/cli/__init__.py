"""The ``anirec`` command line: a thin typer layer over the Python API, one file per stage.

``app.py`` holds the typer app; each command module imports it and adds its commands; this
package imports the command modules (which registers them, in the order ``anirec --help``
lists them) and defines ``main``, the console entry point (``anirec.cli:main``): a user error
(AnirecError) or a usage error (click's: a missing option, a bad value) becomes one line on
stderr and exit 2, Ctrl-C exit 130. Every import inside the
CLI runs downward: this package -> command modules -> app.
"""

from __future__ import annotations

import os
import sys

import typer

from ..errors import AnirecError
from . import build, embed, recommend, export, pairs, finetune, evaluate, tune, fit, distill, serve  # noqa: F401  (registers the commands)
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


def _usage_line(exc) -> str:
    """A click/typer usage error (missing option, bad value, unknown command) as the one line
    every other error is, pointing at the command's --help."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "anirec"
    return f"{exc.format_message()} See `{command} --help`."


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors, usage errors included, become one line on stderr and
    exit code 2; Ctrl-C exit 130."""
    # Hugging Face's tokenizers fork warning is noise for a CLI; keep it quiet.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        # Not standalone: typer hands usage errors to us instead of drawing its multi-line box.
        code = app(args=argv, prog_name="anirec", standalone_mode=False)
    except AnirecError as exc:
        print(f"anirec: error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # outside typer's reach (e.g. while it builds the command)
        print("anirec: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Abort as exc:
        # An EOFError nobody handled arrives as Abort; it is a bug: show where it happened.
        eof = _root_cause(exc, EOFError)
        if eof is not None:
            raise eof from None
        print("anirec: aborted", file=sys.stderr)
        sys.exit(1)
    except typer.TyperException as exc:  # click's ClickException and its usage errors
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `anirec`: typer printed the overview
            sys.exit(2)
        print(f"anirec: error: {_one_line(_usage_line(exc))}", file=sys.stderr)
        sys.exit(2)
    if code == 130:  # typer turns Ctrl-C inside a command into exit code 130
        print("anirec: interrupted", file=sys.stderr)
    if isinstance(code, int) and code:
        sys.exit(code)

