"""Neighbour tables and the reference user pooling, against hand-made and brute-force answers."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from anirec.index import neighbors, pool_for_users, top_k_rows


def test_top_k_rows_sorted():
    idx, val = top_k_rows(np.array([[0.1, 0.9, 0.5, 0.7]]), 3)
    assert idx.tolist() == [[1, 3, 2]] and np.allclose(val, [[0.9, 0.7, 0.5]])


def test_neighbors_exclude_self():
    v = np.eye(4, dtype=np.float32) + 0.1
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    idx, _ = neighbors(v, 2, batch_size=3)  # blocks smaller than the catalog
    assert not (idx == np.arange(4)[:, None]).any()


def test_pooling_hand_made_case():
    # items 0..5; neighbour table (2 each) and similarities chosen by hand
    idx = np.array([[2, 3], [2, 4], [0, 1], [0, 5], [1, 5], [3, 4]])
    val = np.array([[0.9, 0.8], [0.7, 0.6], [0.9, 0.7], [0.8, 0.5], [0.6, 0.4], [0.5, 0.4]], np.float32)
    # user 0 promoted items 0 and 1; user 1 promoted item 5 and has already rated item 3
    promoted = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]]))
    exclude = sp.csr_matrix(np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0]]))
    recs, votes = pool_for_users(promoted, idx, val, k=3, exclude=exclude)
    # user 0: item 2 pulled in by both (2 votes); then 3 (sim 0.8) before 4 (sim 0.6), one vote each
    assert recs[0].tolist() == [2, 3, 4] and votes[0].tolist() == [2, 1, 1]
    # user 1: neighbours of 5 are 3 (already rated, excluded) and 4; nothing else: padded with -1
    assert recs[1].tolist() == [4, -1, -1] and votes[1].tolist() == [1, 0, 0]


def _brute_force(promoted, idx, val, k, exclude):
    out = []
    for u in range(promoted.shape[0]):
        liked = set(np.flatnonzero(promoted[u]))
        seen = liked | set(np.flatnonzero(exclude[u]))
        votes, sims = {}, {}
        for item in liked:
            for j, s in zip(idx[item], val[item]):
                votes[j] = votes.get(j, 0) + 1
                sims.setdefault(j, []).append(s)
        cand = [j for j in votes if j not in seen]
        cand.sort(key=lambda j: (-votes[j], -np.mean(sims[j]), j))
        out.append((cand + [-1] * k)[:k])
    return np.array(out)


def test_pooling_matches_brute_force_on_random_data():
    rng = np.random.default_rng(7)
    n_users, n_items = 40, 30
    v = rng.standard_normal((n_items, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    idx, val = neighbors(v, 5)
    promoted = (rng.random((n_users, n_items)) < 0.15).astype(np.float32)
    exclude = (rng.random((n_users, n_items)) < 0.2).astype(np.float32)
    recs, _ = pool_for_users(sp.csr_matrix(promoted), idx, val, k=6, exclude=sp.csr_matrix(exclude), batch_size=7)
    assert np.array_equal(recs, _brute_force(promoted, idx, val, 6, exclude))
