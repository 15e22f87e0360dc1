"""One exception type for every problem a user can fix: bad files, arguments, missing models.

The CLI turns it into a single line on stderr and exit code 2, never a traceback.
"""


class AnirecError(Exception):
    """A user-facing error. The message names the file/row/argument and says what to do."""

    exit_code = 2


def warn(message: str) -> None:
    """Print a warning to stderr (kept here so every module warns the same way)."""
    import sys

    print(f"anirec: warning: {message}", file=sys.stderr)
