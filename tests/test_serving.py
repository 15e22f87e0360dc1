"""One serving path: plain `anirec recommend`, `recommend --recommender` and the evaluation's
recommend() give the same lists for the same input; the README's Python API runs as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from anirec import evaluation as ev
from anirec.data import load_ratings
from anirec.interactions import opinions_on_catalog

from helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo catalog, its holdout task, and folders fitted by `anirec fit` (text, hybrid)."""
    from anirec.build import build_catalog
    from helpers import cli_exit_code

    d = tmp_path_factory.mktemp("serving")
    catalog = build_catalog(DEMO, d / "catalog.parquet").catalog
    ops, _ = opinions_on_catalog(load_ratings(DEMO), catalog["MAL_ID"].to_numpy())
    task = ev.holdout_task(ops, len(catalog), (5,), 0.3, 2, seed=3)
    folders = {}
    for method in ("text", "hybrid"):
        folders[method] = d / method
        assert cli_exit_code(["fit", "--method", method, "--model", "tfidf", "--ratings", DEMO,
                              "--catalog", d / "catalog.parquet", "--out", folders[method]]) == 0
    return catalog, d / "catalog.parquet", task, folders


def _cli_ids(capsys, *args) -> list[int]:
    """The ids `recommend --json` answers, unfiltered: the method's own list, as evaluated."""
    code, out, err = run_cli(capsys, "recommend", *args, "--unfiltered", "--json")
    assert code == 0, err
    return [r["mal_id"] for r in json.loads(out)["items"]]


def _task_user_ratings(task, catalog, u: int, path: Path) -> Path:
    """A ratings file that gives --user exactly the task's input for user row ``u``: its liked
    anime rated 10, everything else it has seen rated 5."""
    ids = catalog["MAL_ID"].to_numpy()
    liked, seen = set(task.promoted[u].indices), set(task.seen[u].indices)
    rows = [(int(task.users[u]), int(ids[i]), 10 if i in liked else 5) for i in sorted(liked | seen)]
    pd.DataFrame(rows, columns=["user_id", "anime_id", "rating"]).to_csv(path, index=False)
    return path


def test_plain_fitted_and_evaluated_lists_are_identical(demo, capsys, tmp_path):
    catalog, catalog_path, task, folders = demo
    ids = catalog["MAL_ID"].to_numpy()
    k = max(task.ks)
    cfg = ev.EvalConfig(catalog="unused")
    # text: the evaluation's own run (TF-IDF needs no ratings, so it fits what the folder fitted);
    # hybrid: the folder's recommender, called as the evaluation calls it, on the same users
    from anirec.fitted import load_fitted

    evaluated = {"text": ev.run_method(ev.MethodSpec("text", "text", {"model": "tfidf"}), task, catalog, cfg)[0],
                 "hybrid": load_fitted(folders["hybrid"]).recommender.recommend(task.promoted, k, exclude=task.seen)[0]}
    plain = ["--model", "tfidf", "--catalog", catalog_path]
    checked = 0
    for u in range(len(task.users)):
        if task.promoted[u].nnz == 0:
            continue
        ratings = _task_user_ratings(task, catalog, u, tmp_path / f"u{u}.csv")
        user = ["--user", str(task.users[u]), "--ratings", ratings, "-k", str(k)]
        want = {m: [int(ids[i]) for i in evaluated[m][u] if i >= 0] for m in evaluated}
        assert _cli_ids(capsys, *user, *plain) == want["text"]
        assert _cli_ids(capsys, *user, "--recommender", folders["text"]) == want["text"]
        assert _cli_ids(capsys, *user, "--recommender", folders["hybrid"]) == want["hybrid"]
        checked += 1
    assert checked >= 10
    # a new user's likes and a title query: plain and --recommender agree too
    likes = ["--likes", "Shingeki no Kyojin", "--likes", "Steins;Gate", "-k", "6"]
    assert _cli_ids(capsys, *likes, *plain) == _cli_ids(capsys, *likes, "--recommender", folders["text"])
    title = ["Death Note", "-k", "6"]
    assert _cli_ids(capsys, *title, *plain) == _cli_ids(capsys, *title, "--recommender", folders["text"])


