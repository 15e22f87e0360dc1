"""Item-kNN collaborative filtering: two anime are near when the same users promote (or pan)
both; users are served by the reference pooling over those neighbours."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import AnirecError
from ..item_vectors import itemknn_vectors
from .base import Params
from .pooled import PooledRecommender


@dataclass
class ItemKNNParams(Params):
    n_neighbors: int = 20  # neighbours each liked anime pulls in

    def check(self, where):
        if self.n_neighbors < 1:
            raise AnirecError(f"{where}: n_neighbors must be at least 1.")


class ItemKNNRecommender(PooledRecommender):
    name = "itemknn"
    Params = ItemKNNParams

    def fit(self, interactions, catalog):
        # columns of the +1/-1 opinion matrix, L2-normalised; anime nobody rated are zero rows
        self._use_rows(itemknn_vectors(interactions))
        return self
