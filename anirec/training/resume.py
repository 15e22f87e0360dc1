"""Where a run lives while it trains, and how ``--resume`` continues it.

For ``out = DIR``:

* ``DIR.partial/`` while training: ``checkpoints/checkpoint-N`` (model, optimizer, scheduler,
  RNG state: what ``--resume`` continues from) and ``run.json`` (the run's identity and the
  score before training, so a resumed run checks it is the same run and skips re-scoring).
* ``DIR/`` appears only when the run has finished, in one rename (``anirec.training.run``).

``prepare_output`` checks OUT / OUT.partial against ``--resume``/``--overwrite`` before any
work and names the checkpoint to resume from: the newest complete one (a checkpoint cut short
by a kill is removed with a warning and the one before it is taken).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict
from pathlib import Path

from ..errors import AnirecError, warn
from ..io import write_text
from .config import FinetuneConfig

_CHECKPOINT = re.compile(r"checkpoint-(\d+)")  # transformers' PREFIX_CHECKPOINT_DIR + "-" + step


def partial_dir(out: str | Path) -> Path:
    out = Path(out).expanduser()
    return out.with_name(out.name + ".partial")


def checkpoint_step(checkpoint: Path) -> int | None:
    """The step a checkpoint holds, or None when it is incomplete: the Trainer writes
    trainer_state.json after the model, optimizer, scheduler and RNG states, so a checkpoint
    without a readable one was cut short (killed while saving)."""
    try:
        step = json.loads((checkpoint / "trainer_state.json").read_text()).get("global_step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def last_checkpoint(folder: Path, drop_incomplete: bool = False) -> Path | None:
    """The newest complete ``checkpoint-N`` in ``folder`` (None: none yet).

    With ``drop_incomplete`` (the main process of a resumed run), transformers'
    ``get_last_checkpoint`` names the newest; while that one is incomplete it is removed with a
    warning, so the Trainer never saves into or rotates it. Without (the other processes, which
    must not touch the folder, and the message after Ctrl-C), incomplete ones are passed over."""
    if not folder.is_dir():
        return None
    if not drop_incomplete:
        complete = [(int(m.group(1)), p) for p in folder.iterdir()
                    if p.is_dir() and (m := _CHECKPOINT.fullmatch(p.name)) and checkpoint_step(p) is not None]
        return max(complete)[1] if complete else None
    from transformers.trainer_utils import get_last_checkpoint

    while (newest := get_last_checkpoint(str(folder))) is not None:
        checkpoint = Path(newest)
        if checkpoint_step(checkpoint) is not None:
            return checkpoint
        warn(f"--resume: {checkpoint} is incomplete (no readable trainer_state.json: the run was stopped while "
             "saving it); removed it and looked for an earlier one.")
        shutil.rmtree(checkpoint, ignore_errors=True)
        if checkpoint.exists():
            raise AnirecError(f"--resume: could not remove the incomplete checkpoint {checkpoint}; remove it, then run again.")
    return None


def prepare_output(cfg: FinetuneConfig, is_main: bool) -> Path | None:
    """Check OUT / OUT.partial against --resume/--overwrite; return the checkpoint to resume from."""
    out, work = Path(cfg.out).expanduser(), partial_dir(cfg.out)
    if cfg.overwrite:
        if is_main:
            shutil.rmtree(work, ignore_errors=True)
        return None
    if out.exists() and not work.exists():
        what = "a finished run" if (out / "scores.json").exists() else "something that is not a finished run"
        raise AnirecError(f"{out} already exists ({what}). Pass --overwrite to train again, or choose another --out.")
    if not work.exists():
        if cfg.resume:
            warn(f"--resume: no unfinished run at {work}; starting from step 0.")
        return None
    if not cfg.resume:
        raise AnirecError(f"{work} holds an unfinished run: pass --resume to continue it, or --overwrite to start over.")
    last = last_checkpoint(work / "checkpoints", drop_incomplete=is_main)
    if last is None:
        warn(f"--resume: {work} has no complete checkpoint yet (stopped before the first save); starting from step 0.")
    return last


def read_run(work: Path) -> dict:
    """What run.json says about the unfinished run in ``work`` ({} if nothing readable)."""
    try:
        return json.loads((work / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def write_run(work: Path, identity: dict, before: dict, before_seconds: float, cfg: FinetuneConfig) -> None:
    work.mkdir(parents=True, exist_ok=True)
    write_text(json.dumps({"identity": identity, "before": before, "before_seconds": before_seconds,
                           "config": asdict(cfg)}, indent=2), work / "run.json")


def check_same_run(saved: dict, current: dict, work: Path) -> None:
    """Refuse to resume a run started with other settings or data."""
    # A key the run was started without (added to anirec since) had its default then.
    defaults = asdict(FinetuneConfig())
    saved = {**{k: defaults[k] for k in current if k not in saved and k in defaults}, **saved}
    diffs = [f"{k}: was {saved.get(k)!r}, now {v!r}" for k, v in current.items() if saved.get(k) != v]
    if diffs:
        raise AnirecError(f"--resume: {work} was started with other settings or data ({'; '.join(diffs)}). "
                          "Use the same settings, or --overwrite to start over.")
