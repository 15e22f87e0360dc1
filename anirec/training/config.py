"""Every parameter of a fine-tuning run (``FinetuneConfig``) and where it comes from.

A run is set by a TOML file (flat keys, the field names below; see finetune/*.toml) with the
CLI flags on top (``load_config``), both read and type-checked by the project's one typed loader
(``anirec.config``: unknown keys, wrong types, NaN/inf and out-of-range seeds are one line).
``validate`` checks what the types cannot (ranges, combinations) before any data or model is
loaded. ``identity`` is what must match for ``--resume`` to continue a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Seed, Tokens, from_table, override, read_toml
from ..errors import AnirecError
from .objectives import LOSSES

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
# What must match for --resume to continue a run (the rest, e.g. eval/save cadence, may change).
IDENTITY_KEYS = (
    "base", "max_seq_length", "epochs", "batch_size", "lr", "warmup_ratio", "loss", "seed",
    "max_steps", "max_train_pairs", "max_eval_pairs", "precision", "mini_batch_size", "hard_negatives",
)


@dataclass
class FinetuneConfig:
    """Every parameter of a fine-tuning run; a TOML file (flat keys, these names) or CLI flags set them."""

    base: str | None = None  # model name or path (resolved by anirec.models)
    catalog: str | None = None  # catalog parquet from `anirec build`
    pairs: str | None = None  # pairs parquet from `anirec pairs`
    out: str | None = None  # output folder
    max_seq_length: Tokens = None  # None (or 0): the base model's own setting
    epochs: float = 1
    batch_size: int = 16
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    loss: str = "cosine"
    mini_batch_size: int = 32  # cmnrl: texts per forward pass (memory), not the batch the loss sees
    hard_negatives: bool = True  # in-batch losses: add each anchor's negative pair (label < 0) as a third column
    seed: Seed = 42
    eval_steps: float | None = None  # evaluate every N steps (<1: a share of the run); None: before/after only
    save_steps: float = 0.1  # checkpoint every N steps (<1: a share of the run, 0.1 = ten checkpoints)
    save_total_limit: int = 2  # checkpoints kept on disk while training
    max_steps: int | None = None  # stop after N optimizer steps (a budget; overrides epochs)
    max_train_pairs: int | None = None  # seeded random sample of the training pairs (a budget)
    max_eval_pairs: int | None = None  # seeded random sample of the validation pairs (a budget)
    precision: str = "auto"  # auto: bf16/fp16 mixed precision on CUDA, fp32 on CPU
    resume: bool = False  # continue the unfinished run in OUT.partial from its last checkpoint
    overwrite: bool = False  # replace a finished OUT / discard an unfinished OUT.partial
    keep_checkpoints: bool = False  # move the checkpoints into OUT/checkpoints when done (else deleted)
    show_progress: bool = True

    def validate(self) -> None:
        for name in ("base", "catalog", "pairs", "out"):
            if not getattr(self, name):
                raise AnirecError(f"finetune: '{name}' is not set: pass --{name} or put {name} = \"...\" in the --config file.")
        if self.loss not in LOSSES:
            raise AnirecError(f"finetune: loss '{self.loss}' is unknown: use one of {', '.join(LOSSES)}.")
        if self.precision not in PRECISIONS:
            raise AnirecError(f"finetune: precision '{self.precision}' is unknown: use one of {', '.join(PRECISIONS)}.")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "save_steps": self.save_steps,
                    "save_total_limit": self.save_total_limit, "mini_batch_size": self.mini_batch_size}
        for opt in ("max_steps", "max_train_pairs", "max_eval_pairs", "eval_steps", "max_seq_length"):
            if getattr(self, opt) is not None:
                positive[opt] = getattr(self, opt)
        for name, value in positive.items():
            if not value > 0:
                raise AnirecError(f"finetune: {name} = {value}: must be above 0.")
        for name in ("save_steps", "eval_steps"):
            value = getattr(self, name)
            if value is not None and value >= 1:
                if value != int(value):
                    raise AnirecError(f"finetune: {name} = {value}: a whole number of steps, or a share of the run below 1.")
                setattr(self, name, int(value))
        if not 0 <= self.warmup_ratio < 1:
            raise AnirecError(f"finetune: warmup_ratio = {self.warmup_ratio}: must be in [0, 1) (0.1 = 10% warm-up).")
        if self.resume and self.overwrite:
            raise AnirecError("finetune: --resume and --overwrite contradict each other: pick one.")

    def identity(self) -> dict:
        return {k: getattr(self, k) for k in IDENTITY_KEYS}


def load_config(path: str | Path | None = None, **overrides) -> FinetuneConfig:
    """A config from a TOML file (optional) with ``overrides`` (the CLI flags; None = not given)
    on top, every key and value checked by :mod:`anirec.config` before any work."""
    cfg = FinetuneConfig()
    if path is not None:
        doc = read_toml(path, missing="see finetune/*.toml for examples")
        from_table(FinetuneConfig, doc.table, doc.locator(), base=cfg)
    return override(cfg, overrides)
