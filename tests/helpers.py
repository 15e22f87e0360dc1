"""Small helpers shared by test files."""

from __future__ import annotations

import numpy as np
import pytest


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``anirec ARGS`` in-process; return (exit code, stdout, stderr)."""
    from anirec.cli import main

    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def expect_user_error(capsys, *args: str) -> str:
    """Run the CLI expecting exit 2 with a one-line message and no traceback; return stderr."""
    code, out, err = run_cli(capsys, *args)
    assert code == 2, f"exit {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in err
    return err


__all__ = ["run_cli", "expect_user_error", "pytest"]


def cli_exit_code(args) -> int:
    """Run the CLI like a shell would (output left to capsys/capfd); return its exit code."""
    from anirec.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code or 0
    return 0


def write_tiny_mal(folder, n_anime: int = 8, n_users: int = 80, seed: int = 0):
    """A Kaggle-layout folder (anime.csv, anime_with_synopsis.csv, rating_complete.csv) small enough
    for a whole build -> pairs -> evaluate run in about a second; returns the folder."""
    import numpy as np
    import pandas as pd

    from test_data import make_kaggle

    folder.mkdir(parents=True, exist_ok=True)
    d = make_kaggle(folder, ids=range(1, n_anime + 1))
    rng = np.random.default_rng(seed)
    rows = [(u, a, int(rng.choice([1, 2, 3, 9, 9, 10, 10]))) for u in range(1, n_users + 1)
            for a in range(1, n_anime + 1) if rng.random() < 0.8]
    pd.DataFrame(rows, columns=["user_id", "anime_id", "rating"]).to_csv(d / "rating_complete.csv", index=False)
    return d


# `anirec pairs` options that label every pair of the tiny data (its ratings are random).
TINY_PAIRS_OPTIONS = ("--min-support", "0", "--quantile", "0", "--positive", "0.0", "--negative", "0.0")


def row_of(catalog, name: str) -> int:
    """The catalog row of the anime named exactly ``name``."""
    return int(np.flatnonzero(catalog["Name"].to_numpy() == name)[0])
