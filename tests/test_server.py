"""`anirec serve`'s HTTP contract (FastAPI's TestClient): endpoints, limits, the error contract."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from anirec.service import MAX_K, Request, Service  # noqa: E402

EXPORT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mal-export" / "animelist_sample.xml"


@pytest.fixture(scope="module")
def folder(mal_catalog, mal_dir, tmp_path_factory):
    """A hybrid (EASE + TF-IDF map) fitted on the shared ratings: CF, text and free text in one."""
    from anirec.fitting import fit_to_folder, method_spec

    out = tmp_path_factory.mktemp("served") / "hybrid"
    fit_to_folder(method_spec("hybrid"), str(mal_dir), mal_catalog[1], out, progress=False)
    return out


@pytest.fixture(scope="module")
def service(folder):
    from anirec.fitted import load_fitted

    return Service(load_fitted(folder)).warm()


@pytest.fixture(scope="module")
def client(service):
    from anirec.server.app import create_app

    return TestClient(create_app(service), raise_server_exceptions=False)


def error_of(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def test_health_options_and_page(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["method"] == "hybrid" and health["n_items"] == 3868
    assert "/" not in health["recommender"]  # the folder's name, not its path
    opts = client.get("/options").json()
    assert opts["types"] == ["TV"] and "Comedy" in opts["genres"] and opts["limits"]["k"] == MAX_K
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'src="/static/app.js"' in page.text and "http" not in page.text.split("<footer")[0]  # no CDN
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 200 and "/recommend" in client.get("/openapi.json").text


def test_search_and_lookup(client):
    items = client.get("/anime", params={"q": "steins", "limit": 3}).json()["items"]
    assert [i["mal_id"] for i in items] == [9253, 30484]  # prefix matches, popular first; no fuzzy filler
    assert set(items[0]) == {"mal_id", "title", "english_title", "year", "season", "type", "genres", "mal_score"}
    typo = client.get("/anime", params={"q": "shingeki no kyojn", "limit": 1}).json()["items"]
    assert typo[0]["title"] == "Shingeki no Kyojin"  # fuzzy fills in when nothing contains the text
    one = client.get("/anime/9253").json()
    assert one["title"] == "Steins;Gate" and one["year"] == 2011 and "Sci-Fi" in one["genres"]
    similar = client.get("/anime/9253/similar", params={"k": 5}).json()
    assert len(similar["items"]) == 5 and similar["anime"]["mal_id"] == 9253
    assert 30484 not in [i["mal_id"] for i in similar["items"]]  # not its own franchise (Steins;Gate 0)


def test_recommend_answer_shape_and_explanations(client):
    body = {"likes": ["Steins;Gate", 16498], "k": 10}
    answer = client.post("/recommend", json=body).json()
    items = answer["items"]
    assert len(items) == 10
    assert set(items[0]) == {"mal_id", "title", "english_title", "year", "season", "type", "genres", "mal_score",
                             "score", "is_new", "because"}
    assert all(i["because"] and i["because"][0]["mal_id"] in (9253, 16498) for i in items)
    assert [m["how"] for m in answer["matched"]] == ["exact", "id"]
    assert not {9253, 16498} & {i["mal_id"] for i in items}
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)


def test_recommend_is_the_service_answer(client, service):
    """The HTTP answer is the service's payload as is (what `recommend --json` prints)."""
    from anirec.filters import Filters

    body = {"likes": [9253, "Haikyuu!!"], "k": 7, "query": "time travel",
            "filters": {"genres": ["Drama"], "year_min": 2009, "include_adult": False}}
    direct = service.recommend(Request(likes=[9253, "Haikyuu!!"], k=7, query="time travel",
                                       filters=Filters(genres=("Drama",), year_min=2009)))
    assert client.post("/recommend", json=body).json() == direct


def test_filters_over_http(client):
    answer = client.post("/recommend", json={"likes": [9253], "k": 10, "filters": {
        "genres": ["Comedy"], "year_min": 2015, "year_max": 2020, "seasons": ["Spring", "Fall"], "min_score": 7.5}}).json()
    items = answer["items"]
    assert len(items) == 10
    for i in items:
        assert "Comedy" in i["genres"] and 2015 <= i["year"] <= 2020 and i["season"] in ("Spring", "Fall")
        assert i["mal_score"] >= 7.5
    new = client.post("/recommend", json={"likes": [9253], "k": 10, "filters": {"new_only": True}}).json()["items"]
    assert len(new) == 10 and all(i["is_new"] for i in new)  # the hybrid maps new anime from their text


