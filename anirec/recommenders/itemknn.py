"""Item-kNN collaborative filtering: two anime are near when the same users promote (or pan)
both; users are served by the reference pooling over those neighbours."""

from __future__ import annotations

from dataclasses import dataclass

from ..baselines import itemknn_vectors
from ..errors import AnirecError
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
        self.item_rows = itemknn_vectors(interactions)
        self.n_items = self.item_rows.shape[0]
        return self
