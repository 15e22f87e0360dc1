"""Item similarity building blocks shared by the recommenders, the pair miner and the metrics.

Text embedders, TF-IDF and item-kNN collaborative filtering all become the same thing: a
table of each item's nearest neighbours (``idx``/``val``, -1 = no neighbour), optionally
among candidate items only. The methods themselves live in :mod:`anirec.recommenders`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .index import neighbors, top_k_rows


# --------------------------------------------------------------------------- neighbour tables


def _candidate_positions(n_items: int, candidates: np.ndarray) -> np.ndarray:
    """For every item, its column among the candidates (-1 if it is not one)."""
    pos = np.full(n_items, -1, np.int64)
    pos[candidates] = np.arange(len(candidates))
    return pos


def _fill_block(sims: np.ndarray, rows: np.ndarray, pos: np.ndarray, cand: np.ndarray, k: int,
                idx: np.ndarray, val: np.ndarray, start: int) -> None:
    """Top-k of one block of similarities (self excluded, -inf = never a neighbour) into idx/val."""
    own = pos[rows]
    mine = np.flatnonzero(own >= 0)
    sims[mine, own[mine]] = -np.inf
    top, top_val = top_k_rows(sims, min(k, sims.shape[1]))
    ok = np.isfinite(top_val)
    width = top.shape[1]
    idx[start:start + len(rows), :width] = np.where(ok, cand[top], -1)
    val[start:start + len(rows), :width] = np.where(ok, top_val, 0.0)


def dense_neighbors(vectors: np.ndarray, k: int, candidates: np.ndarray | None = None,
                    batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour table from L2-normalised dense vectors (cosine), as :func:`anirec.index.neighbors`.

    With ``candidates`` (item indices), neighbours are chosen among those items only: the
    cold-start view uses it to recommend only anime nobody has rated. Rows are always ``k``
    wide, padded with -1.
    """
    n = len(vectors)
    if candidates is None:
        idx, val = neighbors(vectors, k, batch_size)
        if idx.shape[1] < k:  # fewer than k other items: pad to the agreed width
            idx = np.pad(idx, ((0, 0), (0, k - idx.shape[1])), constant_values=-1)
            val = np.pad(val, ((0, 0), (0, k - val.shape[1])))
        return idx, val
    cand = np.asarray(candidates, np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    cand_vectors = vectors[cand]
    pos = _candidate_positions(n, cand)
    idx = np.full((n, k), -1, np.int64)
    val = np.zeros((n, k), np.float32)
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n))
        _fill_block(vectors[rows] @ cand_vectors.T, rows, pos, cand, k, idx, val, start)
    return idx, val


def sparse_neighbors(rows_normalized: sp.csr_matrix, k: int, candidates: np.ndarray | None = None,
                     batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour table from L2-normalised sparse rows (cosine), computed in row blocks.

    Only strictly positive similarities make a neighbour: an item sharing no word (TF-IDF)
    or no rater (item-kNN) with another is not its neighbour, and an item whose row is empty
    (an anime nobody rated) gets no neighbours and is nobody's neighbour.
    """
    x = sp.csr_matrix(rows_normalized, dtype=np.float32)
    n = x.shape[0]
    cand = np.arange(n, dtype=np.int64) if candidates is None else np.asarray(candidates, np.int64)
    cand_t = x[cand].T.tocsc()
    pos = _candidate_positions(n, cand)
    idx = np.full((n, k), -1, np.int64)
    val = np.zeros((n, k), np.float32)
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n))
        sims = (x[rows] @ cand_t).toarray()
        sims[sims <= 0] = -np.inf
        _fill_block(sims, rows, pos, cand, k, idx, val, start)
    return idx, val


def tfidf_vectors(descriptions: list[str]) -> sp.csr_matrix:
    """TF-IDF rows (L2-normalised) of the same descriptions the embedders read."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    # sublinear tf: a word repeated in a long synopsis should not dominate; English stop
    # words and idf take care of the template's fixed sentences ("It was produced by ...").
    vec = TfidfVectorizer(stop_words="english", sublinear_tf=True, dtype=np.float32)
    return vec.fit_transform(descriptions).tocsr()


def itemknn_vectors(fit: sp.csr_matrix) -> sp.csr_matrix:
    """Item rows for item-kNN CF: columns of the (users x items) opinion matrix, L2-normalised.

    ``fit`` holds +1 (promoter) / -1 (detractor) per rating used for fitting; two anime are
    similar when the same users promote (or pan) both. Unrated anime are zero rows.
    """
    from sklearn.preprocessing import normalize

    return normalize(sp.csr_matrix(fit, dtype=np.float32).T.tocsr(), norm="l2", axis=1)


# --------------------------------------------------------------------------- lookups


def lookup(matrix: sp.csr_matrix, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For (rows x m) item indices, whether each (row, item) is stored in ``matrix`` and its value.

    One searchsorted over the sorted (row, col) keys of the matrix: no per-row loop.
    Item -1 (no recommendation) is never found.
    """
    m = sp.csr_matrix(matrix)
    if not m.has_sorted_indices:
        m = m.sorted_indices()
    n_rows, n_cols = m.shape
    keys = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(m.indptr)) * n_cols + m.indices
    items = np.asarray(items, np.int64)
    if len(keys) == 0:
        return np.zeros(items.shape, bool), np.zeros(items.shape, np.float64)
    query = np.arange(len(items), dtype=np.int64)[:, None] * n_cols + np.maximum(items, 0)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    found = (items >= 0) & (keys[pos] == query)
    return found, np.where(found, m.data[pos], 0).astype(np.float64)
