"""Options several commands share, defined once (help text and validation)."""

from __future__ import annotations

import typer

from ..models import BACKEND_HELP, require_backend


def _backend(value: str | None) -> str | None:
    # Checked while parsing: an unknown name or a missing extra fails before any slow work.
    return None if value is None else require_backend(value)


def backend_option(default: str | None = "torch", help_suffix: str = ""):
    """``--backend torch|onnx|onnx-int8|openvino`` for any command that loads a model
    (``default=None``: "not given", for commands where a config file may set it)."""
    return typer.Option(default, "--backend", help=BACKEND_HELP + help_suffix, callback=_backend)
