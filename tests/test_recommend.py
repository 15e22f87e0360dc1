"""Title matching, similar-anime queries and the reference user pooling (METHOD.md section 5)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from helpers import cli_exit_code as main

from anirec.data import load_ratings
from anirec.errors import AnirecError
from anirec.recommend import Recommender, TitleIndex, franchise_stem




def row_of(catalog, name):
    return int(np.flatnonzero(catalog["Name"].to_numpy() == name)[0])


@pytest.fixture(scope="module")
def catalog(mal_catalog):
    return mal_catalog[0]


@pytest.fixture(scope="module")
def titles(catalog):
    return TitleIndex(catalog)


def random_vectors(n, d=16, seed=0):
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


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
def rec(catalog):
    return Recommender(catalog, random_vectors(len(catalog)))


def test_similar_matches_brute_force(rec, catalog):
    q = row_of(catalog, "Shingeki no Kyojin")
    out = rec.similar("Shingeki no Kyojin", k=10)
    sims = rec.vectors @ rec.vectors[q]
    expected = [j for j in np.argsort(-sims, kind="stable") if j != q][:10]
    assert out["MAL_ID"].tolist() == catalog["MAL_ID"].iloc[expected].tolist()
    np.testing.assert_allclose(out["similarity"], sims[expected], rtol=1e-5)
    assert out["rank"].tolist() == list(range(1, 11))
    # the same query by MAL_ID
    assert rec.similar(int(catalog["MAL_ID"].iat[q]), k=10)["MAL_ID"].tolist() == out["MAL_ID"].tolist()


def test_several_titles_mean_pooling_excludes_all_queries(rec, catalog):
    a, b = row_of(catalog, "Shingeki no Kyojin"), row_of(catalog, "Fate/stay night")
    out = rec.similar(["Shingeki no Kyojin", "fate/stay NIGHT"], k=5)
    mean = rec.vectors[a] + rec.vectors[b]
    sims = rec.vectors @ (mean / np.linalg.norm(mean))
    expected = [j for j in np.argsort(-sims, kind="stable") if j not in (a, b)][:5]
    assert out["MAL_ID"].tolist() == catalog["MAL_ID"].iloc[expected].tolist()


def test_exclude_franchise(rec, catalog):
    assert franchise_stem("Shingeki no Kyojin Season 3 Part 2") == "shingeki no kyojin"
    assert franchise_stem("Fate/Zero 2nd Season") == "fate/zero"
    assert franchise_stem("Naruto: Shippuuden") == "naruto"
    q = row_of(catalog, "Shingeki no Kyojin")
    family = rec.franchise_rows([q])
    names = set(catalog["Name"].iloc[family])
    assert {"Shingeki no Kyojin Season 2", "Shingeki no Kyojin Season 3"} <= names
    out = rec.similar("Shingeki no Kyojin", k=len(catalog), exclude_franchise=True)
    assert not set(out["title"]) & names
    assert len(out) == len(catalog) - len(family)


def test_unknown_id_is_a_clear_error(rec):
    with pytest.raises(AnirecError, match="no anime with that MAL_ID"):
        rec.similar(999_999_999)


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
    rec = Recommender(catalog, vectors)
    ratings = pd.DataFrame({"user_id": 7, "anime_id": [100, 103, 101], "rating": [10, 9, 5]})
    out = rec.for_user(ratings, k=2, n_neighbors=2)
    assert out["MAL_ID"].tolist() == [102, 104]
    assert out["votes"].tolist() == [2, 1]
    np.testing.assert_allclose(out["similarity"], [np.cos(np.deg2rad(30)), np.cos(np.deg2rad(11))], rtol=1e-5)
    # Ties on votes break by mean similarity: the user who promoted only 0 gets 1 (8 deg) before 2 (30 deg).
    solo = rec.for_user(pd.DataFrame({"anime_id": [100], "rating": [10]}), k=2, n_neighbors=2)
    assert solo["MAL_ID"].tolist() == [101, 102]
    # Five wanted but two neighbours each: what the pool holds, no padding rows.
    assert rec.for_user(ratings, k=5, n_neighbors=2)["MAL_ID"].tolist() == [102, 104]
    # Five neighbours each: 2, 4 and 5 each get 2 votes; mean cosine
    # 2: (cos 30 + cos 30)/2 = .87 > 4: (cos 71 + cos 11)/2 = .65 > 5: (cos 150 + cos 90)/2 = -.43.
    wide = rec.for_user(ratings, k=5, n_neighbors=5)
    assert wide["MAL_ID"].tolist() == [102, 104, 105] and wide["votes"].tolist() == [2, 2, 2]
    np.testing.assert_allclose(wide["similarity"], np.cos(np.deg2rad([[30, 30], [71, 11], [150, 90]])).mean(axis=1), rtol=1e-5)
    # The same pooling from the titles A0 + A3 (nothing rated, so 1 stays in): 2 has 2 votes; 1 (8 deg
    # from 0) and 4 (11 deg from 3) have one each and the closer one wins the tie.
    titles = rec.similar(["A0", "A3"], k=3, pool="votes", n_neighbors=2)
    assert titles["MAL_ID"].tolist() == [102, 101, 104] and titles["votes"].tolist() == [2, 1, 1]


def naive_pool(vectors, promoted_rows, rated_rows, k):
    """METHOD.md section 5 written as plainly as possible, one promoted anime at a time."""
    sims = vectors @ vectors.T
    pulled = defaultdict(list)
    for p in promoted_rows:
        neighbours = [j for j in np.argsort(-sims[p], kind="stable") if j != p][:k]
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
    return Recommender(sub, random_vectors(len(sub), seed=1)), ratings


def test_user_pooling_matches_the_plain_reference(user_fixture):
    rec, ratings = user_fixture
    counts = ratings[ratings["rating"] >= 9].groupby("user_id").size()
    users = counts[counts.between(2, 40)].index[:6].tolist()
    assert len(users) == 6
    row = {int(m): i for i, m in enumerate(rec.ids)}
    for user in users:
        mine = ratings[ratings["user_id"] == user]
        promoted = [row[a] for a in mine.loc[mine["rating"] >= 9, "anime_id"]]
        rated = {row[a] for a in mine["anime_id"]}
        expected = rec.ids[naive_pool(rec.vectors, promoted, rated, 10)].tolist()
        got = rec.for_user(ratings, k=10, user_id=user, n_neighbors=10)
        assert got["MAL_ID"].tolist() == expected
        assert not set(got["MAL_ID"]) & set(mine["anime_id"])


def test_for_users_equals_for_user(user_fixture):
    rec, ratings = user_fixture
    users = np.unique(ratings["user_id"])[:40]
    batch = rec.for_users(ratings[ratings["user_id"].isin(users)], k=10)
    assert batch.mal_ids.shape == (len(users), 10)
    for i, user in enumerate(batch.user_ids):
        if batch.n_promoted[i] == 0:
            assert (batch.mal_ids[i] == -1).all()
            continue
        single = rec.for_user(ratings, k=10, user_id=int(user))
        got = batch.mal_ids[i][batch.mal_ids[i] >= 0].tolist()
        assert got == single["MAL_ID"].tolist()
    frame = batch.to_frame()
    assert set(frame.columns) == {"user_id", "rank", "MAL_ID", "votes"} and (frame["MAL_ID"] >= 0).all()


def test_user_without_promoted_anime(user_fixture):
    rec, ratings = user_fixture
    meh = pd.DataFrame({"user_id": 5, "anime_id": rec.ids[:3], "rating": [8, 7, 3]})
    with pytest.raises(AnirecError, match=r"user 5 promoted no anime in the catalog.*highest rating 8"):
        rec.for_user(meh, k=10, user_id=5)
    with pytest.raises(AnirecError, match="no ratings by that user_id"):
        rec.for_user(ratings, k=10, user_id=-42)


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
    assert "embeddings: encoded 40 descriptions" in out and "Because you liked" in out
    assert main(args + ["--json"]) == 0
    captured = capsys.readouterr()
    import json

    payload = json.loads(captured.out)
    assert payload["cache_hit"] is True and "loaded from cache" in captured.err
    recs = payload["recommendations"]
    assert [r["rank"] for r in recs] == [1, 2, 3, 4]
    assert query not in [r["title"] for r in recs]
    assert all(-1.0 <= r["similarity"] <= 1.0 for r in recs)
