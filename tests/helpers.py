"""Small helpers shared by test files."""

from __future__ import annotations

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
