"""The reference pooling (METHOD.md section 5) as a recommender: every liked item pulls in its
``n_neighbors`` nearest items; candidates are ranked by how many liked items pulled them in,
ties by their mean similarity. Item-kNN CF and the text methods differ only in the item rows
whose cosine defines "nearest", so a difference in their results is a difference in what
they know, not in how users are served.

The neighbour table over the whole catalog is the fitted state that costs (17,562 x 768
vectors: seconds): it is built on first use, not in ``fit`` (a title query never needs it),
then kept and saved with the folder, so a query from a fitted folder is a sparse row product.
A table among restricted candidates (the cold-start view) is built per candidate set.
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse as sp

from ..errors import AnirecError
from ..neighbors import link_matrix, neighbor_table, one_blas_thread
from .base import Recommender


def sparse_state(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    m = sp.csr_matrix(m)
    return {f"{prefix}_data": m.data, f"{prefix}_indices": m.indices, f"{prefix}_indptr": m.indptr,
            f"{prefix}_shape": np.asarray(m.shape, np.int64)}


def sparse_restore(prefix: str, arrays: dict) -> sp.csr_matrix:
    shape = tuple(int(x) for x in arrays[f"{prefix}_shape"])
    m = sp.csr_matrix((arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]), shape=shape)
    try:
        m.check_format(full_check=True)  # an index out of range would read outside the arrays, not raise
    except ValueError as exc:
        raise AnirecError(f"{prefix}: not a valid sparse matrix ({exc}).") from None
    return m


def item_rows_state(rows) -> dict[str, np.ndarray]:
    """A method's item rows (dense vectors or sparse rows) as named arrays."""
    return sparse_state("rows", rows) if sp.issparse(rows) else {"rows": np.asarray(rows, np.float32)}


def item_rows_restore(arrays: dict):
    return sparse_restore("rows", arrays) if "rows_indptr" in arrays else np.asarray(arrays["rows"], np.float32)


def pooling_links(idx: np.ndarray, val: np.ndarray, n_cols: int, col_of: np.ndarray | None = None):
    """A neighbour table as the two (items x columns) matrices the pooling multiplies by: links
    (1 per neighbour) and similarities shifted by +2, so that they are > 0 and the product has
    exactly the structure of the votes (a sum of cosines could cancel to an implicit zero)."""
    return link_matrix(idx, 1.0, n_cols, col_of), link_matrix(idx, val + 2.0, n_cols, col_of)


def pooled_scores(liked: sp.csr_matrix, links: sp.csr_matrix, shifted: sp.csr_matrix) -> np.ndarray:
    """(users x columns) votes + (mean similarity + 1) / 4, -inf where nothing pulled an item in.

    Votes are whole numbers and a cosine is in [-1, 1], so the second term (< 1) only breaks
    ties. Computed on the products' stored entries only, then scattered into the block."""
    votes, simsum = liked @ links, liked @ shifted
    if not (np.array_equal(votes.indptr, simsum.indptr) and np.array_equal(votes.indices, simsum.indices)):
        votes, simsum = votes.sorted_indices(), simsum.sorted_indices()  # same structure, other order
    v = votes.data
    mean_sim = simsum.data / v - 2.0
    out = np.full(votes.shape, -np.inf, np.float32)
    rows = np.repeat(np.arange(votes.shape[0], dtype=np.int64), np.diff(votes.indptr))
    out[rows, votes.indices] = v + (mean_sim + 1.0) / 4.0
    return out


class PooledRecommender(Recommender):
    """Base of item-kNN and text: subclasses set ``self.item_rows`` (L2-normalised rows, dense
    or sparse) in ``fit`` and have an ``n_neighbors`` parameter."""

    item_rows = None
    _table: tuple[np.ndarray, np.ndarray] | None = None  # the whole catalog's neighbour table
    _links_memo: tuple | None = None  # (candidates key, (links, shifted)) of the last candidate set

    def _use_rows(self, item_rows) -> None:
        """Set the fitted item rows (and forget the tables of earlier ones)."""
        self.item_rows = item_rows
        self.n_items = item_rows.shape[0]
        self._table, self._links_memo = None, None

    def _width(self, n_candidates: int) -> int:
        """Neighbours per item: n_neighbors, at most the candidates (more would only be -1 padding)."""
        return min(self.params.n_neighbors, n_candidates)

    def neighbor_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(items x n_neighbors) neighbours over the whole catalog (built once, then kept)."""
        if self._table is None:
            self._table = neighbor_table(self.item_rows, self._width(self.n_items))
        return self._table

    def _links(self, candidates: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(items x candidates) links and shifted similarities, memoised per candidate set:
        evaluation serves thousands of users against one candidate set."""
        key = hashlib.sha1(np.ascontiguousarray(candidates).tobytes()).hexdigest()
        if self._links_memo is not None and self._links_memo[0] == key:
            return self._links_memo[1]
        if len(candidates) == self.n_items:  # candidates are sorted unique rows: all of them
            idx, val = self.neighbor_table()
            pos = None
        else:
            idx, val = neighbor_table(self.item_rows, self._width(len(candidates)), candidates)
            pos = np.full(self.n_items, -1, np.int64)
            pos[candidates] = np.arange(len(candidates))
        links = pooling_links(idx, val, len(candidates), pos)
        self._links_memo = (key, links)
        return links

    def scores(self, user_items, candidates):
        links, shifted = self._links(candidates)
        liked = (sp.csr_matrix(user_items) != 0).astype(np.float32)
        return pooled_scores(liked, links, shifted)

    def usable_likes(self, items):
        """An item with an empty row (item-kNN: nobody rated it; TF-IDF: no word) has no neighbours."""
        rows = self.item_rows[np.asarray(items, np.int64)]
        return (np.diff(rows.indptr) > 0) if sp.issparse(rows) else np.abs(rows).sum(axis=1) > 0

    def item_scores(self, items, candidates):
        """Plain cosine to every candidate (not only the n nearest), for title queries."""
        a = self.item_rows[items]
        b = self.item_rows if len(candidates) == self.n_items else self.item_rows[candidates]
        if sp.issparse(a):
            sims = (a @ b.T).toarray()
            return np.where(sims > 0, sims, -np.inf).astype(np.float32)  # nothing shared: not similar
        if len(a) <= 8:  # a title query: a matrix-vector product
            with one_blas_thread():
                return np.asarray(a @ b.T, dtype=np.float32)
        return np.asarray(a @ b.T, dtype=np.float32)

    def state(self):
        idx, val = self.neighbor_table()
        return {**item_rows_state(self.item_rows), "neighbors_idx": idx, "neighbors_val": val}

    def restore(self, arrays, catalog):
        self._use_rows(item_rows_restore(arrays))
        if "neighbors_idx" in arrays:  # folders written before the table was saved rebuild it
            idx = np.asarray(arrays["neighbors_idx"], np.int64)
            val = np.asarray(arrays["neighbors_val"], np.float32)
            want = (self.n_items, self._width(self.n_items))
            if idx.shape != want or val.shape != want:
                raise AnirecError(f"method {self.name!r}: saved neighbour table is {idx.shape}, expected {want} "
                                  "(n_neighbors changed?). Refit with `anirec fit`.")
            self._table = (idx, val)
        return self
