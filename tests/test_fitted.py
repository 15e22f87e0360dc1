"""`anirec fit` folders and `anirec recommend --recommender`, on the demo catalog (44 anime, 40 users)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anirec.data import load_ratings
from anirec.errors import AnirecError
from anirec.fitted import MANIFEST, STATE_DIR, load_fitted, seal_manifest
from anirec.fitting import FitMethod, fit_to_folder, method_spec, parse_param
from anirec.interactions import opinions_on_catalog, user_items
from anirec.recommenders import REGISTRY

from helpers import cli_exit_code, expect_user_error, run_cli

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"


@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory):
    from anirec.build import build_catalog

    out = tmp_path_factory.mktemp("demo") / "catalog.parquet"
    return build_catalog(DEMO, out).catalog, out


@pytest.fixture(scope="module")
def demo_users(demo_catalog):
    ops, _ = opinions_on_catalog(load_ratings(DEMO), demo_catalog[0]["MAL_ID"].to_numpy())
    return user_items(ops, len(demo_catalog[0]))


@pytest.fixture(scope="module")
def hybrid_dir(demo_catalog, tmp_path_factory):
    """A hybrid (EASE + TF-IDF text) fitted through the CLI."""
    out = tmp_path_factory.mktemp("fitted") / "hybrid"
    code = cli_exit_code(["fit", "--method", "hybrid", "--ratings", DEMO, "--catalog", demo_catalog[1], "--out", out,
                          "--param", "shrink=5"])
    assert code == 0
    return out


def _cli_fit(capsys, catalog_path, out, *extra):
    code, stdout, err = run_cli(capsys, "fit", "--ratings", DEMO, "--catalog", catalog_path, "--out", out, *extra)
    assert code == 0, err
    return stdout


# ----------------------------------------------------------------------------- round trip


# Parameters away from the defaults, so a folder that lost them would serve something else.
NON_DEFAULT = {"random": {"seed": 7}, "itemknn": {"n_neighbors": 4}, "ease": {"lam": 15.0},
               "text": {"n_neighbors": 4}, "hybrid": {"lam": 15.0, "shrink": 2.0, "n_neighbors": 4},
               "cease": {"lam": 15.0, "alpha": 5.0, "new_slots": 1, "new_weight": 0.8, "n_neighbors": 4}}


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_loaded_folder_recommends_as_the_fitted_method(method, demo_catalog, demo_users, tmp_path):
    catalog, path = demo_catalog
    try:
        result = fit_to_folder(FitMethod(method, NON_DEFAULT.get(method, {})), str(DEMO), path, tmp_path / method,
                               progress=False)
    except AnirecError as exc:
        if "cannot be saved" in str(exc):
            pytest.skip(str(exc))
        raise
    fitted = load_fitted(tmp_path / method, catalog)
    assert fitted.method == method and fitted.manifest["n_users"] == len(demo_users.users)
    half = np.arange(0, len(catalog), 2)
    for candidates in (None, half):
        want = result.recommender.recommend(demo_users.liked, 10, exclude=demo_users.rated, candidates=candidates)
        got = fitted.recommender.recommend(demo_users.liked, 10, exclude=demo_users.rated, candidates=candidates)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
    items = np.arange(len(catalog))
    np.testing.assert_array_equal(fitted.recommender.similar_items(items, 5)[0], result.recommender.similar_items(items, 5)[0])


def test_folder_serves_without_the_catalog(hybrid_dir, demo_catalog):
    """Title queries need only the folder: its own catalog.parquet carries the display columns."""
    fitted = load_fitted(hybrid_dir)
    np.testing.assert_array_equal(fitted.ids, demo_catalog[0]["MAL_ID"].to_numpy())
    assert "description" not in fitted.catalog and {"Name", "English name"} <= set(fitted.catalog)
    assert fitted.manifest["params"]["shrink"] == 5.0
    assert set(fitted.manifest["files"]) == {"catalog_ids.npy", "catalog.parquet"} | {
        f"{STATE_DIR}/{a}.npy" for a in fitted.manifest["arrays"]}


# ----------------------------------------------------------------------------- recommend --recommender


def test_likes_returns_k_other_anime(hybrid_dir, capsys):
    code, out, err = run_cli(capsys, "recommend", "--recommender", hybrid_dir, "--likes", "Shingeki no Kyojin",
                             "--likes", "steins;gate", "-k", "6", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["method"] == "hybrid" and payload["k"] == 6
    assert payload["query"]["likes"] == ["Shingeki no Kyojin", "Steins;Gate"]
    recs = payload["items"]
    ids = [r["mal_id"] for r in recs]
    assert len(ids) == 6 == len(set(ids))
    assert not set(ids) & set(payload["query"]["mal_ids"])
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)
    assert {"title", "english_title", "type", "year", "season", "mal_score", "because", "is_new"} <= set(recs[0])


def test_likes_equal_the_methods_recommend(hybrid_dir, demo_catalog, capsys):
    """The CLI answer is recommend() of a user who liked exactly those anime."""
    fitted = load_fitted(hybrid_dir)
    rows = [int(np.flatnonzero(fitted.catalog["Name"] == n)[0]) for n in ("Death Note", "K-On!")]
    liked = np.zeros((1, len(fitted.ids)), np.float32)
    liked[0, rows] = 1
    idx, _ = fitted.recommender.recommend(liked, 4)
    code, out, err = run_cli(capsys, "recommend", "--recommender", hybrid_dir, "--likes", "Death Note", "--likes", "K-On!",
                             "-k", "4", "--unfiltered", "--json")
    assert code == 0, err
    assert [r["mal_id"] for r in json.loads(out)["items"]] == fitted.ids[idx[0]].tolist()


def test_user_query_excludes_what_they_rated(hybrid_dir, demo_users, demo_catalog, capsys):
    user = int(demo_users.users[3])
    code, out, err = run_cli(capsys, "recommend", "--recommender", hybrid_dir, "--user", user, "--ratings", DEMO,
                             "-k", "5", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["query"]["user"] == user and payload["query"]["promoted"] == demo_users.liked[3].nnz
    rated = set(demo_catalog[0]["MAL_ID"].to_numpy()[demo_users.rated[3].indices])
    got = [r["mal_id"] for r in payload["items"]]
    assert got and not set(got) & rated


def test_title_queries_table_and_json(hybrid_dir, capsys):
    code, out, err = run_cli(capsys, "recommend", "--recommender", hybrid_dir, "Cowboy Bebop", "-k", "3")
    assert code == 0, err
    assert "Like Cowboy Bebop" in out and "recommender score" in out and "Cowboy Bebop" not in out.split("\n", 2)[2]
    code, out, err = run_cli(capsys, "recommend", "--recommender", hybrid_dir, "--id", 1, "--id", 1535, "-k", "3", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["query"]["mal_ids"] == [1, 1535] and len(payload["items"]) == 3
    assert not {1, 1535} & {r["mal_id"] for r in payload["items"]}


@pytest.mark.parametrize("args, says", [
    (["--likes", "Qwzx Plorp Blargh"], "is not in the catalog"),
    (["--user", "999999", "--ratings", str(DEMO)], "no ratings by that user_id"),
    (["--user", "1"], "--user needs --ratings"),
    (["--likes", "K-On!", "Death Note"], "not titles/--id and --likes"),
    (["--likes", "K-On!", "--user", "1", "--ratings", str(DEMO)], "not --user and --likes"),
    ([], "give a title"),
    (["K-On!", "--param", "n_neighbors=5"], "--param does not apply"),
    (["--id", "424242"], "--id 424242"),
])
def test_bad_queries_exit_2(hybrid_dir, capsys, args, says):
    err = expect_user_error(capsys, "recommend", "--recommender", hybrid_dir, *args)
    assert says in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- refused folders


@pytest.fixture
def ease_dir(demo_catalog, tmp_path, capsys):
    out = tmp_path / "ease"
    _cli_fit(capsys, demo_catalog[1], out, "--method", "ease")
    return out


def _delete_array(d: Path) -> str:
    victim = sorted((d / STATE_DIR).glob("*.npy"))[0]
    victim.unlink()
    return victim.name


def _corrupt_array(d: Path) -> str:
    victim = d / STATE_DIR / "weights.npy"
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    return "weights.npy"


def _delete_manifest(d: Path) -> str:
    (d / MANIFEST).unlink()
    return MANIFEST


def _garble_manifest(d: Path) -> str:
    (d / MANIFEST).write_text("{not json")
    return MANIFEST


def _edit_hash(d: Path) -> str:
    manifest = json.loads((d / MANIFEST).read_text())
    manifest["files"]["catalog_ids.npy"] = "0" * 64
    (d / MANIFEST).write_text(json.dumps(seal_manifest(manifest)))  # resealed: the file's hash is what is wrong
    return "catalog_ids.npy"


def _edit_params(d: Path) -> str:
    manifest = json.loads((d / MANIFEST).read_text())
    manifest["params"]["lam"] = 1.0
    (d / MANIFEST).write_text(json.dumps(manifest))
    return MANIFEST


def _old_format(d: Path) -> str:
    manifest = json.loads((d / MANIFEST).read_text())
    manifest["format"] = 0
    (d / MANIFEST).write_text(json.dumps(manifest))
    return "format 0"


@pytest.mark.parametrize("damage", [_delete_array, _corrupt_array, _delete_manifest, _garble_manifest, _edit_hash,
                                    _edit_params, _old_format])
def test_partial_or_corrupted_folder_exits_2(ease_dir, capsys, damage):
    named = damage(ease_dir)
    err = expect_user_error(capsys, "recommend", "--recommender", ease_dir, "K-On!")
    assert named in err and err.count("\n") == 1


def test_missing_folder_exits_2(tmp_path, capsys):
    err = expect_user_error(capsys, "recommend", "--recommender", tmp_path / "nope", "K-On!")
    assert "no such folder" in err


def test_folder_for_another_catalog_is_refused(ease_dir, hybrid_dir, demo_catalog, tmp_path, capsys):
    catalog = demo_catalog[0]
    fewer = tmp_path / "fewer.parquet"
    catalog.iloc[1:].to_parquet(fewer, index=False)
    err = expect_user_error(capsys, "recommend", "--recommender", ease_dir, "--catalog", fewer, "K-On!")
    assert "made for another catalog: ids differ" in err
    # Same anime, other descriptions: refused where the method reads text, fine for CF alone.
    reworded = tmp_path / "reworded.parquet"
    catalog.assign(description=catalog["description"] + " Extra.").to_parquet(reworded, index=False)
    err = expect_user_error(capsys, "recommend", "--recommender", hybrid_dir, "--catalog", reworded, "K-On!")
    assert "made for another catalog: descriptions differ" in err
    code, _, err = run_cli(capsys, "recommend", "--recommender", ease_dir, "--catalog", reworded, "K-On!", "--json")
    assert code == 0, err


def test_stale_model_is_refused(tiny_model_path, demo_catalog, tmp_path, capsys):
    out = tmp_path / "dense"
    _cli_fit(capsys, demo_catalog[1], out, "--method", "text", "--model", tiny_model_path, "--cache-dir", tmp_path,
             "--no-progress")
    emb = json.loads((out / MANIFEST).read_text())["embedding"]
    assert emb["fingerprint"] and emb["resolved"] == str(tiny_model_path.resolve())
    code, _, err = run_cli(capsys, "recommend", "--recommender", out, "--model", tiny_model_path, "K-On!", "--json")
    assert code == 0, err
    err = expect_user_error(capsys, "recommend", "--recommender", out, "--model", "tfidf", "K-On!")
    assert "stale: model changed" in err


# ----------------------------------------------------------------------------- fit arguments


@pytest.mark.parametrize("args, says", [
    (["--method", "nope"], "unknown method 'nope'"),
    (["--method", "ease", "--param", "lam=big"], "lam = 'big': expected a number"),
    (["--method", "ease", "--param", "lam"], "expected key=value"),
    (["--method", "ease", "--param", "alpha=1"], "unknown parameter 'alpha'"),
    (["--method", "itemknn", "--param", "n_neighbors=2.5"], "expected a whole number"),
    (["--method", "ease", "--model", "tfidf"], "--model: method 'ease' reads no text"),
    (["--param", "lam=-1"], "lam must be positive"),  # no --method: the default, cEASE, checks it
])
def test_bad_fit_arguments_exit_2(demo_catalog, tmp_path, capsys, args, says):
    err = expect_user_error(capsys, "fit", "--ratings", DEMO, "--catalog", demo_catalog[1], "--out", tmp_path / "x", *args)
    assert says in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_fit_without_a_method_fits_the_default(tmp_path):
    assert method_spec(None, ["alpha=3"]) == FitMethod("cease", {"alpha": 3})


def test_fit_reads_a_method_table_and_the_command_line_wins(tmp_path):
    config = tmp_path / "fit.toml"
    config.write_text('[method]\nname = "hybrid, shrunk"\nmethod = "hybrid"\nlam = 50\nshrink = 3.0\n')
    spec = method_spec(None, ["lam=80"], config, model="tfidf")
    assert spec == FitMethod("hybrid", {"lam": 80, "shrink": 3.0, "model": "tfidf"})
    assert parse_param("model=all-MiniLM-L6-v2") == ("model", "all-MiniLM-L6-v2")
    assert parse_param("flag=true") == ("flag", True)
    config.write_text("[other]\n")
    with pytest.raises(AnirecError, match=r"needs a \[method\] table"):
        method_spec(None, [], config)


def test_fit_writes_atomically_and_replaces(demo_catalog, tmp_path, capsys):
    out = tmp_path / "rec"
    _cli_fit(capsys, demo_catalog[1], out, "--method", "popular")
    first = json.loads((out / MANIFEST).read_text())
    _cli_fit(capsys, demo_catalog[1], out, "--method", "ease")
    assert json.loads((out / MANIFEST).read_text())["method"] == "ease" != first["method"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]  # no temporary folders left beside it


def test_fit_never_replaces_a_folder_that_is_not_a_fitted_one(demo_catalog, tmp_path, capsys):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "todo.txt").write_text("keep me")
    err = expect_user_error(capsys, "fit", "--method", "popular", "--ratings", DEMO, "--catalog", demo_catalog[1],
                            "--out", precious)
    assert "is not a fitted recommender folder" in err
    assert (precious / "todo.txt").read_text() == "keep me"
