"""Why an anime was recommended: the liked anime that contributed most to it.

For each recommended item the method's own :meth:`~anirec.recommenders.base.Recommender.contributions`
(EASE: ``B[liked, item]``, how much liking one anime lifts the other; a text or item-kNN
method: the cosine of the two) picks the liked anime with the largest positive contribution.
An item no liked anime lifts (every contribution <= 0 or unknown), or a method whose scores do
not come from the likes (popularity, random), gets no explanation: an honest empty
``because`` rather than a made-up one.
"""

from __future__ import annotations

import numpy as np


def because(recommender, liked: np.ndarray, items: np.ndarray) -> np.ndarray:
    """For each of ``items`` (catalog rows) the row of the liked anime that contributed most, -1 for none."""
    liked, items = np.asarray(liked, np.int64), np.asarray(items, np.int64)
    out = np.full(len(items), -1, np.int64)
    if not len(liked) or not len(items):
        return out
    contrib = recommender.contributions(liked, items)
    if contrib is None:
        return out
    contrib = np.where(np.isfinite(contrib), np.asarray(contrib, np.float64), -np.inf)
    best = np.argmax(contrib, axis=0)  # ties -> the first liked anime given
    lifted = contrib[best, np.arange(len(items))] > 0
    out[lifted] = liked[best[lifted]]
    return out
