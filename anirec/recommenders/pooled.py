"""The reference pooling (METHOD.md section 5) as a recommender: every liked item pulls in its
``n_neighbors`` nearest items; candidates are ranked by how many liked items pulled them in,
ties by their mean similarity. Item-kNN CF and the text methods differ only in the item rows
whose cosine defines "nearest", so a difference in their results is a difference in what
they know, not in how users are served.
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse as sp

from ..baselines import dense_neighbors, sparse_neighbors
from .base import Recommender


def sparse_state(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    m = sp.csr_matrix(m)
    return {f"{prefix}_data": m.data, f"{prefix}_indices": m.indices, f"{prefix}_indptr": m.indptr,
            f"{prefix}_shape": np.asarray(m.shape, np.int64)}


def sparse_restore(prefix: str, arrays: dict) -> sp.csr_matrix:
    shape = tuple(int(x) for x in arrays[f"{prefix}_shape"])
    return sp.csr_matrix((arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]), shape=shape)


def item_rows_state(rows) -> dict[str, np.ndarray]:
    """A method's item rows (dense vectors or sparse rows) as named arrays."""
    return sparse_state("rows", rows) if sp.issparse(rows) else {"rows": np.asarray(rows, np.float32)}


def item_rows_restore(arrays: dict):
    return sparse_restore("rows", arrays) if "rows_indptr" in arrays else np.asarray(arrays["rows"], np.float32)


class PooledRecommender(Recommender):
    """Base of item-kNN and text: subclasses set ``self.item_rows`` (L2-normalised rows, dense
    or sparse) in ``fit`` and have an ``n_neighbors`` parameter."""

    item_rows = None

    def _table(self, candidates: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(items x candidates) neighbour links (1) and similarities, memoised per candidate set:
        evaluation serves thousands of users against one candidate set."""
        key = hashlib.sha1(np.ascontiguousarray(candidates).tobytes()).hexdigest()
        memo = getattr(self, "_table_memo", None)
        if memo is not None and memo[0] == key:
            return memo[1]
        n = min(self.params.n_neighbors, len(candidates))  # more than exist would only be -1 padding
        if sp.issparse(self.item_rows):
            idx, val = sparse_neighbors(self.item_rows, n, candidates)
        else:
            idx, val = dense_neighbors(self.item_rows, n, candidates)
        pos = np.full(self.n_items, -1, np.int64)
        pos[candidates] = np.arange(len(candidates))
        rows = np.repeat(np.arange(self.n_items), idx.shape[1])
        cols = idx.ravel()
        ok = cols >= 0
        shape = (self.n_items, len(candidates))
        links = sp.csr_matrix((np.ones(ok.sum(), np.float32), (rows[ok], pos[cols[ok]])), shape=shape)
        # similarities shifted to be > 0, so the product has exactly the structure of the votes
        shifted = sp.csr_matrix((val.ravel()[ok].astype(np.float32) + 2.0, (rows[ok], pos[cols[ok]])), shape=shape)
        self._table_memo = (key, (links, shifted))
        return links, shifted

    def scores(self, user_items, candidates):
        links, shifted = self._table(candidates)
        liked = (sp.csr_matrix(user_items) != 0).astype(np.float32)
        votes = (liked @ links).toarray()
        simsum = (liked @ shifted).toarray()
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_sim = simsum / votes - 2.0
        # votes are whole numbers and cosine is in [-1, 1]: (mean_sim + 1) / 4 < 1 only breaks ties
        return np.where(votes > 0, votes + (mean_sim + 1.0) / 4.0, -np.inf).astype(np.float32)

    def item_scores(self, items, candidates):
        """Plain cosine to every candidate (not only the n nearest), for title queries."""
        a = self.item_rows[items]
        b = self.item_rows[candidates]
        if sp.issparse(a):
            sims = (a @ b.T).toarray()
            return np.where(sims > 0, sims, -np.inf).astype(np.float32)  # nothing shared: not similar
        return (a @ b.T).astype(np.float32)

    def state(self):
        return item_rows_state(self.item_rows)

    def restore(self, arrays, catalog):
        self.item_rows = item_rows_restore(arrays)
        self.n_items = self.item_rows.shape[0]
        return self
