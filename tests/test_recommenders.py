"""The recommender interface: contracts every registered method keeps, and each method by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from anirec.errors import AnirecError
from anirec.item_features import pair_similarity_spread
from anirec.recommenders import REGISTRY, make
from anirec.recommenders.ease import check_ease_memory, ease_weights

N_ITEMS = 40
TOPICS = ["mecha pilots giant robots war", "cooking club school bakes bread", "detective solves murder mystery",
          "idol group sings concert", "samurai sword duel feudal"]


@pytest.fixture(scope="module")
def world():
    """Users who like items of one topic (item % 5), a catalog whose texts share the topic words,
    and 5 items (35-39) nobody rated: new anime."""
    rng = np.random.default_rng(0)
    rows, cols, vals = [], [], []
    for u in range(120):
        topic = u % 5
        liked = rng.choice([i for i in range(35) if i % 5 == topic], 4, replace=False)
        panned = rng.choice([i for i in range(35) if i % 5 != topic], 2, replace=False)
        rows += [u] * 6
        cols += [*liked, *panned]
        vals += [1.0] * 4 + [-1.0] * 2
    fit = sp.csr_matrix((vals, (rows, cols)), shape=(120, N_ITEMS), dtype=np.float32)
    catalog = pd.DataFrame({"MAL_ID": np.arange(100, 100 + N_ITEMS),
                            "description": [f"Show {i}: {TOPICS[i % 5]} episode {i}" for i in range(N_ITEMS)]})
    liked = sp.csr_matrix(([1.0] * 6, ([0, 0, 1, 1, 2, 2], [0, 5, 1, 6, 3, 13])), shape=(3, N_ITEMS), dtype=np.float32)
    seen = sp.csr_matrix(([1.0] * 3, ([0, 1, 2], [2, 7, 4])), shape=(3, N_ITEMS), dtype=np.float32)
    return fit, catalog, liked, seen


def fitted(name, world, **params):
    fit, catalog, _, _ = world
    return make(name, params, seed=1, progress=False).fit(fit, catalog)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_contract_never_seen_only_candidates_batch_equals_single_deterministic(name, world):
    fit, catalog, liked, seen = world
    rec = fitted(name, world)
    recs, scores = rec.recommend(liked, 8, exclude=seen)
    assert recs.shape == (3, 8) and scores.shape == (3, 8)
    for u in range(3):
        got = recs[u][recs[u] >= 0]
        assert len(set(got)) == len(got)  # each item once
        assert not set(got) & set(liked[u].indices) and not set(got) & set(seen[u].indices)
        finite = scores[u][recs[u] >= 0]
        assert (np.diff(finite) <= 1e-6).all()  # best first
    assert (recs >= 0).any()
    cand = np.arange(10, 30)
    rc, _ = rec.recommend(liked, 8, exclude=seen, candidates=cand)
    assert np.isin(rc[rc >= 0], cand).all()
    one_by_one = np.vstack([rec.recommend(liked[u], 8, exclude=seen[u], candidates=cand)[0] for u in range(3)])
    assert np.array_equal(rc, one_by_one)
    small_batches, _ = rec.recommend(liked, 8, exclude=seen, candidates=cand, batch_size=1)
    assert np.array_equal(rc, small_batches)
    again, _ = fitted(name, world).recommend(liked, 8, exclude=seen, candidates=cand)
    assert np.array_equal(rc, again)
    sim, _ = rec.similar_items([0, 3], 5)
    assert sim.shape == (2, 5) and 0 not in sim[0] and 3 not in sim[1]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_contract_state_round_trip(name, world):
    fit, catalog, liked, seen = world
    rec = fitted(name, world)
    state = rec.state()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    back = make(name, rec.params.to_dict()).restore(state, catalog)
    assert np.array_equal(rec.recommend(liked, 6, exclude=seen)[0], back.recommend(liked, 6, exclude=seen)[0])


def test_ease_closed_form_by_hand():
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], np.float32))
    lam = 2.0
    g = x.T.toarray() @ x.toarray() + lam * np.eye(3)
    p = np.linalg.inv(g)
    want = np.eye(3) - p / np.diag(p)[None, :]
    np.testing.assert_allclose(ease_weights(x, lam), want, atol=1e-6)
    assert np.allclose(np.diag(ease_weights(x, lam)), 0)


def test_ease_refuses_what_does_not_fit_before_allocating():
    with pytest.raises(AnirecError, match="GB"):
        check_ease_memory(200_000, limit_gb=1.0)
    check_ease_memory(17_500, limit_gb=8.0)  # the full Kaggle catalog: ~6 GB while fitting


def test_ease_and_itemknn_cannot_recommend_unrated_items(world):
    _, _, liked, seen = world
    for name in ("ease", "itemknn"):
        recs, _ = fitted(name, world).recommend(liked, 5, exclude=seen, candidates=np.arange(35, 40))
        assert (recs == -1).all()


def test_ease_learns_the_topics(world):
    _, _, liked, seen = world
    recs, _ = fitted("ease", world).recommend(liked, 3, exclude=seen)
    # user 0 liked items 0 and 5 (topic 0): its top 3 are topic-0 items
    assert all(i % 5 == 0 for i in recs[0])


def test_hybrid_is_ease_on_rated_anime_and_maps_new_ones_through_text(world):
    _, _, liked, seen = world
    hybrid = fitted("hybrid", world)
    new, rated = np.arange(35, 40), np.arange(35)
    # only new anime: ranked by the CF scores of the rated anime they read like
    h, _ = hybrid.recommend(liked, 3, exclude=seen, candidates=new)
    assert (h >= 0).all() and h[0, 0] == 35 and h[1, 0] == 36  # each user's own topic first
    # only rated anime: exactly EASE's ranking
    e, _ = fitted("ease", world).recommend(liked, 6, exclude=seen, candidates=rated)
    assert np.array_equal(hybrid.recommend(liked, 6, exclude=seen, candidates=rated)[0], e)
    assert (hybrid.cf_share(rated) == 1).all() and (hybrid.cf_share(new) == 0).all()
    # all anime: the new anime of the user's topic competes with the rated ones
    both, _ = hybrid.recommend(liked, 8, exclude=seen)
    assert 35 in both[0]


def test_text_fusion_gives_both_similarities_the_same_say_at_half(world):
    fit, catalog, _, _ = world
    dense = np.random.default_rng(0).standard_normal((N_ITEMS, 8)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    from anirec.item_vectors import tfidf_vectors
    from anirec.recommenders import text as text_mod

    tf = tfidf_vectors(catalog["description"].tolist())
    D, T = dense @ dense.T, (tf @ tf.T).toarray()
    upper = np.triu_indices(N_ITEMS, 1)
    assert D[upper].std() > T[upper].std()  # the dense cosine spreads wider, as on the real catalog
    fused, info = text_mod.fuse_rows(dense, tf, 0.5)
    s = info["tfidf_share"]
    F = (fused @ fused.T).toarray()
    np.testing.assert_allclose(np.diag(F), 1.0, atol=1e-5)  # still unit rows: cosine pooling applies
    np.testing.assert_allclose(F, (1 - s) * D + s * T, atol=1e-5)
    # equal say: each part's contribution to the fused similarity spreads equally over the pairs
    np.testing.assert_allclose(((1 - s) * D)[upper].std(), (s * T)[upper].std(), rtol=1e-3)
    assert s > 0.5  # TF-IDF's narrower cosine gets the larger raw share
    # the ends are one similarity alone
    np.testing.assert_allclose((lambda r: (r @ r.T).toarray())(text_mod.fuse_rows(dense, tf, 0.0)[0]), D, atol=1e-5)
    np.testing.assert_allclose((lambda r: (r @ r.T).toarray())(text_mod.fuse_rows(dense, tf, 1.0)[0]), T, atol=1e-5)
    assert pair_similarity_spread(dense[:1]) == 0.0


@pytest.mark.parametrize("raw,msg", [
    ({"lam": "big"}, "expected a number"),
    ({"lam": -1.0}, "lam must be positive"),
    ({"lamda": 3.0}, "unknown parameter 'lamda'"),
])
def test_bad_parameters_are_one_line_errors(raw, msg):
    with pytest.raises(AnirecError, match=msg):
        make("ease", raw, where="cfg.toml line 3")


def test_unknown_method_names_the_choices():
    with pytest.raises(AnirecError, match="unknown method 'eese'.*ease"):
        make("eese")


def test_random_hash_in_chunks_equals_the_whole_grid():
    """Random's block hash is computed in row chunks, in place: the same bits as the plain formula."""
    from anirec.recommenders.simple import _mix64, _mixed_grid

    rng = np.random.default_rng(3)
    rows = rng.integers(0, 2**63, 150, dtype=np.uint64) * np.uint64(2)  # 150: chunks of 64 + a rest
    cols = rng.integers(0, 2**63, 37, dtype=np.uint64)
    with np.errstate(over="ignore"):
        want = (_mix64(rows[:, None] + cols[None, :]) >> np.uint64(40)).astype(np.float32)
    np.testing.assert_array_equal(_mixed_grid(rows, cols), want)
