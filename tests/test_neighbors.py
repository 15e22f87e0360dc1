"""anirec.neighbors: the one top-k (its tie rule, on both its paths), neighbour tables, links, and
the reference user pooling served through them, against hand-made and brute-force answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from anirec import neighbors
from anirec.neighbors import block_neighbors, link_matrix, neighbor_table, top_k
from anirec.recommenders import make


def brute_top_k(scores, k):
    """The rule by hand: finite scores only, sorted by (-score, column), -1/-inf padding."""
    idx, val = [], []
    for row in np.asarray(scores, np.float64):
        cols = sorted((c for c in range(len(row)) if np.isfinite(row[c])), key=lambda c: (-row[c], c))[:k]
        idx.append(cols + [-1] * (k - len(cols)))
        val.append([row[c] for c in cols] + [-np.inf] * (k - len(cols)))
    return np.array(idx), np.array(val, np.float32)


def test_top_k_ties_go_to_the_lower_column():
    s = np.array([[1, 3, 3, -np.inf, 3], [-np.inf, -np.inf, 2, -np.inf, -np.inf]], np.float32)
    idx, val = top_k(s, 3)
    assert idx.tolist() == [[1, 2, 4], [2, -1, -1]]
    assert val[1, 1] == -np.inf
    idx, val = top_k(np.array([[0.1, 0.9, 0.5, 0.7]], np.float32), 3)
    assert idx.tolist() == [[1, 3, 2]] and np.allclose(val, [[0.9, 0.7, 0.5]])
    # more wanted than columns: padded; nothing finite: all padding
    assert top_k(np.array([[2.0, 1.0]], np.float32), 4)[0].tolist() == [[0, 1, -1, -1]]
    assert top_k(np.full((1, 3), -np.inf, np.float32), 2)[0].tolist() == [[-1, -1]]


def test_top_k_never_picks_nan_or_inf():
    s = np.array([[np.nan, 1.0, np.inf, 2.0, -np.inf]], np.float32)
    idx, val = top_k(s, 4)
    assert idx.tolist() == [[3, 1, -1, -1]] and val[0, :2].tolist() == [2.0, 1.0]


@pytest.mark.parametrize("levels", [3, 50, 10_000])  # many ties .. almost none
def test_top_k_torch_path_equals_the_exact_rule(levels, monkeypatch):
    """The torch path (blocks of >= TORCH_MIN_CELLS) and the numpy rule give the same answer,
    ties across the k-th place, -inf, NaN and +inf included."""
    rng = np.random.default_rng(levels)
    s = rng.integers(0, levels, size=(300, 400)).astype(np.float32)
    s[rng.random(s.shape) < 0.3] = -np.inf
    s[5, :] = -np.inf  # a row with nothing to offer
    s[6, :395] = -np.inf  # a row with fewer than k
    s[7, 3], s[8, 10] = np.nan, np.inf
    exact = top_k(s, 12)  # 120k cells: the numpy rule
    monkeypatch.setattr(neighbors, "TORCH_MIN_CELLS", 1)
    fast = top_k(s, 12)
    np.testing.assert_array_equal(fast[0], exact[0])
    np.testing.assert_array_equal(fast[1], exact[1])
    want_idx, want_val = brute_top_k(s[:40], 12)
    np.testing.assert_array_equal(exact[0][:40], want_idx)
    np.testing.assert_array_equal(exact[1][:40], want_val)


def test_top_k_leaves_its_input_alone():
    s = np.random.default_rng(0).random((4, 9)).astype(np.float32)
    before = s.copy()
    top_k(s, 3)
    np.testing.assert_array_equal(s, before)


def test_neighbor_table_excludes_self_and_keeps_to_candidates():
    v = np.eye(4, dtype=np.float32) + 0.1
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    idx, val = neighbor_table(v, 2)
    assert not (idx == np.arange(4)[:, None]).any() and idx.shape == (4, 2)
    idx, _ = neighbor_table(v, 3, candidates=np.array([0, 2]))
    assert idx[0].tolist() == [2, -1, -1] and idx[2].tolist() == [0, -1, -1]  # only candidates, never itself
    assert sorted(idx[1, :2]) == [0, 2] and idx[1, 2] == -1 and sorted(idx[3, :2]) == [0, 2]


def test_block_loop_is_independent_of_the_block_size():
    x = sp.random(50, 30, density=0.2, random_state=1, dtype=np.float32, format="csr")
    sims = (x @ x.T).toarray()

    def scores(rows):
        return sims[rows].copy()

    whole = block_neighbors(scores, 50, 5, np.arange(50), block=64)
    small = block_neighbors(scores, 50, 5, np.arange(50), block=7)
    np.testing.assert_array_equal(whole[0], small[0])
    assert not (whole[0] == np.arange(50)[:, None]).any()


def test_link_matrix_places_weights_and_skips_padding():
    idx = np.array([[1, 2], [0, -1], [-1, -1]])
    m = link_matrix(idx, np.array([[0.5, 0.0], [0.25, 9.0], [7.0, 7.0]], np.float32), 3)
    assert m.toarray().tolist() == [[0, 0.5, 0], [0.25, 0, 0], [0, 0, 0]] and m.nnz == 2  # zero weight not stored
    m = link_matrix(idx, 1.0, 3, col_of=np.array([2, 0, 1]))  # columns renumbered (e.g. among candidates)
    assert m.toarray().tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 0]]


# --------------------------------------------------------------------------- pooling through the text method


def pooled(table_idx, table_val):
    """The text method serving a given neighbour table (its saved state)."""
    n, width = table_idx.shape
    arrays = {"rows": np.eye(n, dtype=np.float32), "neighbors_idx": table_idx, "neighbors_val": table_val}
    return make("text", {"n_neighbors": width}).restore(arrays, None)


def test_pooling_hand_made_case():
    # items 0..5; neighbour table (2 each) and similarities chosen by hand
    idx = np.array([[2, 3], [2, 4], [0, 1], [0, 5], [1, 5], [3, 4]])
    val = np.array([[0.9, 0.8], [0.7, 0.6], [0.9, 0.7], [0.8, 0.5], [0.6, 0.4], [0.5, 0.4]], np.float32)
    # user 0 promoted items 0 and 1; user 1 promoted item 5 and has already rated item 3
    promoted = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]]))
    exclude = sp.csr_matrix(np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0]]))
    recs, scores = pooled(idx, val).recommend(promoted, 3, exclude=exclude)
    votes = np.floor(scores)
    # user 0: item 2 pulled in by both (2 votes); then 3 (sim 0.8) before 4 (sim 0.6), one vote each
    assert recs[0].tolist() == [2, 3, 4] and votes[0].tolist() == [2, 1, 1]
    # user 1: neighbours of 5 are 3 (already rated, excluded) and 4; nothing else: padded with -1
    assert recs[1].tolist() == [4, -1, -1] and votes[1, 0] == 1 and np.isneginf(scores[1, 1:]).all()
    # the fractional part is the mean similarity, (mean + 1) / 4
    np.testing.assert_allclose((scores[0] - votes[0]) * 4 - 1, [(0.9 + 0.7) / 2, 0.8, 0.6], rtol=1e-5)


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
    text = make("text", {"n_neighbors": 5}).restore({"rows": v}, None)
    idx, val = text.neighbor_table()
    np.testing.assert_array_equal(idx, neighbor_table(v, 5)[0])
    promoted = (rng.random((n_users, n_items)) < 0.15).astype(np.float32)
    exclude = (rng.random((n_users, n_items)) < 0.2).astype(np.float32)
    recs, _ = text.recommend(sp.csr_matrix(promoted), k=6, exclude=sp.csr_matrix(exclude), batch_size=7)
    assert np.array_equal(recs, _brute_force(promoted, idx, val, 6, exclude))