def test_ratings_mal_list_and_query(client):
    rated = client.post("/recommend", json={"ratings": [{"anime_id": 9253, "rating": 10},
                                                        {"anime_id": 16498, "rating": 4}], "k": 5}).json()
    assert len(rated["items"]) == 5 and 16498 not in [i["mal_id"] for i in rated["items"]]  # rated = seen
    if EXPORT.exists():
        xml = EXPORT.read_text(encoding="utf-8")
        got = client.post("/recommend", json={"mal_list": xml, "k": 10}).json()
        assert got["mal_list"] == {"entries": 19, "liked": 6, "rated": 12, "seen": 17, "off_catalog": 2}
        listed = {16498, 9253, 5114, 52991, 47917, 50265, 1535, 11061, 20583, 31964, 38000, 40748, 30276, 22319,
                  37779, 44511, 41467}
        assert len(got["items"]) == 10 and not listed & {i["mal_id"] for i in got["items"]}
    text = client.post("/recommend", json={"query": "dark psychological thriller", "k": 5}).json()
    assert len(text["items"]) == 5 and all(i["because"] == [] for i in text["items"])


@pytest.mark.parametrize("body, status, says", [
    ({"likes": [9253], "k": MAX_K + 1}, 422, "k: Input should be less than or equal to 100"),
    ({"likes": [9253], "k": 0}, 422, "k: Input should be greater than or equal to 1"),
    ({"likes": [9253], "k": "10"}, 422, "k: Input should be a valid integer"),
    ({"likes": list(range(1, 502))}, 422, "likes: List should have at most 500 items"),
    ({"ratings": [{"anime_id": 9253, "rating": 11}]}, 422, "ratings.0.rating"),
    ({"likes": [9253], "query": "x" * 501}, 422, "query: String should have at most 500 characters"),
    ({"likes": [9253], "filters": {"min_score": "high"}}, 422, "filters.min_score"),
    ({"likes": [9253], "filters": {"colour": "red"}}, 422, "filters.colour: Extra inputs are not permitted"),
    ({"likes": [9253], "bogus": 1}, 422, "bogus: Extra inputs are not permitted"),
    ({"likes": [{"id": 1}]}, 422, "likes.0"),
    ({"likes": [123456789]}, 404, "anime 123456789: no anime with that MAL_ID"),
    ({"likes": ["Qwzx Plorp Blargh"]}, 400, "is not in the catalog (no title is close enough"),
    ({"likes": ["time travel"]}, 400, "Closest: 'Time Travel Girl' (81/100)"),
    ({"likes": [9253], "filters": {"types": ["TVV"]}}, 400, "types: 'TVV' is not in the catalog"),
    ({"likes": [9253], "filters": {"year_min": 2020, "year_max": 2010}}, 400, "swap them"),
    ({"mal_list": "<html>hi</html>"}, 400, "mal_list: not a MyAnimeList export"),
    ({"mal_list": '<!DOCTYPE m [<!ENTITY a "aa">]><myanimelist>&a;</myanimelist>'}, 400, "refused"),
    ({"mal_list": "/etc/passwd"}, 400, "mal_list: not well-formed XML"),  # a path is just text: never opened
    ({}, 400, "give at least one title"),
    ({"likes": [], "query": "   "}, 400, "query: empty"),
])
def test_bad_requests_are_one_line_4xx(client, body, status, says):
    assert says in error_of(client.post("/recommend", json=body), status)


def test_bad_bodies_and_routes(client):
    assert "not valid JSON" in error_of(client.post("/recommend", content=b"{oops", headers={"content-type": "application/json"}), 400)
    error_of(client.post("/recommend", content=b"likes=1", headers={"content-type": "application/x-www-form-urlencoded"}), 422)
    error_of(client.post("/recommend", json=[1, 2]), 422)
    big = b'{"mal_list": "' + b"x" * (7 << 20) + b'"}'
    assert "over" in error_of(client.post("/recommend", content=big, headers={"content-type": "application/json"}), 413)
    assert "Input should be a valid integer" in error_of(client.get("/anime/abc"), 422)
    error_of(client.get("/anime/9253/similar", params={"k": 1000}), 422)
    error_of(client.get("/anime", params={"q": ""}), 422)
    error_of(client.get("/anime", params={"q": "x", "limit": 51}), 422)
    assert "Not Found" in error_of(client.get("/no/such/route"), 404)
    error_of(client.delete("/recommend"), 405)


