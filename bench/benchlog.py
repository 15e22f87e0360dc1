"""What the benchmarks here share: offline model loading, and a log that is printed as it goes
and written (atomically) at the end, so the committed file is exactly what the run printed.

Import it before anything from anirec: the environment must be set before sentence-transformers
and tokenizers load. The scripts run as ``python bench/NAME.py``, so this folder is on sys.path.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # load models from ~/.cache/anirec/models, never the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

lines: list[str] = []


def say(msg: str = "") -> None:
    print(msg, flush=True)
    lines.append(msg)


def save(dest: str | Path) -> Path:
    """Write everything said so far to ``dest`` (a temp file, then rename)."""
    from anirec.io import write_text

    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    return write_text("\n".join(lines) + "\n", dest)
