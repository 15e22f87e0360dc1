"""Options several commands share, defined once (help text and validation)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..backends import BACKEND_HELP, require_backend
from ..config import Seed, Tokens, coerce
from ..models import DEFAULT_MODEL


def plain(text: str) -> str:
    """Help text shown as written: typer renders help as rich markup, which would eat
    ``[method]``, ``[[methods]]`` or a default like ``[cosine]`` as style tags."""
    return text.replace("[", r"\[")


def _backend(value: str | None) -> str | None:
    # Checked while parsing: an unknown name or a missing extra fails before any slow work.
    return None if value is None else require_backend(value)


def backend_option(default: str | None = "torch", help_suffix: str = ""):
    """``--backend torch|onnx|onnx-int8|openvino`` for any command that loads a model
    (``default=None``: "not given", for commands where a config file may set it)."""
    return typer.Option(default, "--backend", help=BACKEND_HELP + help_suffix, callback=_backend)


def seed_option(default: int | None = 42, help: str = "Seed."):
    """``--seed N``, refused while parsing unless 0 <= N <= 2^32-1 (what numpy, pandas and torch
    all accept): a bad seed must not fail halfway through a run, leaving half its output."""
    return typer.Option(default, "--seed", help=help, callback=lambda v: None if v is None else coerce(v, Seed, "--seed"))


def max_seq_length_option(help: str):
    """``--max-seq-length N``: tokens per description; 0 or absent = the model's own setting
    (the one meaning :data:`anirec.config.Tokens` gives it everywhere)."""
    return typer.Option(None, "--max-seq-length", help=help + " 0 or absent: the model's own setting.",
                        callback=lambda v: coerce(v, Tokens, "--max-seq-length"))


# Help texts of options several commands share (embed, recommend, export).
MODEL_HELP = "Embedder: a name (looked up in ~/.cache/anirec/models, then the hub) or a sentence-transformers folder."
CATALOG_HELP = "Catalog parquet written by `anirec build`."
MSL_HELP = "Truncate descriptions to this many tokens."
CACHE_HELP = "Embedding cache folder (default: $ANIREC_CACHE, else ~/.cache/anirec/embeddings)."


# The options every command that encodes the catalog (embed, export) shares, declared once.
def model_option():
    return typer.Option(DEFAULT_MODEL, "--model", help=MODEL_HELP)


def catalog_option():
    return typer.Option(Path("catalog.parquet"), "--catalog", help=CATALOG_HELP)


def cache_dir_option():
    return typer.Option(None, "--cache-dir", help=CACHE_HELP)


def batch_size_option(help: str = "Descriptions per encoder batch."):
    return typer.Option(32, "--batch-size", help=help)


def progress_option():
    return typer.Option(True, "--progress/--no-progress", help="Show the encoding progress bar.")
