"""cEASE (EASE with side information) and the item features it reads: the closed form by hand,
new anime recommended and counted as likes, the new-anime quota, the feature blocks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from anirec.errors import AnirecError
from anirec.item_features import FeatureSpec, field_values, item_features, one_hot_rows
from anirec.recommenders import make
from anirec.recommenders.ease import ease_weights
from anirec.recommenders.ease_side import merge_quota, side_weights

N_ITEMS = 40
TOPICS = ["mecha pilots giant robots war", "cooking club school bakes bread", "detective solves murder mystery",
          "idol group sings concert", "samurai sword duel feudal"]


@pytest.fixture(scope="module")
def world():
    """Users who like items of one topic (item % 5); items 35-39 nobody rated (new anime); the
    catalog's texts share their topic's words."""
    rng = np.random.default_rng(0)
    rows, cols = [], []
    for u in range(100):
        liked = rng.choice([i for i in range(35) if i % 5 == u % 5], 4, replace=False)
        rows += [u] * 4
        cols += list(liked)
    fit = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(100, N_ITEMS))
    catalog = pd.DataFrame({"MAL_ID": np.arange(1, N_ITEMS + 1),
                            "description": [f"Show {i}: {TOPICS[i % 5]} story number {i}" for i in range(N_ITEMS)],
                            "Genres": [["Mecha", "Slice of Life", "Mystery", "Music", "Historical"][i % 5] for i in range(N_ITEMS)]})
    return fit, catalog


def liked(*items):
    return sp.csr_matrix((np.ones(len(items), np.float32), (np.zeros(len(items), int), list(items))), shape=(1, N_ITEMS))


def test_closed_form_by_hand_including_an_anime_nobody_rated():
    # 4 users x 4 items; item 3 has no rating at all, only features
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 1, 0]], np.float32))
    f = np.array([[1, 0], [0.6, 0.8], [0, 1], [0.8, 0.6]], np.float32)
    alpha, lam = 2.0, 3.0
    g = x.toarray().T @ x.toarray() + alpha ** 2 * f @ f.T + lam * np.eye(4)
    p = np.linalg.inv(g)
    want = np.eye(4) - p / np.diag(p)[None, :]
    got = side_weights(x, f, alpha, lam)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got.dtype == np.float32 and np.allclose(np.diag(got), 0)
    assert np.abs(got[:, 3]).max() > 0.01 and np.abs(got[3, :]).max() > 0.01  # the unrated anime has weights
    # without features it is EASE
    np.testing.assert_allclose(side_weights(x[:, :3], None, 0.0, lam), ease_weights(x[:, :3], lam), atol=1e-6)


def test_a_new_anime_is_recommendable_and_counts_as_a_like(world):
    fit, catalog = world
    # new anime on the known ones' scale (no shift, no popularity lift): what liking one does, alone
    cease = make("cease", {"alpha": 3.0, "lam": 10.0, "new_shift": 0.0, "new_popularity": 0.0}).fit(fit, catalog)
    new = np.arange(35, 40)
    # users of topics 0 and 1 (liked rated anime): their own topic's new anime comes first
    recs, scores = cease.recommend(sp.vstack([liked(0, 5), liked(1, 6)]), 3, candidates=new)
    assert recs[0, 0] == 35 and recs[1, 0] == 36 and np.isfinite(scores).all()
    # a user who liked only a new anime (no rating anywhere) gets that topic, not the first rows
    recs, scores = cease.recommend(liked(37), 5)
    assert all(i % 5 == 37 % 5 for i in recs[0]) and len(set(np.round(scores[0], 6))) > 1
    # and liking it beside a rated anime changes the list: it is not ignored
    with_new, _ = cease.recommend(liked(0, 37), 10)
    without, _ = cease.recommend(liked(0), 10)
    assert not np.array_equal(with_new, without)
    assert sum(i % 5 == 2 for i in with_new[0]) > sum(i % 5 == 2 for i in without[0])
    sim, _ = cease.similar_items([38], 3)
    assert all(i % 5 == 38 % 5 for i in sim[0])


def test_new_anime_scores_come_from_the_map_and_the_calibration(world):
    fit, catalog = world
    base = make("cease", {"alpha": 3.0, "lam": 10.0, "new_weight": 1.0, "new_shift": 0.0, "new_popularity": 0.0}).fit(fit, catalog)
    u = liked(0, 5)
    cand = np.arange(N_ITEMS)
    s = base.scores(u, cand)
    assert np.isclose(np.abs(s[0, :35]).max(), 1.0)  # in units of the user's best known score
    shifted = make("cease", {"alpha": 3.0, "lam": 10.0, "new_weight": 2.0, "new_shift": 0.3,
                             "new_popularity": 0.0}).fit(fit, catalog)
    s2 = shifted.scores(u, cand)
    np.testing.assert_allclose(s2[0, :35], s[0, :35], atol=1e-6)  # known anime untouched
    np.testing.assert_allclose(s2[0, 35:], 2.0 * s[0, 35:] + 0.3, atol=1e-5)
    own = make("cease", {"alpha": 3.0, "lam": 10.0, "map_model": "none", "new_weight": 1.0,
                         "new_shift": 0.0, "new_popularity": 0.0}).fit(fit, catalog)
    raw = np.asarray(u @ own.weights)[0]
    np.testing.assert_allclose(own.scores(u, cand)[0], raw / np.abs(raw[:35]).max(), atol=1e-5)


def test_new_slots_keep_places_for_the_best_new_anime(world):
    fit, catalog = world
    users = sp.vstack([liked(0, 5), liked(1, 6), liked(2)])
    # new anime a little below the known ones' scale, so that the scores alone keep few of them
    calibration = {"alpha": 3.0, "lam": 10.0, "new_weight": 0.75, "new_shift": -0.1, "new_popularity": 0.0}
    quota = make("cease", {**calibration, "new_slots": 2}).fit(fit, catalog)
    plain = make("cease", calibration).fit(fit, catalog)
    recs, scores = quota.recommend(users, 10)
    new = recs >= 35
    assert (new.sum(axis=1) >= 2).all() and (new[:, :5].sum(axis=1) >= 1).all()  # 2 in 10, 1 in the first 5
    assert (plain.recommend(users, 10)[0] >= 35).sum() < new.sum()  # the scores alone keep fewer
    assert all(len(np.unique(r)) == 10 for r in recs)
    best_new, _ = plain.recommend(users, 2, candidates=np.arange(35, 40))
    assert all(set(best_new[u]) <= set(recs[u]) for u in range(3))  # the best two new ones
    # built from the top down: a longer list starts with the shorter one (evaluate's 20 scored at 10)
    longer, _ = quota.recommend(users, 20)
    np.testing.assert_array_equal(longer[:, :10], recs)
    np.testing.assert_array_equal(quota.recommend(users, 5)[0], recs[:, :5])
    # only new (or only known) candidates: the plain top k
    for cand in (np.arange(35, 40), np.arange(35)):
        assert np.array_equal(quota.recommend(users, 4, candidates=cand)[0], plain.recommend(users, 4, candidates=cand)[0])
    with pytest.raises(AnirecError, match="new_slots"):
        make("cease", {"new_slots": 11})


def test_merge_quota_orders_by_score_owes_places_and_pads():
    known_i = np.array([[1, 2, 3, 4], [5, 6, -1, -1]])
    known_v = np.array([[0.9, 0.5, 0.4, 0.1], [0.8, 0.2, -np.inf, -np.inf]], np.float32)
    new_i = np.array([[9, 8], [-1, -1]])
    new_v = np.array([[0.6, 0.05], [-np.inf, -np.inf]], np.float32)
    idx, val = merge_quota(known_i, known_v, new_i, new_v, 4, slots=0)  # by score alone
    assert idx.tolist() == [[1, 9, 2, 3], [5, 6, -1, -1]] and val[1, 2] == -np.inf
    idx, _ = merge_quota(known_i, known_v, new_i, new_v, 4, slots=5)  # 1 new owed by place 2, 2 by place 4
    assert idx.tolist() == [[1, 9, 2, 8], [5, 6, -1, -1]]
    idx, _ = merge_quota(known_i, known_v, new_i, new_v, 4, slots=10)  # every place owed: new first
    assert idx.tolist()[0] == [9, 8, 1, 2]


def test_cease_refuses_what_does_not_fit_before_allocating(world):
    fit, catalog = world
    with pytest.raises(AnirecError, match="cEASE over 40 items needs"):
        make("cease", {"max_memory_gb": 1e-9}).fit(fit, catalog)
    with pytest.raises(AnirecError, match="no item features"):
        make("cease", {"model": "none"})


def test_feature_blocks_are_unit_rows_times_their_weight(world):
    _, catalog = world
    f, info = item_features(catalog, FeatureSpec(dims=8, genres_weight=0.5))
    assert info["blocks"]["text"]["dims"] == 8 and info["blocks"]["genres"] == {"weight": 0.5, "dims": 5}
    text, genres = f[:, :8], f[:, 8:]
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(genres, axis=1), 0.5, atol=1e-6)
    sims = f @ f.T  # text cosine + 0.25 x same-genre
    assert np.isclose(sims[0, 5] - text[0] @ text[5], 0.25) and np.isclose(sims[0, 1] - text[0] @ text[1], 0.0)


def test_one_hot_spreads_many_values_and_drops_values_only_one_anime_has():
    values = field_values(pd.Series(["Action, Comedy", "Action", "Unknown", None, "Comedy, Drama"]))
    assert values == [["Action", "Comedy"], ["Action"], [], [], ["Comedy", "Drama"]]
    m = one_hot_rows(values)  # Drama (one anime) is dropped
    assert m.shape == (5, 2)
    np.testing.assert_allclose(m[0], [2 ** -0.5, 2 ** -0.5], atol=1e-6)
    assert (m[2] == 0).all() and np.isclose(np.linalg.norm(m[4]), 1.0)


@pytest.mark.parametrize("name", ["cease", "hybrid", "text"])
def test_every_method_with_text_uses_a_liked_anime_nobody_rated(world, name):
    fit, catalog = world
    rec = make(name, {}).fit(fit, catalog)
    assert rec.usable_likes([37, 2]).all()
    recs, scores = rec.recommend(liked(37), 4)
    assert all(i % 5 == 2 for i in recs[0]), recs  # its topic, not the catalog's first rows
    if name == "hybrid":  # beside a rated like it is not ignored
        assert not np.array_equal(rec.recommend(liked(0, 37), 10)[0], rec.recommend(liked(0), 10)[0])


def test_ease_says_which_likes_it_cannot_use(world):
    fit, catalog = world
    assert make("ease", {}).fit(fit, catalog).usable_likes([37, 2, 39]).tolist() == [False, True, False]
    assert make("itemknn", {}).fit(fit, catalog).usable_likes([37, 2]).tolist() == [False, True]


def test_serving_names_a_liked_anime_the_method_cannot_use(world, capsys):
    from anirec.serving import Query, Served, answer

    fit, catalog = world
    catalog = catalog.assign(Name=[f"Show {i}" for i in range(N_ITEMS)], **{"English name": "", "Type": "TV",
                                                                        "Premiered": "", "Score": 7.0})
    ease = Served(catalog, make("ease", {}).fit(fit, catalog))
    got = answer(ease, Query(mal_ids=(catalog["MAL_ID"].iat[0], catalog["MAL_ID"].iat[37]), k=5))
    assert len(got.frame) == 5
    named = [n for n in got.ranked.notes if "Show 37" in n]
    assert len(named) == 1 and "no rating of it" in named[0]
    with pytest.raises(AnirecError, match="Show 37.*would be arbitrary"):
        answer(ease, Query(mal_ids=(catalog["MAL_ID"].iat[37],), k=5, as_user=True))
    cease = Served(catalog, make("cease", {}).fit(fit, catalog))  # reads the text: no warning
    got = answer(cease, Query(mal_ids=(catalog["MAL_ID"].iat[37],), k=5, as_user=True))
    assert not any("Show 37" in n for n in got.ranked.notes) and len(got.frame) == 5


def test_a_missing_map_model_is_found_before_any_work(tmp_path, capsys):
    from anirec.evaluation.config import MethodSpec, check_models

    missing = str(tmp_path / "no-such-model")
    spec = MethodSpec("cEASE map", "cease", {"map_model": missing}, optional=True, where="t.toml line 3")
    assert check_models([spec]) == [] and "skipped (optional = true)" in capsys.readouterr().err
    with pytest.raises(AnirecError, match="t.toml line 3: model folder"):
        check_models([MethodSpec("cEASE map", "cease", {"map_model": missing}, where="t.toml line 3")])
    assert check_models([MethodSpec("cEASE", "cease", {"map_model": "none"})])  # no model: nothing to find


def test_contributions_are_the_additive_parts_of_the_raw_score(world):
    fit, catalog = world
    cease = make("cease", {"alpha": 3.0, "lam": 10.0, "new_weight": 1.0, "new_shift": 0.0,
                           "new_popularity": 0.0}).fit(fit, catalog)
    liked_rows, items = np.array([0, 7, 37]), np.array([5, 10, 35, 36, 39])
    contrib = cease.contributions(liked_rows, items)
    assert contrib.shape == (3, 5)
    np.testing.assert_allclose(contrib[:, :2], cease.weights[np.ix_(liked_rows, [5, 10])])  # known: B[liked, item]
    # summed over the likes and put on the user's scale they are the served scores
    u = liked(*liked_rows)
    raw = np.asarray(u @ cease.weights)[0]
    scale = np.abs(raw[cease.known]).max()
    np.testing.assert_allclose(contrib.sum(axis=0) / scale, cease.scores(u, items)[0], atol=1e-5)
    from anirec.explain import because

    got = because(cease, liked_rows, np.array([5, 35, 12])).tolist()
    assert got[:2] == [0, 0] and got[2] in (7, 37)  # each by a liked anime of its topic


def test_cease_reads_a_free_text_query_and_its_folder_checks_its_arrays(world):
    fit, catalog = world
    cease = make("cease", {"alpha": 3.0, "lam": 10.0}).fit(fit, catalog)
    q = cease.query_scores("detective murder mystery", np.arange(N_ITEMS))[0]
    assert np.argmax(q) % 5 == 2 and np.isfinite(q[[2, 7]]).all()
    state = cease.state()
    again = make("cease", {"alpha": 3.0, "lam": 10.0}).restore(dict(state), catalog)
    np.testing.assert_allclose(again.query_scores("detective murder mystery", np.arange(N_ITEMS))[0], q)
    np.testing.assert_array_equal(again.recommend(liked(0, 37), 5)[0], cease.recommend(liked(0, 37), 5)[0])
    broken = dict(state, support=state["support"][:-1])
    with pytest.raises(AnirecError, match="cEASE state"):
        make("cease", {"alpha": 3.0, "lam": 10.0}).restore(broken, catalog)
    lost_text = {k: v for k, v in state.items() if not k.startswith("text.")}
    with pytest.raises(AnirecError, match="cEASE state"):
        make("cease", {"alpha": 3.0, "lam": 10.0}).restore(lost_text, catalog)
    plain = make("cease", {"alpha": 3.0, "lam": 10.0, "map_model": "none"}).fit(fit, catalog)
    with pytest.raises(AnirecError, match="free-text"):
        plain.query_scores("detective", np.arange(N_ITEMS))


def test_expected_popularity_by_hand():
    from anirec.recommenders.ease_side import expected_popularity

    features = np.array([[1.0], [2.0], [3.0], [4.0]])
    support = np.expm1([1.0, 2.0, 3.0, 0.0])  # log(1 + promoters) = 1, 2, 3; row 3 nobody rated
    got = expected_popularity(features, support, ridge=1.0)
    # centred f = -1, 0, 1 and y = -1, 0, 1: slope 2 / (2 + 1); in SDs of y (sqrt(2/3)) around its mean
    slope, sd = 2 / 3, np.sqrt(2 / 3)
    np.testing.assert_allclose(got, [-slope / sd, 0.0, slope / sd, 2 * slope / sd], rtol=1e-6)
    assert (expected_popularity(features, np.zeros(4)) == 0).all()  # nothing rated: nothing to say


def test_new_popularity_lifts_new_anime_by_their_expected_popularity(world):
    fit, catalog = world
    plain = make("cease", {"new_popularity": 0.0}).fit(fit, catalog)
    lifted = make("cease", {"new_popularity": 0.5}).fit(fit, catalog)
    assert (plain.popularity == 0).all() and lifted.popularity[35:].any()
    u, cand = liked(0, 5), np.arange(N_ITEMS)
    diff = lifted.scores(u, cand) - plain.scores(u, cand)
    np.testing.assert_allclose(diff[0, :35], 0.0, atol=1e-6)  # known anime: EASE's own scores
    np.testing.assert_allclose(diff[0, 35:], 0.5 * lifted.popularity[35:], atol=1e-5)
    # the fitted folder keeps it: restored, the same scores
    again = make("cease", {"new_popularity": 0.5}).restore(lifted.state(), catalog)
    np.testing.assert_allclose(again.scores(u, cand), lifted.scores(u, cand), atol=1e-6)
