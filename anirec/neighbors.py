"""The one place that ranks: a top-k with one tie rule, the neighbour-table block loop, and the
neighbour table -> sparse links builder.

Every method in anirec is served through :func:`top_k` (the recommenders' serving loop, the
neighbour tables of item-kNN, the text methods, the hybrid's text-to-CF map and the CF pairs):

* **top_k(scores, k)**: per row the ``k`` best columns, best first, ties -> the lower column;
  only finite scores are ever chosen; rows with fewer than ``k`` are padded with -1 / -inf.
  Large blocks (a serving batch is 2,048 users x 17,562 anime) go through ``torch.topk``
  (multithreaded, one pass, no copy) for ``k + 1`` columns: a row whose k-th and (k+1)-th
  values differ has exactly one top-k set, which is then ordered by the rule; the rare row
  with a tie across the k-th place (or a NaN / +inf) is answered by the exact numpy rule,
  so the result never depends on how ``torch.topk`` happens to order ties.
* **neighbor_table(item_rows, k, candidates)**: each item's ``k`` most cosine-similar
  candidates (never itself), from L2-normalised dense vectors or sparse rows, computed in
  row blocks (:func:`block_neighbors`) so that a 17k x 17k similarity matrix never exists.
* **link_matrix(idx, weights, n_cols, col_of)**: a neighbour table as a sparse (items x
  columns) matrix, so pooling many users is one sparse product.

Padding in a neighbour table is the top-k's: idx -1, val -inf.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp

# Blocks at least this large (cells) go through torch.topk: a 2,048 x 17,562 serving block in
# 55 ms where numpy's partition takes 70 ms to 1 s (ties make it slow). Below it numpy costs a
# few tens of ms, and a query or a small catalog never pays torch's import (1-2 s).
TORCH_MIN_CELLS = 1 << 24
# Row blocks of the neighbour-table loop. The dense block size is part of the result: BLAS
# rounds a row's dot products differently in blocks of different shape, so every table of a
# given catalog is computed in the same blocks (what `evaluate` scores is what is served).
DENSE_BLOCK = 2048
SPARSE_BLOCK = 1024


_blas = None


def one_blas_thread():
    """A context with BLAS on one thread. A single query is a matrix-vector product, memory-
    bound: more threads buy nothing and, on a busy machine, waiting for a descheduled one
    costs several times the work (measured: 9.5 vs 36 ms at 17,562 x 768 under load)."""
    global _blas
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional (comes with scikit-learn); without it BLAS runs as configured
        import contextlib

        return contextlib.nullcontext()
    if _blas is None:
        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


# --------------------------------------------------------------------------- top-k


def _exact_top_k(scores: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The rule written out (numpy): (rows x width) columns and values, -1/-inf padded.

    ``np.partition`` finds each row's width-th best finite value; every finite entry at least
    that good is then sorted by (row, -score, column), so ties go to the lower column."""
    n = scores.shape[0]
    idx = np.full((n, width), -1, np.int64)
    val = np.full((n, width), -np.inf, np.float32)
    clean = np.where(np.isfinite(scores), scores, -np.inf)
    kth = -np.partition(-clean, width - 1, axis=1)[:, width - 1]
    rows, cols = np.nonzero((clean >= kth[:, None]) & (clean > -np.inf))
    vals = clean[rows, cols]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    keep = rank < width
    idx[rows[keep], rank[keep]] = cols[keep]
    val[rows[keep], rank[keep]] = vals[keep]
    return idx, val


