"""What fine-tuning optimises and how it is scored: the losses (``--loss``) and the validation evaluator.

The losses are sentence-transformers' own (tested, and aware of DDP gathering, caching and the
guide's tokenizer); none is written here. Each ``--loss`` is one ``Objective`` in
``OBJECTIVES``: its loss class, whether it trains on the positive pairs with in-batch
negatives, and any extra constructor arguments. Adding a loss is one entry.

* ``cosine``: the reference, CosineSimilarityLoss on (description a, description b, label);
  ``cosent``/``angle``: rank-based, usually better on graded labels.
* ``mnrl``, ``cmnrl``, ``gist``: train on the positive pairs with in-batch negatives (each
  anime's CF neighbours should be its nearest texts: the objective that matches
  recommendation), in NO_DUPLICATES batches (one anime twice in a batch would be its own
  negative), on (anchor, positive, negative) triplets when the pairs hold negatives (label < 0).
  ``cmnrl`` is GradCache: a large effective batch in the memory of a small one; ``gist`` masks
  in-batch "negatives" the frozen base model finds more similar than the positive (popular
  anime sit in many pairs, so false negatives are common).

Validation: the Spearman correlation of cosine similarity with the label of the validation
pairs (``make_evaluator``), encoding each distinct description once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from ..models import load_model


def _no_options(cfg, model) -> dict:
    return {}


def _cached_options(cfg, model) -> dict:
    return {"mini_batch_size": cfg.mini_batch_size}  # texts per forward pass: memory, not the batch


def _guided_options(cfg, model) -> dict:
    # The guide is the untuned base model, frozen: it judges which in-batch negatives are
    # really positives, and must not drift with the model it guides.
    guide = load_model(cfg.base, max_seq_length=int(model.max_seq_length), device=str(model.device))
    guide.eval()
    guide.requires_grad_(False)
    return {"guide": guide}


@dataclass(frozen=True)
class Objective:
    """One ``--loss``: a sentence-transformers loss class and what it trains on."""

    loss_class: str  # a class of sentence_transformers.sentence_transformer.losses
    in_batch_negatives: bool = False  # positives (+ a negative) only, NO_DUPLICATES batches
    options: Callable[..., dict] = field(default=_no_options, repr=False)  # (cfg, model) -> extra arguments


OBJECTIVES = {
    "cosine": Objective("CosineSimilarityLoss"),
    "cosent": Objective("CoSENTLoss"),
    "angle": Objective("AnglELoss"),
    "mnrl": Objective("MultipleNegativesRankingLoss", in_batch_negatives=True),
    "cmnrl": Objective("CachedMultipleNegativesRankingLoss", in_batch_negatives=True, options=_cached_options),
    "gist": Objective("GISTEmbedLoss", in_batch_negatives=True, options=_guided_options),
}
LOSSES = {name: objective.loss_class for name, objective in OBJECTIVES.items()}
IN_BATCH_NEGATIVE_LOSSES = tuple(name for name, objective in OBJECTIVES.items() if objective.in_batch_negatives)


def make_loss(cfg, model):
    """The loss object of ``cfg.loss`` for ``model``."""
    from sentence_transformers.sentence_transformer import losses

    objective = OBJECTIVES[cfg.loss]
    return getattr(losses, objective.loss_class)(model, **objective.options(cfg, model))


def make_evaluator(validation: pd.DataFrame, batch_size: int, show_progress: bool = False):
    """An EmbeddingSimilarityEvaluator (Spearman of cosine vs label) that encodes each distinct
    description once: validation pairs share their anime heavily (on the shared MAL data, 5,484
    validation pairs name only 455 anime, so 455 encodes instead of 10,968)."""
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    class PairSimilarityEvaluator(EmbeddingSimilarityEvaluator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            codes, self._unique = pd.factorize(pd.Series([*self.sentences1, *self.sentences2]))
            self._codes = (codes[: len(self.sentences1)], codes[len(self.sentences1):])
            self._vectors = None

        def __call__(self, model, output_path=None, epoch=-1, steps=-1):
            self._vectors = super().embed_inputs(model, list(self._unique))
            try:
                return super().__call__(model, output_path, epoch, steps)
            finally:
                self._vectors = None

        def embed_inputs(self, model, sentences, **kwargs):
            if self._vectors is not None and sentences is self.sentences1:
                return self._vectors[self._codes[0]]
            if self._vectors is not None and sentences is self.sentences2:
                return self._vectors[self._codes[1]]
            return super().embed_inputs(model, sentences, **kwargs)

    return PairSimilarityEvaluator(
        validation["text_a"].tolist(), validation["text_b"].tolist(), validation["label"].astype(float).tolist(),
        batch_size=batch_size, main_similarity="cosine", similarity_fn_names=["cosine"], name="validation",
        show_progress_bar=show_progress,
    )


def validation_scores(metrics: dict) -> dict:
    """The evaluator's two figures, as scores.json keeps them."""
    return {"spearman_cosine": float(metrics["validation_spearman_cosine"]),
            "pearson_cosine": float(metrics["validation_pearson_cosine"])}
