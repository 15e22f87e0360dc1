"""Recommenders to compare the text embedders against, on equal terms.

Text embedders, TF-IDF and item-kNN collaborative filtering all become the same thing: a
table of each item's nearest neighbours (``idx``/``val``, -1 = no neighbour), which
:func:`anirec.index.pool_for_users` turns into recommendations with the reference's user
pooling. Only the similarity differs, so a difference in the results is a difference in
what the method knows, not in how users are served.

Random and most-popular do not pool: they rank items directly, skipping what each user
has already seen. Everything works on user x item sparse matrices in user batches.
"""

from __future__ import annotations

from typing import Callable

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


def promoter_counts(fit: sp.csr_matrix) -> np.ndarray:
    """How many fitting users promoted each item (the most-popular baseline's score)."""
    fit = sp.csr_matrix(fit)
    return np.bincount(fit.indices[fit.data > 0], minlength=fit.shape[1]).astype(np.int64)


# --------------------------------------------------------------------------- direct rankers


def top_k_unseen(score_batch: Callable[[int], np.ndarray], seen: sp.csr_matrix, k: int,
                 candidates: np.ndarray | None = None, batch_size: int = 2048) -> np.ndarray:
    """Top-k items per user by ``score_batch(n_rows) -> (n_rows, n_candidates)`` scores, skipping
    each user's ``seen`` items; (users x k) item indices, -1 where fewer than k are left."""
    seen = sp.csr_matrix(seen)
    n_users, n_items = seen.shape
    cand = np.arange(n_items, dtype=np.int64) if candidates is None else np.asarray(candidates, np.int64)
    seen = seen[:, cand].tocsr()
    out = np.full((n_users, k), -1, np.int64)
    for start in range(0, n_users, batch_size):
        stop = min(start + batch_size, n_users)
        # float32: item ranks up to 2^24 are exact, and a 2048 x 17.5k batch stays ~150 MB
        scores = np.array(score_batch(stop - start), dtype=np.float32, copy=True)
        s = seen[start:stop].tocoo()
        scores[s.row, s.col] = -np.inf
        top, top_val = top_k_rows(scores, min(k, len(cand)))
        out[start:stop, :top.shape[1]] = np.where(np.isfinite(top_val), cand[top], -1)
    return out


def popular_recommend(counts: np.ndarray, seen: sp.csr_matrix, k: int,
                      candidates: np.ndarray | None = None) -> np.ndarray:
    """Most promoted items first (ties: lower item index first, so it is deterministic)."""
    cand = np.arange(len(counts)) if candidates is None else np.asarray(candidates, np.int64)
    order = np.lexsort((cand, -counts[cand]))  # position 0 = most popular candidate
    rank_score = np.empty(len(cand), np.float32)
    rank_score[order] = -np.arange(len(cand), dtype=np.float32)
    return top_k_unseen(lambda n: np.broadcast_to(rank_score, (n, len(cand))), seen, k, candidates)


def random_recommend(n_items: int, seen: sp.csr_matrix, k: int, seed: int,
                     candidates: np.ndarray | None = None) -> np.ndarray:
    """k unseen items per user drawn uniformly at random (seeded: same seed, same lists)."""
    rng = np.random.default_rng(seed)
    n_cand = n_items if candidates is None else len(candidates)
    return top_k_unseen(lambda n: rng.random((n, n_cand), dtype=np.float32), seen, k, candidates)
