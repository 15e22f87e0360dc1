"""Title matching, similar-anime queries and the reference user pooling (METHOD.md section 5),
through the one serving path (anirec.serving) that plain `anirec recommend` and --recommender share."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from helpers import cli_exit_code as main, row_of

from anirec.data import load_ratings
from anirec.errors import AnirecError
from anirec.interactions import opinions_on_catalog, user_items
from anirec.recommenders import make
from anirec.serving import Query, Served, answer, user_query
from anirec.filters import Filters
from anirec.franchises import Franchises, title_stem
from anirec.titles import TitleIndex


@pytest.fixture(scope="module")
def titles(catalog):
    return TitleIndex(catalog)


def random_vectors(n, d=16, seed=0):
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def text_served(catalog, vectors, **params) -> Served:
    """The text method over given vectors (as if a model had embedded the catalog), served."""
    return Served(catalog, make("text", params).restore({"rows": vectors}, catalog))


def votes_and_similarity(frame):
    """The pooled score is votes + (mean similarity + 1) / 4: both parts back."""
    score = frame["recommender_score"].to_numpy(np.float64)
    votes = np.floor(score)
    return votes.astype(int).tolist(), (score - votes) * 4 - 1


# ----------------------------------------------------------------------------- titles


def test_exact_name_and_english_name(catalog, titles):
    aot = row_of(catalog, "Shingeki no Kyojin")
    m = titles.match("Shingeki no Kyojin")
    assert (m.row, m.how) == (aot, "exact")
    english = catalog["English name"].iat[aot]
    assert english != "Unknown"
    assert titles.match(english).row == aot and titles.match(english).how == "exact"


def test_case_insensitive(catalog, titles):
    m = titles.match("  shingeki NO   kyojin ")
    assert (m.row, m.how, m.title) == (row_of(catalog, "Shingeki no Kyojin"), "case", "Shingeki no Kyojin")


def test_fuzzy_typo(catalog, titles):
    m = titles.match("Shingeki no Kyojn")  # missing letter
    assert (m.row, m.how) == (row_of(catalog, "Shingeki no Kyojin"), "fuzzy")
    assert 86 <= m.score < 100


def test_unknown_title_lists_closest(titles):
    with pytest.raises(AnirecError) as exc:
        titles.match("Qwzx Plorp Blargh")
    msg = str(exc.value)
    assert "'Qwzx Plorp Blargh' is not in the catalog" in msg and "Closest:" in msg and "--id" in msg
    assert "\n" not in msg
    # The closest list is what rapidfuzz ranks first, one entry per anime.
    listed = titles.closest("Shingeki no Kyojim", n=3)
    assert listed[0][0] == "Shingeki no Kyojin" and len({r for _, r, _ in listed}) == 3


def test_cli_unknown_title_exits_2_before_loading_any_model(mal_catalog, tmp_path, capsys):
    code = main(["recommend", "Shingeki no Kyoujinnnzzz xx", "Qwzx Plorp", "--catalog", str(mal_catalog[1]),
                 "--model", str(tmp_path / "never-loaded"), "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("anirec: error: title ") and "Closest:" in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- similar


@pytest.fixture(scope="module")
def served(catalog):
    return text_served(catalog, random_vectors(len(catalog)))


def vectors_of(served):
    return served.recommender.item_rows


def test_similar_matches_brute_force(served, catalog):
    q = row_of(catalog, "Shingeki no Kyojin")
    out = answer(served, Query(titles=("Shingeki no Kyojin",), k=10)).frame
    v = vectors_of(served)
    sims = v @ v[q]
    expected = [j for j in np.argsort(-sims, kind="stable") if j != q][:10]
    assert out["MAL_ID"].tolist() == catalog["MAL_ID"].iloc[expected].tolist()
    np.testing.assert_allclose(out["recommender_score"], sims[expected], rtol=1e-5)
    assert out["rank"].tolist() == list(range(1, 11))
    # the same query by MAL_ID
    by_id = answer(served, Query(mal_ids=(int(catalog["MAL_ID"].iat[q]),), k=10)).frame
    assert by_id["MAL_ID"].tolist() == out["MAL_ID"].tolist()


def test_several_titles_are_one_user_who_liked_them_all(served, catalog):
    a, b = row_of(catalog, "Shingeki no Kyojin"), row_of(catalog, "Fate/stay night")
    result = answer(served, Query(titles=("Shingeki no Kyojin", "fate/stay NIGHT"), k=5))
    out = result.frame
    assert result.call == "recommend" and [m.row for m in result.matches] == [a, b]
    assert not {a, b} & set(np.flatnonzero(catalog["MAL_ID"].isin(out["MAL_ID"])))  # never the queries
    v = vectors_of(served)
    expected = naive_pool(v, [a, b], {a, b}, 5, n_neighbors=20)
    assert out["MAL_ID"].tolist() == catalog["MAL_ID"].iloc[expected].tolist()


def test_exclude_franchise(served, catalog):
    assert title_stem("Shingeki no Kyojin Season 3 Part 2") == "shingeki no kyojin"
    assert title_stem("Fate/Zero 2nd Season") == "fate/zero"
    assert title_stem("Naruto: Shippuuden") == "naruto"
    q = row_of(catalog, "Shingeki no Kyojin")
    family = Franchises.of(catalog).rows_of([q])
    names = set(catalog["Name"].iloc[family])
    assert {"Shingeki no Kyojin Season 2", "Shingeki no Kyojin Season 3"} <= names
    no_kin = Filters.none().but(liked_franchises=False)
    out = answer(served, Query(titles=("Shingeki no Kyojin",), k=len(catalog), filters=no_kin)).frame
    assert not set(out["title"]) & names
    assert len(out) == len(catalog) - len(family)
    # every call honours it: a user who liked the first season gets no sequel either
    liked = answer(served, Query(titles=("Shingeki no Kyojin",), k=50, filters=no_kin, as_user=True)).frame
    assert len(liked) and not set(liked["title"]) & names


def test_unknown_id_is_a_clear_error(served):
    for mal_id in (999_999_999, 99999999999999999999, -(10**30)):  # the last two do not fit in int64
        with pytest.raises(AnirecError, match="no anime with that MAL_ID"):
            answer(served, Query(mal_ids=(mal_id,)))


# ----------------------------------------------------------------------------- users


def test_user_pooling_hand_checked():
    """Seven anime on a circle (angles in degrees); k = 2 neighbours each.

    neighbours of 0 (0 deg):  1 (8 deg away), 2 (30)        -> votes 1: +1, 2: +1
    neighbours of 3 (60 deg): 4 (11 deg away), 2 (30)       -> votes 4: +1, 2: +1
    The user promoted 0 and 3 and rated 1 (a 5): so 2 (2 votes) then 4 (1 vote); 1 is excluded.
    """
    angles = np.deg2rad([0, 8, 30, 60, 71, 150, 200])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    catalog = pd.DataFrame({"MAL_ID": np.arange(100, 107), "Name": [f"A{i}" for i in range(7)],
                            "English name": "Unknown", "Type": "TV", "Genres": "Drama", "Premiered": "?",
                            "description": "x"})
    two, five = text_served(catalog, vectors, n_neighbors=2), text_served(catalog, vectors, n_neighbors=5)
    ids = catalog["MAL_ID"].to_numpy()
    ratings = pd.DataFrame({"user_id": 7, "anime_id": [100, 103, 101], "rating": [10, 9, 5]})
    out = answer(two, user_query(ratings, 7, ids, k=2)).frame
    assert out["MAL_ID"].tolist() == [102, 104]
    votes, sim = votes_and_similarity(out)
    assert votes == [2, 1]
    np.testing.assert_allclose(sim, [np.cos(np.deg2rad(30)), np.cos(np.deg2rad(11))], rtol=1e-5)
    # Ties on votes break by mean similarity: the user who promoted only 0 gets 1 (8 deg) before 2 (30 deg).
    solo = answer(two, user_query(pd.DataFrame({"anime_id": [100], "rating": [10]}), None, ids, k=2)).frame
    assert solo["MAL_ID"].tolist() == [101, 102]
    # Five wanted but two neighbours each: what the pool holds, no padding rows.
    assert answer(two, user_query(ratings, 7, ids, k=5)).frame["MAL_ID"].tolist() == [102, 104]
    # Five neighbours each: 2, 4 and 5 each get 2 votes; mean cosine
    # 2: (cos 30 + cos 30)/2 = .87 > 4: (cos 71 + cos 11)/2 = .65 > 5: (cos 150 + cos 90)/2 = -.43.
    wide = answer(five, user_query(ratings, 7, ids, k=5)).frame
    votes, sim = votes_and_similarity(wide)
    assert wide["MAL_ID"].tolist() == [102, 104, 105] and votes == [2, 2, 2]
    np.testing.assert_allclose(sim, np.cos(np.deg2rad([[30, 30], [71, 11], [150, 90]])).mean(axis=1), rtol=1e-5)
    # The same pooling from the titles A0 + A3 (nothing rated, so 1 stays in): 2 has 2 votes; 1 (8 deg
    # from 0) and 4 (11 deg from 3) have one each and the closer one wins the tie.
    titles = answer(two, Query(titles=("A0", "A3"), k=3)).frame
    assert titles["MAL_ID"].tolist() == [102, 101, 104] and votes_and_similarity(titles)[0] == [2, 1, 1]


def naive_pool(vectors, promoted_rows, rated_rows, k, n_neighbors=None):
    """METHOD.md section 5 written as plainly as possible, one promoted anime at a time."""
    sims = vectors @ vectors.T
    pulled = defaultdict(list)
    for p in promoted_rows:
        neighbours = [j for j in np.argsort(-sims[p], kind="stable") if j != p][:n_neighbors or k]
        for j in neighbours:
            pulled[j].append(sims[p, j])
    ranked = sorted(((-len(s), -float(np.mean(s)), j) for j, s in pulled.items() if j not in rated_rows))
    return [j for _, _, j in ranked[:k]]


@pytest.fixture(scope="module")
def user_fixture(mal_dir, catalog):
    """Real ratings on the 400 most rated catalog anime, with random vectors for them."""
    ratings = load_ratings(mal_dir / "rating_complete.csv")
    ratings = ratings[ratings["anime_id"].isin(catalog["MAL_ID"])]
    top = ratings["anime_id"].value_counts().index[:400]
    sub = catalog[catalog["MAL_ID"].isin(top)].reset_index(drop=True)
    ratings = ratings[ratings["anime_id"].isin(sub["MAL_ID"])].reset_index(drop=True)
    return text_served(sub, random_vectors(len(sub), seed=1), n_neighbors=10), ratings


def test_user_pooling_matches_the_plain_reference(user_fixture):
    served, ratings = user_fixture
    counts = ratings[ratings["rating"] >= 9].groupby("user_id").size()
    users = counts[counts.between(2, 40)].index[:6].tolist()
    assert len(users) == 6
    row = {int(m): i for i, m in enumerate(served.ids)}
    for user in users:
        mine = ratings[ratings["user_id"] == user]
        promoted = [row[a] for a in mine.loc[mine["rating"] >= 9, "anime_id"]]
        rated = {row[a] for a in mine["anime_id"]}
        expected = served.ids[naive_pool(vectors_of(served), promoted, rated, 10)].tolist()
        got = answer(served, user_query(ratings, user, served.ids, k=10)).frame
        assert got["MAL_ID"].tolist() == expected
        assert not set(got["MAL_ID"]) & set(mine["anime_id"])


def test_batch_recommend_equals_one_user_at_a_time(user_fixture):
    """What the evaluation runs (one recommend() over many users) is what one user is served."""
    served, ratings = user_fixture
    users = np.unique(ratings["user_id"])[:40]
    ops, _ = opinions_on_catalog(ratings[ratings["user_id"].isin(users)], served.ids)
    ui = user_items(ops, len(served.ids), users=users)
    batch, _ = served.recommender.recommend(ui.liked, 10, exclude=ui.rated, batch_size=16)
    assert batch.shape == (len(users), 10)
    for i, user in enumerate(users):
        if ui.liked[i].nnz == 0:
            assert (batch[i] == -1).all()
            continue
        single = answer(served, user_query(ratings, int(user), served.ids, k=10)).frame
        assert served.ids[batch[i][batch[i] >= 0]].tolist() == single["MAL_ID"].tolist()


def test_user_without_promoted_anime(user_fixture):
    served, ratings = user_fixture
    meh = pd.DataFrame({"user_id": 5, "anime_id": served.ids[:3], "rating": [8, 7, 3]})
    with pytest.raises(AnirecError, match=r"user 5 promoted no anime in the catalog.*highest rating 8"):
        user_query(meh, 5, served.ids)
    with pytest.raises(AnirecError, match="no ratings by that user_id"):
        user_query(ratings, -42, served.ids)


def test_cli_user_errors_exit_2(mal_catalog, tmp_path, capsys):
    cat = mal_catalog[0]
    path = tmp_path / "ratings.csv"
    pd.DataFrame({"user_id": [1, 1, 2], "anime_id": [cat["MAL_ID"].iat[0], cat["MAL_ID"].iat[1], cat["MAL_ID"].iat[2]],
                  "rating": [6, 8, 10]}).to_csv(path, index=False)
    base = ["recommend", "--catalog", str(mal_catalog[1]), "--ratings", str(path),
            "--model", str(tmp_path / "never-loaded"), "--cache-dir", str(tmp_path)]
    assert main(base + ["--user", "1"]) == 2
    assert "promoted no anime" in capsys.readouterr().err
    assert main(base + ["--user", "3"]) == 2
    assert "--user 3: no ratings by that user_id" in capsys.readouterr().err


# ----------------------------------------------------------------------------- CLI end to end


def test_cli_recommend_table_json_and_cache(catalog, tiny_model_path, tmp_path, capsys):
    small = tmp_path / "catalog.parquet"
    catalog.iloc[:40].to_parquet(small)
    query = catalog["Name"].iat[5]
    args = ["recommend", query, "--model", str(tiny_model_path), "--catalog", str(small),
            "--cache-dir", str(tmp_path / "cache"), "-k", "4", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "embeddings: encoded 40 descriptions" in out and f"Like {query}" in out
    assert main(args + ["--json"]) == 0
    captured = capsys.readouterr()
    import json

    payload = json.loads(captured.out)
    assert payload["cache_hit"] is True and "loaded from cache" in captured.err
    recs = payload["items"]
    assert len(recs) == 4
    assert query not in [r["title"] for r in recs]
    assert all(-1.0 <= r["score"] <= 1.0 for r in recs)  # one title: the cosine (similar_items)
