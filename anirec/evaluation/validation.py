"""The validation split: parameters are chosen on ratings that no scored target ever touches.

A method's parameters (EASE's lambda, cEASE's alpha, a mixing rule) chosen by their scores on
the evaluation's own targets would be tuned to those users. Instead, ``validation = true`` (or
`anirec tune`) first removes every rating that some protocol scores or holds out:

* the holdout protocol's held-out ratings,
* the mixed protocol's held-out ratings,
* every rating of a cold anime (the cold-start and mixed targets),

so what is left is exactly what *every* protocol may fit on. The same protocols are then built
again *inside* those ratings, with a seed of their own: a new random 20% held out, a new set of
cold anime drawn among the remaining rated ones. The real protocols' cold anime are no
candidates there (:func:`without_outer_cold`): without a rating left they would pose as new
anime that no user can ever have liked. Users are the same people, but no rating the
real evaluation scores, and no rating of its cold anime, is ever seen by a validation run: the
test in tests/test_validation.py checks that against the protocols' own tasks.

Inside the split no row is protected: a fine-tuned model may have learnt from a validation
target (its pairs came from the pairs split's train rows), so a fine-tuned feature's
validation score is optimistic; models are compared on the real evaluation, where they are
protected.

The validation data is smaller than what a protocol fits on (about 55% against 80% of the
ratings): a parameter whose best value depends on the amount of data (lambda grows with the
counts) is reported with that in mind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..errors import AnirecError
from .protocols import holdout_mask
from .seeds import STREAM_VALIDATION, seeded_rng


@dataclass
class ValidationSplit:
    opinions: pd.DataFrame  # the rows every protocol may fit on (columns as the input's)
    seed: int  # the seed the inner protocols are drawn with
    info: dict
    outer_cold: np.ndarray  # the real protocols' cold anime: in the split, rated by nobody


def scored_rows(opinions: pd.DataFrame, cold_items: np.ndarray | None, fraction: float, min_promoted: int,
                seed: int) -> np.ndarray:
    """Per row of ``opinions`` (user_id, item, opinion[, protected]): whether the holdout or the
    mixed protocol holds it out, or it rates a cold anime. The protocols draw their held-out rows
    over the opinions sorted by (user_id, item); the same order is used here."""
    user = opinions["user_id"].to_numpy()
    item = opinions["item"].to_numpy()
    opinion = opinions["opinion"].to_numpy()
    protected = opinions["protected"].to_numpy(bool) if "protected" in opinions else None
    order = np.lexsort((item, user))
    u, o, i = user[order], opinion[order], item[order]
    p = protected[order] if protected is not None else None
    scored = holdout_mask(u, o, fraction, min_promoted, seed, p)
    if cold_items is not None and len(cold_items):
        cold = np.isin(i, cold_items)
        warm = ~cold
        mixed_held = np.zeros(len(u), bool)
        mixed_held[warm] = holdout_mask(u[warm], o[warm], fraction, min_promoted, seed,
                                        p[warm] if p is not None else None)
        scored |= cold | mixed_held
    out = np.empty(len(u), bool)
    out[order] = scored
    return out


def validation_split(opinions: pd.DataFrame, cold_items: np.ndarray | None, cfg) -> ValidationSplit:
    """What every protocol of ``cfg`` (holdout fraction, min_promoted, seed) may fit on, and the
    seed of the protocols built inside it."""
    scored = scored_rows(opinions, cold_items, cfg.holdout_fraction, cfg.min_promoted, cfg.seed)
    # Inside the split nothing is protected: the real protocols' held-out draws use up most rows
    # that are not the pairs split's train rows, so protecting those again would leave few
    # known targets (the 2020 set: 637 holdout targets, and mixed targets 80% new instead of 50%).
    kept = opinions[~scored].drop(columns=["protected"], errors="ignore").reset_index(drop=True)
    if kept.empty or not (kept["opinion"].to_numpy() > 0).any():
        raise AnirecError("validation: no rating is left once every scored rating is removed; pass more ratings.")
    inner_seed = int(seeded_rng(cfg.seed, STREAM_VALIDATION).integers(1 << 31))
    info = {"rows": int(len(kept)), "rows_removed": int(scored.sum()), "of_rows": int(len(opinions)),
            "outer_cold_anime": int(0 if cold_items is None else len(cold_items)), "seed": inner_seed}
    cold = np.unique(np.asarray(cold_items if cold_items is not None else [], np.int64))
    return ValidationSplit(kept, inner_seed, info, cold)


def without_outer_cold(tasks: list, outer_cold: np.ndarray) -> None:
    """Take the real protocols' cold anime out of every validation task's candidates.

    Inside the split they have no rating left, yet they are ordinary rated anime (a random 15%
    of them): left in, they would be "new" anime that can never be a target, a kind of
    candidate the real protocols do not have (there an unrated anime is a cold target or one
    nobody rated at all), and they would make letting new anime into a list look costlier on
    validation than it is."""
    if not len(outer_cold):
        return
    for task in tasks:
        every = np.arange(task.n_items) if task.candidates is None else np.asarray(task.candidates, np.int64)
        task.candidates = np.setdiff1d(every, outer_cold)
        if task.new_items is not None:
            task.new_items = np.setdiff1d(task.new_items, outer_cold)



def validation_config(cfg):
    """The evaluation config of the protocols inside the validation split: the same fractions,
    its own seed, cold anime drawn anew (the outer ones have no rating left), no reference
    protocol (its split's test rows are not held out of the validation data)."""
    protocols = [p for p in cfg.protocols if p != "reference"]
    if not protocols:
        raise AnirecError(f"{cfg.source or 'evaluate'}: validation needs holdout, coldstart or mixed among the protocols.")
    # pairs: the check that no training pair holds a cold anime is the real evaluation's; the
    # validation's own cold anime are outer warm anime, which pairs do contain (see above)
    return replace(cfg, cold_anime=None, split=None, pairs=[], protocols=protocols)
