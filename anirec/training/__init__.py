"""Fine-tuning a sentence embedder on anime pair labels (METHOD.md section 4), in parts:

``config`` (every parameter of a run, from TOML and flags), ``data`` (pairs + catalog -> the
training dataset), ``objectives`` (the losses and the validation evaluator), ``resume``
(OUT.partial, checkpoints, --resume), ``run`` (``finetune``: the Trainer, start to saved
model) and ``card`` (the model card and the summary of a finished run).
"""

from .card import format_summary
from .config import FinetuneConfig, load_config
from .data import PairTexts, attach_texts, make_datasets, negative_for_each, read_pairs
from .objectives import LOSSES, OBJECTIVES, make_evaluator, make_loss
from .resume import partial_dir
from .run import FinetuneResult, finetune

__all__ = [
    "FinetuneConfig", "FinetuneResult", "LOSSES", "OBJECTIVES", "PairTexts", "attach_texts", "finetune",
    "format_summary", "load_config", "make_datasets", "make_evaluator", "make_loss", "negative_for_each",
    "partial_dir", "read_pairs",
]