def test_plain_likes_are_the_text_methods_recommend(demo, capsys):
    """`--likes` without --recommender: a new user of the text method fitted on the catalog."""
    from anirec.fitted import load_fitted

    catalog, catalog_path, _, folders = demo
    text = load_fitted(folders["text"]).recommender
    rows = [int(np.flatnonzero(catalog["Name"] == n)[0]) for n in ("Death Note", "K-On!")]
    liked = sp.csr_matrix((np.ones(2, np.float32), ([0, 0], rows)), shape=(1, len(catalog)))
    idx, _ = text.recommend(liked, 4)
    got = _cli_ids(capsys, "--likes", "Death Note", "--likes", "K-On!", "-k", "4", "--model", "tfidf",
                   "--catalog", catalog_path)
    assert got == catalog["MAL_ID"].to_numpy()[idx[0]].tolist()


def test_liked_franchises_with_a_fitted_folder(mal_dir, mal_catalog, capsys, tmp_path):
    """Every method honours the franchise filters (they once applied to the text path only): the most
    popular anime of the shared set hold the sequels of Shingeki no Kyojin, until left out (the
    default); --liked-franchises --any-per-franchise lets them back."""
    folder = tmp_path / "popular"
    assert run_cli(capsys, "fit", "--method", "popular", "--ratings", mal_dir, "--catalog", mal_catalog[1],
                   "--out", folder)[0] == 0
    args = ["--likes", "Shingeki no Kyojin", "-k", "100", "--recommender", folder]
    code, out, err = run_cli(capsys, "recommend", *args, "--json")
    assert code == 0, err
    payload = json.loads(out)
    titles = [r["title"] for r in payload["items"]]
    assert payload["query"]["filters"]["liked_franchises"] is False
    assert titles and not any(t.startswith("Shingeki no Kyojin") for t in titles)
    code, out, _ = run_cli(capsys, "recommend", *args, "--liked-franchises", "--any-per-franchise", "--json")
    back = [r["title"] for r in json.loads(out)["items"] if r["title"].startswith("Shingeki no Kyojin")]
    assert len(back) >= 2  # several seasons: one per franchise is off too


def test_id_too_large_for_int64_is_one_line(demo, capsys):
    """Issue 19 bug 16: --id 99999999999999999999 was an OverflowError traceback."""
    from helpers import expect_user_error

    _, catalog_path, _, folders = demo
    for where in (["--recommender", folders["text"]], ["--model", "tfidf", "--catalog", catalog_path]):
        err = expect_user_error(capsys, "recommend", *where, "--id", "99999999999999999999")
        assert "--id 99999999999999999999: no anime with that MAL_ID" in err and err.count("\n") == 1


def readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_python_api_runs_as_written(mal_dir, monkeypatch):
    """The README's Python examples, run as written from the project root on the shared catalog."""
    if mal_dir.resolve() != (ROOT.parent / "shared" / "data" / "mal").resolve():
        pytest.skip("the README's paths are ../shared/data/mal")
    # the serving and recommender examples (another block of the section writes the shared
    # out/mal/pairs.parquet: not run here)
    blocks = [b for b in readme_python_blocks() if "anirec.serving" in b or "anirec.recommenders" in b]
    assert len(blocks) >= 2
    monkeypatch.chdir(ROOT)
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)
    frame = scope["similar"]
    assert len(frame) == 10 and "Steins;Gate" not in frame["title"].tolist()
    assert scope["items"].shape == (5, 10) and (scope["items"] >= 0).all()


def test_query_rows_keep_to_candidates_and_never_bring_back_exclusions(demo):
    from anirec.errors import AnirecError
    from anirec.fitted import load_fitted
    from anirec.serving import Query, Served, answer

    catalog, _, _, folders = demo
    for method in ("text", "hybrid"):
        served = Served(catalog, load_fitted(folders[method]).recommender)
        for titles in (("Death Note",), ("Death Note", "K-On!")):
            even = tuple(range(0, len(catalog), 2))
            result = answer(served, Query(titles=titles, k=8, candidates=even, exclude=(0, 2, 4)))
            rows = np.flatnonzero(catalog["MAL_ID"].isin(result.frame["MAL_ID"]))
            assert len(rows) and set(rows) <= set(even) and not set(rows) & {0, 2, 4}
            assert result.call == ("similar_items" if len(titles) == 1 else "recommend")
        with pytest.raises(AnirecError, match="catalog rows in 0..43"):
            answer(served, Query(liked=(44,)))