def _torch_top_sets(scores: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``torch.topk`` candidates: (rows x width) columns and values of each row's top set; the
    rows where a tie crosses the k-th place (the set is not decided by the values alone), and
    the rows holding a NaN or +inf (torch ranks NaN above everything, so it shows in the set)."""
    import torch

    n, m = scores.shape
    take = min(width + 1, m)
    vals, cols = torch.topk(torch.from_numpy(scores), take, dim=1, largest=True, sorted=True)
    vals, cols = vals.numpy(), cols.numpy().astype(np.int64)
    odd = (np.isnan(vals) | (vals == np.inf)).any(axis=1)
    tied = np.zeros(n, bool)
    if take > width:
        kth, nxt = vals[:, width - 1], vals[:, width]
        tied = (kth == nxt) & (kth > -np.inf) & ~odd
    return cols[:, :width], vals[:, :width], np.flatnonzero(tied), np.flatnonzero(odd)


def _settle_ties(scores: np.ndarray, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
    """For ``rows`` whose k-th value (the last of ``vals``) is tied beyond the top set: keep the
    entries above it and fill up with the lowest columns holding it, as the rule says (in place;
    one comparison over those rows, no sort of the whole row)."""
    width = cols.shape[1]
    kth = vals[rows, width - 1]
    above = vals[rows] > kth[:, None]
    need = width - above.sum(axis=1)
    r, c = np.nonzero(scores[rows] == kth[:, None])  # row-major: each row's columns ascending
    rank = np.arange(len(r)) - np.searchsorted(r, r, side="left")
    take = rank < need[r]
    r, c = r[take], c[take]
    slots = np.argwhere(~above)  # each row's tied slots (the end of its sorted set), row-major like (r, c)
    cols_rows, vals_rows = cols[rows], vals[rows]
    cols_rows[slots[:, 0], slots[:, 1]] = c
    vals_rows[slots[:, 0], slots[:, 1]] = scores[rows[r], c]
    cols[rows], vals[rows] = cols_rows, vals_rows


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row the ``k`` best columns, best first, ties -> the lower column; finite scores only.

    Returns (rows x k) int64 columns (-1 where a row has fewer than k finite scores) and their
    float32 values (-inf there). ``scores`` is read, never written."""
    scores = np.asarray(scores)
    n, m = scores.shape
    out_idx = np.full((n, k), -1, np.int64)
    out_val = np.full((n, k), -np.inf, np.float32)
    width = min(k, m)
    if n == 0 or width <= 0:
        return out_idx, out_val
    if (n * m < TORCH_MIN_CELLS or scores.dtype != np.float32 or not scores.flags.c_contiguous
            or not scores.flags.writeable):  # torch.from_numpy shares memory: writable float32 only
        out_idx[:, :width], out_val[:, :width] = _exact_top_k(scores, width)
        return out_idx, out_val
    cols, vals, tied, odd = _torch_top_sets(scores, width)
    if len(tied):
        _settle_ties(scores, tied, cols, vals)
    order = np.lexsort((cols, -vals), axis=-1)  # the set's order by the rule: -score, then column
    cols, vals = np.take_along_axis(cols, order, axis=1), np.take_along_axis(vals, order, axis=1)
    if len(odd):
        cols[odd], vals[odd] = _exact_top_k(scores[odd], width)
    found = vals > -np.inf
    out_idx[:, :width] = np.where(found, cols, -1)
    out_val[:, :width] = vals
    return out_idx, out_val


# --------------------------------------------------------------------------- neighbour tables


def block_neighbors(block_scores: Callable[[np.ndarray], np.ndarray], n_rows: int, k: int,
                    own_columns: np.ndarray | None = None,
                    block: int = SPARSE_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """The loop every neighbour table is built by: ``block_scores(rows)`` gives a writable
    (len(rows) x n_cols) float32 block (-inf = never a neighbour), ``own_columns[r]`` is row
    r's own column (-1: none; it is never its own neighbour), and :func:`top_k` picks.

    Returns (n_rows x k) neighbour columns (-1 = none) and similarities (-inf there)."""
    idx = np.full((n_rows, k), -1, np.int64)
    val = np.full((n_rows, k), -np.inf, np.float32)
    for start in range(0, n_rows, block):
        rows = np.arange(start, min(start + block, n_rows))
        sims = block_scores(rows)
        if own_columns is not None:
            own = own_columns[rows]
            mine = np.flatnonzero(own >= 0)
            sims[mine, own[mine]] = -np.inf
        idx[rows], val[rows] = top_k(sims, k)
    return idx, val


def _column_positions(n_items: int, candidates: np.ndarray) -> np.ndarray:
    """For every item, its column among the candidates (-1 if it is not one)."""
    pos = np.full(n_items, -1, np.int64)
    pos[candidates] = np.arange(len(candidates))
    return pos


def cosine_blocks(item_rows, candidates: np.ndarray) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """``block_scores`` for :func:`block_neighbors`: cosine of item rows to candidate rows
    (both L2-normalised), and the block size to use.

    Dense vectors: every cosine counts. Sparse rows (TF-IDF, CF columns): only a strictly
    positive cosine makes a neighbour; an item sharing no word or no rater with another is
    not its neighbour, and an empty row (an anime nobody rated) has none and is nobody's."""
    if sp.issparse(item_rows):
        x = sp.csr_matrix(item_rows, dtype=np.float32)
        cand_t = x[candidates].T.tocsc()

        def sparse_block(rows):
            sims = (x[rows] @ cand_t).toarray()
            sims[sims <= 0] = -np.inf
            return sims

        return sparse_block, SPARSE_BLOCK
    vectors = np.ascontiguousarray(item_rows, dtype=np.float32)
    cand_vectors = vectors[candidates]
    return (lambda rows: vectors[rows] @ cand_vectors.T), DENSE_BLOCK


def neighbor_table(item_rows, k: int, candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``k`` nearest candidates by cosine (never itself), as item rows.

    ``item_rows``: L2-normalised dense vectors or sparse rows, one per item. ``candidates``
    (item rows; default all): the items neighbours are chosen from, e.g. only anime nobody
    rated for the cold-start view. Rows are always ``k`` wide: idx -1 / val -inf padding."""
    n = item_rows.shape[0]
    cand = np.arange(n, dtype=np.int64) if candidates is None else np.asarray(candidates, np.int64)
    block_scores, block = cosine_blocks(item_rows, cand)
    idx, val = block_neighbors(block_scores, n, k, _column_positions(n, cand), block)
    return np.where(idx >= 0, cand[np.maximum(idx, 0)], -1), val


def link_matrix(idx: np.ndarray, weights, n_cols: int, col_of: np.ndarray | None = None) -> sp.csr_matrix:
    """A neighbour table as a sparse (rows x n_cols) float32 matrix: ``weights`` (one value, or
    one per table cell) at column ``col_of[idx]`` (default ``idx``) of every neighbour
    (idx >= 0); zero weights are not stored. Entries keep the table's order within a row."""
    rows = np.repeat(np.arange(len(idx), dtype=np.int64), idx.shape[1])
    cols = idx.ravel()
    w = np.broadcast_to(np.asarray(weights, np.float32), idx.shape).ravel()
    ok = (cols >= 0) & (w != 0)
    c = cols[ok] if col_of is None else col_of[cols[ok]]
    return sp.csr_matrix((w[ok], (rows[ok], c)), shape=(len(idx), n_cols))
