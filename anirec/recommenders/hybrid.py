"""CF where ratings exist, text where they do not: EASE and a text method blended per item.

For each user both parts score every candidate; each part is divided by the user's best
score of that part, so both lie in (-inf, 1]; an item with ``n`` promoters among the fitting
users takes ``n / (n + shrink)`` of its score from CF and the rest from text. An anime no
fitting user rated (a new season) is ranked by its text score alone, so the hybrid
recommends anime that CF cannot; on well-rated anime it is EASE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import AnirecError
from .base import Params, Recommender
from .ease import EASEParams, EASERecommender
from .text import TFIDF, TextParams, TextRecommender


@dataclass
class HybridParams(Params):
    lam: float = 200.0  # EASE's L2 weight
    model: str = TFIDF  # the text part: "tfidf" or a sentence-transformers name/path
    max_seq_length: int = 0
    tfidf_weight: float = 0.0
    backend: str = "torch"
    n_neighbors: int = 20
    shrink: float = 10.0  # promoters at which an anime's score is half CF, half text
    max_memory_gb: float = 0.0

    def check(self, where):
        if self.shrink < 0:
            raise AnirecError(f"{where}: shrink must be 0 or more.")
        self.ease_params().check(where)
        self.text_params().check(where)

    def ease_params(self) -> EASEParams:
        return EASEParams(lam=self.lam, max_memory_gb=self.max_memory_gb)

    def text_params(self) -> TextParams:
        return TextParams(model=self.model, max_seq_length=self.max_seq_length, tfidf_weight=self.tfidf_weight,
                          backend=self.backend, n_neighbors=self.n_neighbors)


def _per_user_scaled(scores: np.ndarray) -> np.ndarray:
    """Each row divided by its best finite score (rows with no positive score: left as 0);
    -inf (cannot recommend) becomes 0, the neutral contribution."""
    finite = np.isfinite(scores)
    best = np.where(finite, scores, -np.inf).max(axis=1, initial=-np.inf)
    scale = np.where(best > 0, best, 1.0)
    return np.where(finite, scores / scale[:, None], 0.0)


class HybridRecommender(Recommender):
    name = "hybrid"
    Params = HybridParams
    uses_text = True

    def _parts(self):
        self.cf = EASERecommender(self.params.ease_params(), **self.context)
        self.text = TextRecommender(self.params.text_params(), **self.context)

    def fit(self, interactions, catalog):
        self._parts()
        x = sp.csr_matrix(interactions)
        self.cf.fit(x, catalog)
        self.text.fit(x, catalog)
        self.support = np.bincount(x.indices[x.data > 0], minlength=x.shape[1]).astype(np.float32)
        self.n_items = int(x.shape[1])
        return self

    def cf_share(self, candidates: np.ndarray) -> np.ndarray:
        n = self.support[candidates]
        return n / (n + self.params.shrink) if self.params.shrink > 0 else (n > 0).astype(np.float32)

    def scores(self, user_items, candidates):
        cf = self.cf.scores(user_items, candidates)
        text = self.text.scores(user_items, candidates)
        w = self.cf_share(candidates)[None, :]
        blended = w * _per_user_scaled(cf) + (1.0 - w) * _per_user_scaled(text)
        # an item neither part can score stays unrecommendable
        return np.where(np.isfinite(cf) | np.isfinite(text), blended, -np.inf).astype(np.float32)

    def describe(self):
        return {**super().describe(), "embedding": getattr(self.text, "embedding", None) if hasattr(self, "text") else None}

    def state(self):
        out = {f"cf.{k}": v for k, v in self.cf.state().items()}
        out.update({f"text.{k}": v for k, v in self.text.state().items()})
        out["support"] = self.support
        return out

    def restore(self, arrays, catalog):
        self._parts()
        self.cf.restore({k[3:]: v for k, v in arrays.items() if k.startswith("cf.")}, catalog)
        self.text.restore({k[5:]: v for k, v in arrays.items() if k.startswith("text.")}, catalog)
        self.support = np.asarray(arrays["support"], np.float32)
        self.n_items = len(self.support)
        return self
