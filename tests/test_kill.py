"""Kill test: SIGKILL a command at random moments, and the moment it starts writing each of its
outputs, again and again; afterwards every target is absent or complete (or, for files that
belong together, refused by their readers), and the next run succeeds and leaves no temp file.

Each command is a real subprocess (``python -m anirec``) on the tiny Kaggle-layout data. Killed
runs use other settings than the complete run before them, so a kill between two writes leaves
a new file beside an old one. Add a command with one more entry in TARGETS.
ANIREC_KILLS=20 kills more often.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from helpers import TINY_PAIRS_OPTIONS, write_tiny_mal

ROOT = Path(__file__).resolve().parent.parent
KILLS = int(os.environ.get("ANIREC_KILLS", "4"))  # per command: half at random moments, half at the write


def check_catalog(out: Path) -> str:
    from anirec.data import read_catalog

    path = out / "catalog.parquet"
    if path.exists():
        assert len(read_catalog(path)) == 8
    return "complete"


def check_pairs(out: Path) -> str:
    """Both files complete when present; pairs and split either agree or the readers refuse them."""
    from anirec.errors import AnirecError
    from anirec.split import check_pairs_split, load_split
    from anirec.training import read_pairs

    pairs, split = out / "pairs.parquet", out / "pairs.split.parquet"
    if split.exists():
        assert len(load_split(split)[0]) > 0
    if pairs.exists():
        try:
            assert len(read_pairs(pairs)) > 0  # read_pairs also checks the tie to the split
        except AnirecError as exc:
            assert "made from another split" in str(exc)
            with pytest.raises(AnirecError):
                check_pairs_split(pairs)
            return "refused"
    return "complete"


def check_fitted(out: Path) -> str:
    from anirec.fitted import load_fitted

    if (out / "recommender").exists():
        load_fitted(out / "recommender")  # verifies every file against the manifest
    return "complete"


@dataclass
class Target:
    name: str
    outputs: list[str]  # file names in the order the command writes them
    args: Callable[[Path, Path, bool], list]  # (data folder, output folder, other settings?) -> CLI arguments
    check: Callable[[Path], str]  # "complete" / "refused" for the folder's outputs (raises otherwise)


TARGETS = [
    Target("build", ["catalog.parquet"],
           lambda mal, out, other: ["build", "--data", mal, "--out", out / "catalog.parquet",
                                    *(["--skip-unknown"] if other else [])], check_catalog),
    Target("pairs", ["pairs.split.parquet", "pairs.parquet"],
           lambda mal, out, other: ["pairs", "--ratings", mal, "--catalog", mal.parent / "catalog.parquet",
                                    "--out", out / "pairs.parquet", "--test-size", "0.3" if other else "0.1",
                                    *TINY_PAIRS_OPTIONS], check_pairs),
    Target("fit", ["recommender"],
           lambda mal, out, other: ["fit", "--method", "random" if other else "popular", "--ratings", mal,
                                    "--catalog", mal.parent / "catalog.parquet", "--out", out / "recommender"], check_fitted),
]


def spawn(args: list, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log, "wb") as f:  # a file, not a pipe: a chatty child must never block on a full pipe
        return subprocess.Popen([sys.executable, "-m", "anirec", *map(str, args)], env=env,
                                stdout=subprocess.DEVNULL, stderr=f)


def writing(folder: Path, prefix: str = ".") -> bool:
    """Whether a temp file (named ``.OUTPUT.PID.RANDOM.tmp`` by anirec.io) starting with ``prefix`` is in ``folder``."""
    return any(n.startswith(prefix) and n.endswith(".tmp") for n in os.listdir(folder))


def kill_during(proc: subprocess.Popen, folder: Path, after: float | str) -> int:
    """SIGKILL ``proc`` ``after`` seconds in, or as soon as its temp file shows it writing output ``after``
    (its own: a temp left by an earlier kill must not trigger this one)."""
    start = time.monotonic()
    while proc.poll() is None:
        if (writing(folder, f".{after}.{proc.pid}.") if isinstance(after, str) else time.monotonic() - start >= after):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    return proc.wait()  # 0 when the run finished before the moment came


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from anirec.build import build_catalog

    root = tmp_path_factory.mktemp("kill")
    mal = write_tiny_mal(root / "mal")
    build_catalog(mal, mal.parent / "catalog.parquet")
    return mal


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_killed_runs_leave_targets_absent_or_complete(target, data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    rng = random.Random(f"anirec-kill-{target.name}")
    log = tmp_path / "stderr.txt"

    started = time.monotonic()
    assert spawn(target.args(data, out, False), log).wait() == 0, log.read_text()
    full_run = time.monotonic() - started
    assert target.check(out) == "complete"

    on_disk = False  # the settings of the last run that finished
    for i in range(KILLS):
        # Every other kill hits each output's write in turn; the others land anywhere in the run.
        moment = target.outputs[(i // 2) % len(target.outputs)] if i % 2 == 0 else rng.uniform(0.2, 1.0) * full_run
        before = {name: (out / name).stat().st_mtime_ns for name in target.outputs if (out / name).exists()}
        kill_during(spawn(target.args(data, out, not on_disk), log), out, moment)
        outcome = target.check(out)
        replaced = {name for name in target.outputs if (out / name).exists()
                    and (out / name).stat().st_mtime_ns != before.get(name)}
        if target.outputs[-1] in replaced:  # the run got through its last write (the kill came late, or never)
            on_disk = not on_disk
        elif isinstance(moment, str) and moment != target.outputs[0]:
            # Killed writing a later file after an earlier one was replaced with other settings:
            # the files no longer belong together, and their readers must say so.
            assert outcome == "refused", f"killed while writing {moment}: mismatch not noticed"

    assert spawn(target.args(data, out, not on_disk), log).wait() == 0, log.read_text()
    assert target.check(out) == "complete"
    assert not writing(out), f"temp files left after a successful run: {os.listdir(out)}"
