"""The typer application every command registers on: the bottom of the CLI.

Each command module imports ``app`` from here and decorates its commands with it;
``anirec.cli`` imports the command modules (which registers them) and runs the app in ``main``.
So every import inside the CLI runs downward: anirec.cli -> commands -> app.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="anirec",
    help="Anime recommendations from MyAnimeList data: collaborative filtering (EASE) where anime have ratings, "
    "sentence embedders fine-tuned on what users liked (or TF-IDF) where they do not, and a hybrid of both.\n\n"
    "Pipeline: build -> pairs -> finetune -> evaluate -> fit -> recommend / serve (embed/export/distill for the text models).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
