"""Item-item neighbours and the reference's user pooling, vectorised over users.

Every recommender in anirec (text embedders, TF-IDF, item-kNN CF) reduces to a table of the
``k`` nearest neighbours of each catalog item; users are then served by pooling the
neighbours of their promoted items (METHOD.md section 5) with sparse matrix products.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def rows_of_ids(catalog_ids: np.ndarray, ids, sorter: np.ndarray | None = None) -> np.ndarray:
    """Catalog row of each id (MAL_ID), -1 for ids the catalog lacks; ``sorter`` =
    ``argsort(catalog_ids)`` when the caller keeps one for repeated lookups."""
    catalog_ids = np.asarray(catalog_ids, np.int64)
    ids = np.asarray(ids, np.int64)
    if sorter is None:
        sorter = np.argsort(catalog_ids, kind="stable")
    if len(catalog_ids) == 0:
        return np.full(ids.shape, -1, np.int64)
    sorted_ids = catalog_ids[sorter]
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, sorter[pos], -1)


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest entries of each row, sorted descending."""
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.empty((scores.shape[0], 0), np.int64), np.empty((scores.shape[0], 0), scores.dtype)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def neighbors(vectors: np.ndarray, k: int, batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar items of every item (itself excluded).

    ``vectors`` must be L2-normalised (dot product = cosine). Works in row blocks so that a
    17k x 17k similarity matrix never has to exist at once.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    k = min(k, n - 1)
    idx = np.empty((n, k), np.int64)
    val = np.empty((n, k), np.float32)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        sims = vectors[start:stop] @ vectors.T
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # never your own neighbour
        idx[start:stop], val[start:stop] = top_k_rows(sims, k)
    return idx, val


def neighbor_matrix(idx: np.ndarray, val: np.ndarray, n_items: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Sparse (items x items) 0/1 matrix of neighbour links and the matching similarity matrix."""
    rows = np.repeat(np.arange(len(idx)), idx.shape[1])
    cols = idx.ravel()
    ok = cols >= 0
    ones = sp.csr_matrix((np.ones(ok.sum(), np.float32), (rows[ok], cols[ok])), shape=(n_items, n_items))
    sims = sp.csr_matrix((val.ravel()[ok].astype(np.float32), (rows[ok], cols[ok])), shape=(n_items, n_items))
    return ones, sims


def pool_for_users(
    promoted: sp.csr_matrix,
    idx: np.ndarray,
    val: np.ndarray,
    k: int = 10,
    exclude: sp.csr_matrix | None = None,
    batch_size: int = 8192,
) -> tuple[np.ndarray, np.ndarray]:
    """The reference pooling for many users at once.

    ``promoted`` is (users x items), non-zero where the user promoted the item; ``idx``/``val``
    the neighbour table (items x n_neighbours; the reference uses n_neighbours = k). Every
    promoted item "pulls in" its neighbours; candidates are ranked by how many promoted items
    pulled them in, ties broken by mean similarity, then by item index. ``exclude`` (users x
    items, non-zero = already rated) and the promoted items themselves are never recommended.

    Everything stays sparse: a user's candidates are at most (promoted x n_neighbours), far
    fewer than the catalog, so 300k users never need a dense users x items array.

    Returns (users x k) item indices, -1 where a user has fewer than k candidates, and the
    matching vote counts.
    """
    n_users, n_items = promoted.shape
    links, sims = neighbor_matrix(idx, val, n_items)
    # Similarities shifted to be > 0 so that the product has exactly the structure of the vote
    # product (a cosine sum could cancel to an implicit zero).
    shifted = links.copy()
    shifted.data = sims.data + 2.0
    promoted = (promoted != 0).astype(np.float32).tocsr()
    seen = promoted if exclude is None else ((promoted + (exclude != 0).astype(np.float32)) != 0).astype(np.float32)
    seen = seen.tocsr()
    seen.sort_indices()
    out_idx = np.full((n_users, k), -1, np.int64)
    out_votes = np.zeros((n_users, k), np.float32)
    for start in range(0, n_users, batch_size):
        stop = min(start + batch_size, n_users)
        p = promoted[start:stop]
        votes = (p @ links).tocsr()
        simsum = (p @ shifted).tocsr()
        votes.sort_indices()
        simsum.sort_indices()
        rows = np.repeat(np.arange(stop - start, dtype=np.int64), np.diff(votes.indptr))
        cols = votes.indices.astype(np.int64)
        v = votes.data
        mean_sim = simsum.data / v - 2.0
        # votes are integers and cosine is in [-1, 1]: (mean_sim + 1) / 4 < 1 breaks ties only.
        score = v + (mean_sim + 1.0) / 4.0
        # drop what the user has already seen (sorted (row, col) keys: one searchsorted)
        s = seen[start:stop]
        seen_keys = np.repeat(np.arange(stop - start, dtype=np.int64), np.diff(s.indptr)) * n_items + s.indices
        keys = rows * n_items + cols
        if len(seen_keys):
            pos = np.minimum(np.searchsorted(seen_keys, keys), len(seen_keys) - 1)
            keep = seen_keys[pos] != keys
            rows, cols, score, v = rows[keep], cols[keep], score[keep], v[keep]
        order = np.lexsort((cols, -score, rows))
        r = rows[order]
        rank = np.arange(len(r)) - np.searchsorted(r, r, side="left")
        top = rank < k
        out_idx[start + r[top], rank[top]] = cols[order][top]
        out_votes[start + r[top], rank[top]] = v[order][top]
    return out_idx, out_votes