def test_gzipped_list_text_is_refused_with_a_hint(client):
    if not EXPORT.exists():
        pytest.skip("shared MAL export sample not found")
    packed = gzip.compress(EXPORT.read_bytes()).decode("latin-1")  # what a naive client would send
    error_of(client.post("/recommend", json={"mal_list": packed}), 400)


def test_cors_only_when_asked(service):
    from anirec.server.app import create_app

    origin = {"Origin": "https://club.example", "Access-Control-Request-Method": "POST"}
    closed = TestClient(create_app(service)).options("/recommend", headers=origin)
    assert "access-control-allow-origin" not in closed.headers
    opened = TestClient(create_app(service, ["https://club.example"])).options("/recommend", headers=origin)
    assert opened.headers["access-control-allow-origin"] == "https://club.example"


def test_service_checks_limits_itself(service):
    """The CLI calls the service directly: its limits hold without the HTTP layer."""
    from anirec.errors import AnirecError

    for req, says in ((Request(likes=[9253], k=101), "1 to 100"), (Request(query="x" * 501), "at most 500"),
                      (Request(ratings=[(9253, 0)]), "1-10"), (Request(likes=list(range(501))), "at most 500")):
        with pytest.raises(AnirecError, match=says):
            service.recommend(req)
    assert service.served.match((), [9253])[0].row == service.row(9253)


@pytest.mark.parametrize("cli, body", [
    (["--likes", "Steins;Gate", "--likes", "haikyu", "-k", "8"], {"likes": ["Steins;Gate", "haikyu"], "k": 8}),
    (["--likes", "Steins;Gate", "--query", "time travel", "--genre", "Drama", "--year-min", "2009", "--adult"],
     {"likes": ["Steins;Gate"], "query": "time travel", "filters": {"genres": ["Drama"], "year_min": 2009,
                                                                    "include_adult": True}}),
    (["--query", "dark psychological thriller", "--min-score", "7", "--no-unstarted-sequels", "-k", "5"],
     {"query": "dark psychological thriller", "k": 5, "filters": {"min_score": 7, "unstarted_sequels": False}}),
    (["--mal-list", str(EXPORT), "--new-only", "--any-per-franchise"],
     {"mal_list": "FILE", "filters": {"new_only": True, "one_per_franchise": False}}),
])
def test_post_recommend_answers_what_the_cli_json_answers(client, folder, capsys, cli, body):
    """One implementation under both: `anirec recommend --recommender DIR --json` and POST /recommend
    print the same JSON for the same input (a MAL list: the file vs its text)."""
    from helpers import run_cli

    if body.get("mal_list") == "FILE":
        if not EXPORT.exists():
            pytest.skip("shared MAL export sample not found")
        body = {**body, "mal_list": EXPORT.read_text(encoding="utf-8")}
    code, out, err = run_cli(capsys, "recommend", "--recommender", folder, *cli, "--json")
    assert code == 0, err
    import json

    over_http = client.post("/recommend", json=body)
    assert over_http.status_code == 200, over_http.text
    assert json.loads(out) == over_http.json()
    assert len(over_http.json()["items"]) >= 5


def test_cli_errors_match_http_errors(client, folder, capsys):
    from helpers import expect_user_error

    err = expect_user_error(capsys, "recommend", "--recommender", folder, "--likes", "time travel")
    assert "Closest: 'Time Travel Girl'" in err and "--query" in err
    assert "Closest: 'Time Travel Girl'" in error_of(client.post("/recommend", json={"likes": ["time travel"]}), 400)
    err = expect_user_error(capsys, "recommend", "--recommender", folder, "--likes", "Steins;Gate", "--genre", "Comdy")
    assert "genres: 'Comdy' is not in the catalog" in err
    err = expect_user_error(capsys, "recommend", "--recommender", folder, "--likes", "Steins;Gate", "--unfiltered",
                            "--genre", "Drama")
    assert "--unfiltered and --genre" in err


def test_serve_refuses_a_busy_port_and_a_missing_folder(folder, capsys, tmp_path):
    import socket

    from helpers import expect_user_error

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = expect_user_error(capsys, "serve", "--recommender", folder, "--port", port)
    assert f"--port {port}: cannot listen there" in err and err.count("\n") == 1
    err = expect_user_error(capsys, "serve", "--recommender", tmp_path / "nope")
    assert "no such folder" in err
