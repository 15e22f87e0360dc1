"""MAL list import, catalog fields, franchises, filters, explanations, free text and the ranked
list under query options (anirec.mal_list, anime_fields, franchises, filters, explain,
text_query, ranking)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import row_of

from anirec.anime_fields import AnimeFields
from anirec.errors import AnirecError
from anirec.filters import Filters, candidate_mask
from anirec.franchises import Franchises, title_stem
from anirec.mal_list import MAX_LIST_BYTES, on_catalog, parse_mal_list, read_mal_list
from anirec.ranking import CatalogView, rank

EXPORT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mal-export"


@pytest.fixture(scope="module")
def view(catalog):
    return CatalogView(catalog)


def entry(anime_id, score, status="Completed", title="X"):
    return (f"<anime><series_animedb_id>{anime_id}</series_animedb_id><series_title><![CDATA[{title}]]></series_title>"
            f"<my_score>{score}</my_score><my_status>{status}</my_status></anime>")


def export(*entries, user="someone"):
    return f"<?xml version='1.0'?><myanimelist><myinfo><user_name>{user}</user_name></myinfo>{''.join(entries)}</myanimelist>"


# ----------------------------------------------------------------------------- MAL list


def test_sample_export_plain_and_gzipped_agree(catalog):
    if not (EXPORT / "animelist_sample.xml").exists():
        pytest.skip(f"shared MAL export sample not found at {EXPORT}")
    plain, packed = read_mal_list(EXPORT / "animelist_sample.xml"), read_mal_list(EXPORT / "animelist_sample.xml.gz")
    assert plain.user_name == packed.user_name == "anirec_sample"
    np.testing.assert_array_equal(plain.anime_id, packed.anime_id)
    got = on_catalog(plain, catalog["MAL_ID"].to_numpy())
    # The README: 19 entries, 17 on the shared catalog, One Piece (21) and Cowboy Bebop (1) off it.
    assert got.summary() == {"entries": 19, "liked": 6, "rated": 12, "seen": 17, "off_catalog": 2}
    ids = catalog["MAL_ID"].to_numpy()
    assert set(ids[got.liked]) == {16498, 9253, 5114, 52991, 47917, 11061}  # scored 9-10 on the catalog
    assert 40748 in ids[got.seen] and 40748 not in ids[got.rated]  # watching, score 0: seen, not rated


def test_scores_likes_and_repeats(catalog):
    ids = catalog["MAL_ID"].to_numpy()
    a, b, c = (int(x) for x in ids[:3])
    m = parse_mal_list(export(entry(a, 10), entry(b, 0, "Plan to Watch"), entry(c, 7), entry(a, 5), entry(999999999, 9)))
    got = on_catalog(m, ids)
    assert got.off_catalog == 1 and got.entries == 5
    assert set(ids[got.seen]) == {a, b, c} and set(ids[got.rated]) == {a, c}
    assert len(got.liked) == 0  # the later entry of a (score 5) wins, as a ratings file's later row would
    frame = m.ratings()
    assert frame["rating"].tolist() == [10, 7, 5, 9] and (frame["user_id"] == 0).all()


@pytest.mark.parametrize("xml, says", [
    ('<!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><myanimelist>&b;</myanimelist>', "refused"),
    ('<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><myanimelist>&x;</myanimelist>', "refused"),
    ("<myanimelist><anime>", "not well-formed"),
    ("<html><body>hello</body></html>", "not a MyAnimeList export"),
    ("<myanimelist><manga><manga_mangadb_id>2</manga_mangadb_id></manga></myanimelist>", "manga list"),
    ("<myanimelist><anime><series_animedb_id>abc</series_animedb_id></anime></myanimelist>", "entry 1: <series_animedb_id> is 'abc'"),
    ("<myanimelist><anime><series_animedb_id>5</series_animedb_id><my_score>11</my_score></anime></myanimelist>", "<my_score> is '11'"),
    ("   ", "empty"),
])
def test_broken_or_foreign_lists_are_one_line(xml, says):
    with pytest.raises(AnirecError) as exc:
        parse_mal_list(xml, "upload.xml")
    msg = str(exc.value)
    assert msg.startswith("upload.xml: ") and says in msg and "\n" not in msg


def test_file_errors_and_size_limit(tmp_path):
    with pytest.raises(AnirecError, match="file not found"):
        read_mal_list(tmp_path / "nope.xml")
    broken = tmp_path / "list.xml.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(AnirecError, match="cannot be read"):
        read_mal_list(broken)
    # A gzip bomb: 40 KB on disk, 40 MB of XML inside; reading stops at the limit.
    bomb = tmp_path / "bomb.xml.gz"
    bomb.write_bytes(gzip.compress(b"<myanimelist>" + b" " * (8 * MAX_LIST_BYTES) + b"</myanimelist>"))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(AnirecError, match="more than 5 MB of XML"):
        read_mal_list(bomb)
    ok = tmp_path / "renamed.txt"  # gzip told by its bytes, not its name
    ok.write_bytes(gzip.compress(export(entry(1, 9)).encode()))
    assert read_mal_list(ok).anime_id.tolist() == [1]


# ----------------------------------------------------------------------------- fields


def test_fields_parse_text_columns_defensively():
    cat = pd.DataFrame({
        "MAL_ID": [1, 2, 3, 4],
        "Type": ["TV", "Movie", "Unknown", None],
        "Premiered": ["Fall 2011", "Unknown", "Unknown", None],
        "Aired": ["Oct 2, 2011 to Mar 2012", "Jul 14, 1998", "Unknown", None],
        "Score": ["8.1", "Unknown", 7, None],
        "Rating": ["R+ - Mild Nudity", "PG-13 - Teens 13 or older", "Rx - Hentai", "Unknown"],
        "Genres": ["Action, Comedy", "Drama", "Unknown", "Romance, Erotica"],
    })
    f = AnimeFields.of(cat)
    np.testing.assert_array_equal(f.year, [2011, 1998, np.nan, np.nan])
    assert f.season.tolist() == ["Fall", "Summer", "", ""]  # a film's season from the month it aired
    np.testing.assert_array_equal(f.mal_score, [8.1, np.nan, 7.0, np.nan])
    assert f.adult.tolist() == [True, False, True, True]
    assert f.type.tolist() == ["TV", "Movie", "", ""]
    assert f.genre_mask(["action", "COMEDY"], every=True).tolist() == [True, False, False, False]
    assert f.genre_mask(["drama", "romance"], every=False).tolist() == [False, True, False, True]


# ----------------------------------------------------------------------------- franchises


@pytest.mark.parametrize("title, stem", [
    ("Shingeki no Kyojin Season 3 Part 2", "shingeki no kyojin"),
    ("Shingeki no Kyojin: The Final Season", "shingeki no kyojin"),
    ("Haikyuu!! Second Season", "haikyuu"),  # end punctuation goes, as from a title prefix
    ("Gintama'", "gintama"),
    ("Kuroko no Basket 2nd Season", "kuroko no basket"),
    ("Sword Art Online II", "sword art online"),
    ("Zoku Natsume Yuujinchou", "natsume yuujinchou"),
    ("Final Fantasy", "final fantasy"),  # a marker word as the first word is the title itself
    ("Re:Zero kara Hajimeru Isekai Seikatsu", "re:zero kara hajimeru isekai seikatsu"),  # no 2-letter stem
])
def test_title_stems(title, stem):
    assert title_stem(title) == stem


def test_franchises_on_the_shared_catalog(catalog):
    fr = Franchises.of(catalog)
    same = lambda a, b: fr.key[row_of(catalog, a)] == fr.key[row_of(catalog, b)]  # noqa: E731
    assert same("Natsume Yuujinchou", "Zoku Natsume Yuujinchou")  # through the English titles
    assert same("Natsume Yuujinchou", "Natsume Yuujinchou Roku")  # a title that starts with the stem
    assert same("Gintama", "Gintama'")
    assert same("Haikyuu!!", "Haikyuu!! Second Season")
    # a title that starts with a stem ending in punctuation (the stem kept "!!", the prefix did not)
    assert same("Haikyuu!!", "Haikyuu!! To the Top") and same("K-On!", "K-On!!")
    assert not same("Re:Zero kara Hajimeru Isekai Seikatsu", "Re:Creators")
    assert not same("Steins;Gate", "Shingeki no Kyojin")
    natsume = fr.rows_of([row_of(catalog, "Natsume Yuujinchou")])
    firsts = catalog["Name"].to_numpy()[natsume[fr.first[natsume]]]
    assert firsts.tolist() == ["Natsume Yuujinchou"] and len(natsume) >= 6  # the 2008 season came first
    ranked = np.array([row_of(catalog, n) for n in ("Gintama'", "Steins;Gate", "Gintama", "Gintama.")])
    assert ranked[fr.best_of_each(ranked)].tolist() == ranked[:2].tolist()


# ----------------------------------------------------------------------------- filters


def test_filters_on_the_shared_catalog(view, catalog):
    f = view.fields
    mask = candidate_mask(f, Filters(genres=("Comedy",), exclude_genres=("School",), year_min=2010, year_max=2012,
                                     seasons=("fall",), min_score=7.0), view.franchises)
    assert mask.sum() > 0
    assert (f.year[mask] >= 2010).all() and (f.year[mask] <= 2012).all() and (f.season[mask] == "Fall").all()
    assert (f.mal_score[mask] >= 7).all()
    assert all("Comedy" in g and "School" not in g for g in np.asarray(f.genres, object)[mask])
    adult = candidate_mask(f, Filters(include_adult=True), view.franchises) & ~candidate_mask(f, Filters(), view.franchises)
    assert adult.sum() == 181 and catalog["Rating"][adult].str.startswith("R+").all()


def test_franchise_filters(view, catalog):
    fr, f = view.franchises, view.fields
    natsume = row_of(catalog, "Natsume Yuujinchou")
    kin = fr.rows_of([natsume])
    assert not candidate_mask(f, Filters(), fr, liked=[natsume])[kin].any()
    assert candidate_mask(f, Filters(liked_franchises=True), fr, liked=[natsume])[kin].all()
    # No sequel of a franchise not started: Haikyuu!!'s later seasons go, its first stays...
    haikyuu = fr.rows_of([row_of(catalog, "Haikyuu!!")])
    strict = candidate_mask(f, Filters(unstarted_sequels=False), fr)
    assert strict[haikyuu].tolist() == fr.first[haikyuu].tolist()
    # ... unless the user has seen any of it.
    assert candidate_mask(f, Filters(unstarted_sequels=False), fr, started=[haikyuu[-1]])[haikyuu].all()


@pytest.mark.parametrize("filters, says", [
    (dict(types=("TVV",)), "types: 'TVV' is not in the catalog; closest: TV"),
    (dict(genres=("Comdy",)), "genres: 'Comdy' is not in the catalog; closest: Comedy"),
])
def test_unknown_filter_names_list_the_closest(view, filters, says):
    with pytest.raises(AnirecError, match=says):
        candidate_mask(view.fields, Filters(**filters), view.franchises)


@pytest.mark.parametrize("filters, says", [
    (dict(seasons=("autumn",)), "not a season"),
    (dict(year_min=2020, year_max=2010), "swap them"),
    (dict(min_score=11), "between 0 and 10"),
    (dict(types="TV"), "a list of names"),
])
def test_bad_filter_values(filters, says):
    with pytest.raises(AnirecError, match=says):
        Filters(**filters)


# ----------------------------------------------------------------------------- ranking


@pytest.fixture(scope="module")
def ease(catalog, mal_dir):
    from anirec.data import load_ratings
    from anirec.interactions import opinions_on_catalog, user_items
    from anirec.recommenders import make

    ops, _ = opinions_on_catalog(load_ratings(mal_dir), catalog["MAL_ID"].to_numpy())
    ui = user_items(ops, len(catalog))
    counts = np.bincount(ops["item"].to_numpy(), minlength=len(catalog))
    return make("ease").fit(ui.fit_matrix, catalog), CatalogView(catalog, counts), ui


def test_filtered_list_still_has_k_items_and_honours_the_filters(ease, catalog):
    rec, view, _ = ease
    liked = [row_of(catalog, "Steins;Gate"), row_of(catalog, "Haikyuu!!")]
    flt = Filters(genres=("Comedy",), year_min=2012)
    got = rank(rec, view, liked, filters=flt, k=10)
    assert len(got.rows) == 10 and got.candidates > 10
    assert (view.fields.year[got.rows] >= 2012).all() and all("Comedy" in view.fields.genres[r] for r in got.rows)
    # Applied before the top-k: the same as EASE ranking only the passing candidates.
    cand = np.flatnonzero(candidate_mask(view.fields, flt, view.franchises, liked))
    cand = np.setdiff1d(cand, liked)
    idx, _ = rec.recommend(np.isin(np.arange(rec.n_items), liked)[None, :].astype(np.float32), 40, candidates=cand)
    first_each = idx[0][view.franchises.best_of_each(idx[0])]
    assert got.rows.tolist() == first_each[:10].tolist()


def test_one_per_franchise_and_because(ease, catalog):
    rec, view, _ = ease
    liked = [row_of(catalog, "Steins;Gate"), row_of(catalog, "Haikyuu!!")]
    got = rank(rec, view, liked, k=20)
    keys = view.franchises.key[got.rows]
    assert len(set(keys)) == len(keys) == 20
    assert not np.isin(keys, view.franchises.key[liked]).any()
    # because = the liked anime with the largest B[liked, item]
    b = rec.contributions(np.array(liked), got.rows)
    expected = np.where(b.max(axis=0) > 0, np.array(liked)[b.argmax(axis=0)], -1)
    np.testing.assert_array_equal(got.because, expected)
    assert (got.because >= 0).sum() >= 15
    many = rank(rec, view, liked, filters=Filters(one_per_franchise=False, liked_franchises=True), k=40)
    assert len(set(view.franchises.key[many.rows])) < 40  # without the cap a franchise repeats


def test_new_only_and_is_new(ease, catalog):
    rec, view, _ = ease
    liked = [row_of(catalog, "Steins;Gate")]
    got = rank(rec, view, liked, filters=Filters(new_only=True), k=10)
    assert len(got.rows) == 0  # EASE cannot score an anime nobody rated: honest, not padded
    rated = rank(rec, view, liked, k=10)
    assert rated.is_new is not None and not rated.is_new.any()


def test_popularity_explains_nothing(catalog, ease):
    from anirec.recommenders import make

    _, view, ui = ease
    pop = make("popular").fit(ui.fit_matrix, catalog)
    got = rank(pop, view, [row_of(catalog, "Steins;Gate")], k=5)
    assert len(got.rows) == 5 and (got.because == -1).all()


def test_free_text_tfidf_query(catalog):
    from anirec.item_vectors import tfidf_fit
    from anirec.recommenders import make

    rec = make("text", {"model": "tfidf"}).fit(None, catalog)
    _, vec = tfidf_fit(catalog["description"].astype(str).tolist())
    texts = ["dark psychological thriller", "Dark DARK dark mecha", catalog["description"].iat[5], "Ünïcode café"]
    mine = np.vstack([rec.query._tfidf_row(t).toarray() for t in texts])
    np.testing.assert_allclose(mine, vec.transform(texts).toarray(), atol=1e-6)  # scikit-learn's transform, exactly
    view = CatalogView(catalog)
    got = rank(rec, view, text="dark psychological thriller", k=10)
    assert len(got.rows) == 10 and (got.because == -1).all()
    genres = [view.fields.genres[r] for r in got.rows]
    # ~15% of the catalog has one of these genres; TF-IDF on three words finds 4 of 10
    assert sum(bool({"Psychological", "Suspense", "Mystery", "Horror"} & g) for g in genres) >= 3
    with pytest.raises(AnirecError, match="none of its words"):
        rank(rec, view, text="the of and", k=5)
    # Both likes and text: a rank fusion; the list differs from either alone.
    liked = [row_of(catalog, "Steins;Gate")]
    both = rank(rec, view, liked, text="dark psychological thriller", k=10)
    assert len(both.rows) == 10 and both.rows.tolist() != got.rows.tolist()
    assert both.rows.tolist() != rank(rec, view, liked, k=10).rows.tolist()


def test_query_survives_save_and_load(catalog, tmp_path):
    from anirec.fitted import load_fitted, save_fitted
    from anirec.recommenders import make

    rec = make("text", {"model": "tfidf"}).fit(None, catalog)
    save_fitted(rec, tmp_path / "f", catalog, {})
    back = load_fitted(tmp_path / "f").recommender
    cand = np.arange(rec.n_items)
    np.testing.assert_array_equal(back.query_scores("time travel", cand), rec.query_scores("time travel", cand))
    with pytest.raises(AnirecError, match="reads no text"):
        make("popular").query_scores("x", cand)


def test_dense_and_fused_query_rows(mal_catalog, tiny_model_path, tmp_path):
    """A sentence-model query is encoded like the descriptions; a fused one is [sqrt(1-s) dense,
    sqrt(s) tfidf] with the fit's share, so its dot product is the method's fused cosine."""
    from anirec.embeddings import encode_texts
    from anirec.fitted import load_fitted, save_fitted
    from anirec.models import load_model
    from anirec.recommenders import make

    catalog = mal_catalog[0].iloc[:150].reset_index(drop=True)
    ctx = {"cache_dir": tmp_path / "cache", "progress": False}
    dense = make("text", {"model": str(tiny_model_path)}, **ctx).fit(None, catalog)
    fused = make("text", {"model": str(tiny_model_path), "tfidf_weight": 0.5}, **ctx).fit(None, catalog)
    q = encode_texts(load_model(str(tiny_model_path)), ["a quiet story about cats"], show_progress=False)
    cand = np.arange(len(catalog))
    np.testing.assert_allclose(dense.query_scores("a quiet story about cats", cand)[0], dense.item_rows @ q[0], atol=1e-5)
    s = fused.query.tfidf_share
    assert 0 < s < 1 and abs(s - fused.embedding["tfidf_share"]) < 1e-4
    tf = fused.query._tfidf_row("a quiet story about cats").toarray()[0]
    expected = fused.item_rows @ np.r_[np.sqrt(1 - s) * q[0], np.sqrt(s) * tf]
    np.testing.assert_allclose(fused.query_scores("a quiet story about cats", cand)[0], expected, atol=1e-5)
    save_fitted(fused, tmp_path / "f", catalog, {})
    back = load_fitted(tmp_path / "f").recommender
    np.testing.assert_allclose(back.query_scores("a quiet story about cats", cand), fused.query_scores("a quiet story about cats", cand), atol=1e-6)
