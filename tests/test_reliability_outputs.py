"""Issue 19, lost data: no output ever replaces or deletes something anirec did not make.

One test per reproduction of the issue (bugs 1, 2, 3, 4, 6 and 24, numbered as there); each
failed before its fix. The concurrency tests run two real processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import TINY_PAIRS_OPTIONS, expect_user_error, run_cli
from test_reliability import _no_work, one_error_line, tiny, tiny_catalog  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent

def fit_args(tiny, catalog, out, method="popular"):
    return ["fit", "--method", method, "--ratings", tiny, "--catalog", catalog, "--out", out]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def method_of(folder: Path) -> str:
    from anirec.fitted import load_fitted

    return load_fitted(folder).method


# ------------------------------------------------------------------ 1. replace only a folder of one's own kind


def test_fit_and_export_replace_only_a_folder_of_their_own_kind(tiny, tiny_catalog, tiny_model_path, tmp_path, capsys):
    project = tmp_path / "webapp"  # a web project: its manifest.json is not ours
    project.mkdir()
    (project / "manifest.json").write_text('{"name": "my app", "icons": []}\n')
    (project / "index.html").write_text("<html>years of work</html>")
    fitted, export = tmp_path / "fitted", tmp_path / "export"
    export_args = ["export", "--catalog", tiny_catalog, "--model", tiny_model_path, "--cache-dir", tmp_path / "cache",
                   "--no-progress", "--out"]
    assert run_cli(capsys, *fit_args(tiny, tiny_catalog, fitted))[0] == 0
    code, _, err = run_cli(capsys, *export_args, export)
    assert code == 0, err
    before = {p: snapshot(p) for p in (project, fitted, export)}

    for command, target, kind in [(fit_args(tiny, tiny_catalog, project), project, "fitted recommender"),
                                  (fit_args(tiny, tiny_catalog, export), export, "fitted recommender"),
                                  ([*export_args, fitted], fitted, "export"),
                                  ([*export_args, project], project, "export")]:
        line = one_error_line(expect_user_error(capsys, *command))
        assert line.startswith(f"anirec: error: --out {target}:") and kind in line, line
    assert {p: snapshot(p) for p in before} == before

    # A folder of the command's own kind is still replaced.
    assert run_cli(capsys, *fit_args(tiny, tiny_catalog, fitted, "ease"))[0] == 0
    assert method_of(fitted) == "ease"
    code, _, err = run_cli(capsys, *export_args, export, "--format", "parquet")
    assert code == 0, err
    assert json.loads((export / "manifest.json").read_text())["format"] == "parquet"


# ------------------------------------------------------------------ 2. an output that is an input


def test_an_output_that_is_an_input_is_refused_before_any_work(tiny, tiny_catalog, tmp_path, capsys, monkeypatch):
    ratings = tiny / "rating_complete.csv"
    as_split = tmp_path / "pairs.split.parquet"  # a ratings parquet that `pairs --out pairs.parquet` would overwrite
    pd.read_csv(ratings).to_parquet(as_split)
    fitted = tmp_path / "fitted"
    assert run_cli(capsys, *fit_args(tiny, tiny_catalog, fitted))[0] == 0
    inside = fitted / "my_ratings.csv"  # an input inside the folder a fit replaces whole
    inside.write_bytes(ratings.read_bytes())
    link = tmp_path / "link.csv"
    link.symlink_to(tiny / "anime.csv")
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    cold = eval_dir / "cold_anime.txt"  # evaluate writes its cold-anime list under this name
    cold.write_text("3\n")
    watched = [ratings, as_split, tiny / "anime.csv", tiny / "anime_with_synopsis.csv", tiny_catalog, inside, cold]
    before = {p: p.read_bytes() for p in watched}

    for mod, name in [("anirec.build", "load_catalog"), ("anirec.pairs", "open_catalog"),
                      ("anirec.evaluation.runner", "load_inputs"), ("anirec.evaluation", "_load_catalog"),
                      ("anirec.fitting", "read_catalog"), ("anirec.training.data", "read_pairs"),
                      ("anirec.distill", "resolve_model")]:
        monkeypatch.setattr(f"{mod}.{name}", _no_work)
    pairs = ["pairs", "--catalog", tiny_catalog, *TINY_PAIRS_OPTIONS]
    cases = [
        ([*pairs, "--ratings", tiny, "--out", ratings], "--out", "--ratings"),
        ([*pairs, "--ratings", as_split, "--out", tmp_path / "pairs.parquet"], "--split-out", "--ratings"),
        ([*pairs, "--ratings", tiny, "--out", tmp_path / "p.parquet", "--split-out", tiny_catalog], "--split-out", "--catalog"),
        (["build", "--data", tiny, "--out", tiny / "anime.csv"], "--out", "--data"),
        (["build", "--data", tiny, "--out", tiny.parent / "nosuch" / ".." / tiny.name / "anime_with_synopsis.csv"], "--out", "--data"),
        (["build", "--data", tiny, "--out", link], "--out", "--data"),
        (["build", "--data", tiny, "--ratings", as_split, "--out", tmp_path / "." / "pairs.split.parquet"], "--out", "--ratings"),
        (["cold-anime", "--catalog", tiny_catalog, "--ratings", tiny, "--out", tiny_catalog], "--out", "--catalog"),
        (["cold-anime", "--catalog", tiny_catalog, "--ratings", tiny, "--out", ratings], "--out", "--ratings"),
        (["evaluate", "--catalog", tiny_catalog, "--ratings", tiny, "-b", "random", "--cold-anime", cold, "--out", eval_dir],
         "--out", "--cold-anime"),
        (fit_args(inside, tiny_catalog, fitted), "--out", "--ratings"),
        (["finetune", "--base", fitted, "--catalog", tiny_catalog, "--pairs", as_split, "--out", fitted, "--overwrite"],
         "--out", "--base"),
        (["distill", "--model", fitted, "--out", fitted], "--out", "--model"),
    ]
    for command, output, given in cases:
        line = one_error_line(expect_user_error(capsys, *command))
        assert line.startswith(f"anirec: error: {output} ") and f"the {given} input" in line, (command, line)
    assert {p: p.read_bytes() for p in watched} == before
    assert link.is_symlink() and not (tmp_path / "p.parquet").exists()


# ------------------------------------------------------------------ 3. a user's .NAME.old


def test_a_users_dot_old_folder_is_never_adopted_or_deleted(tiny, tiny_catalog, tmp_path, capsys):
    mine = tmp_path / ".rec.old"  # the user's, by chance under the name anirec once parked folders as
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    rec = tmp_path / "rec"
    for method in ("popular", "ease"):  # a new folder, then replacing it
        code, _, err = run_cli(capsys, *fit_args(tiny, tiny_catalog, rec, method))
        assert code == 0, err
        assert method_of(rec) == method and "thesis.tex" not in os.listdir(rec)
        assert snapshot(mine) == {"thesis.tex": b"years of work"}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [".rec.old"]


_KILLED_MID_SWAP = """
import os, sys
from pathlib import Path
from anirec.io import atomic_dir

real_replace = os.replace

def replace(src, dst):
    real_replace(src, dst)
    if str(dst).endswith(".old"):
        os._exit(9)  # killed right after the previous folder was parked, before the new one moved in

os.replace = replace
with atomic_dir(Path(sys.argv[1])) as tmp:
    (tmp / "weights").write_text("new")
"""


def test_a_write_killed_mid_swap_is_put_back_by_the_next_write(tmp_path):
    from anirec.io import atomic_dir

    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("previous")
    assert subprocess.run([sys.executable, "-c", _KILLED_MID_SWAP, str(target)], cwd=ROOT).returncode == 9
    assert not target.exists()  # parked under anirec's own name, with its marker
    with pytest.raises(RuntimeError):
        with atomic_dir(target):
            raise RuntimeError("this write fails too")
    assert snapshot(target) == {"weights": b"previous"}
    assert os.listdir(tmp_path) == ["model"]


# ------------------------------------------------------------------ 4. two writers, a reader during a refit


_SLOW_FIT = """
import os, sys, time
from anirec.cli import main
from anirec.recommenders.simple import PopularRecommender

fit = PopularRecommender.fit

def slow_fit(self, *args):  # a fit that takes until the test says it is done (at most two minutes)
    print("fitting", flush=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return fit(self, *args)

PopularRecommender.fit = slow_fit
main(sys.argv[2:])
"""


def test_a_second_fit_to_the_same_folder_exits_2_naming_the_first(tiny, tiny_catalog, tmp_path, capsys):
    rec = tmp_path / "rec"
    done = tmp_path / "first-may-finish"
    first = subprocess.Popen([sys.executable, "-c", _SLOW_FIT, str(done), *map(str, fit_args(tiny, tiny_catalog, rec))],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "fitting"
        second = subprocess.run([sys.executable, "-m", "anirec", *map(str, fit_args(tiny, tiny_catalog, rec, "ease"))],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        done.touch()
        assert second.returncode == 2, second.stderr
        line = one_error_line(second.stderr)
        assert f"--out {rec}:" in line and f"pid {first.pid}" in line, line
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert method_of(rec) == "popular"  # the first fit's result, whole
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".rec")], os.listdir(tmp_path)


_REFITS = """
import sys, time
from anirec.cli import main

args, rounds = sys.argv[2:], int(sys.argv[1])
for i in range(rounds):
    try:
        main([*args, "--method", ("popular", "ease")[i % 2]])
    except SystemExit as exc:
        if exc.code:
            raise
    time.sleep(1.0)  # a real refit takes seconds: a reader's one retry always fits in between
print("done", flush=True)
"""


def test_readers_survive_a_refit_replacing_the_folder(tiny, tiny_catalog, tmp_path, capsys):
    from anirec.fitted import load_fitted

    rec = tmp_path / "rec"
    assert run_cli(capsys, *fit_args(tiny, tiny_catalog, rec))[0] == 0
    args = ["fit", "--ratings", tiny, "--catalog", tiny_catalog, "--out", rec]
    writer = subprocess.Popen([sys.executable, "-c", _REFITS, "10", *map(str, args)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, loads = set(), 0
    try:
        while writer.poll() is None:
            seen.add(load_fitted(rec).method)  # raises (a traceback or an AnirecError) if a swap breaks the read
            loads += 1
        out, err = writer.communicate()
    finally:
        writer.kill()
    assert writer.returncode == 0 and "done" in out, err
    assert loads > 20 and seen == {"popular", "ease"}, (loads, seen)
    code, out, err = run_cli(capsys, "recommend", "--recommender", rec, "--id", "1", "-k", "2", "--json")
    assert code == 0, err


# ------------------------------------------------------------------ 6. evaluate replaces its output set


@pytest.mark.parametrize("older_meta", [False, True], ids=["listed", "older-run"])
def test_evaluate_replaces_its_output_set_as_a_whole(tiny, tiny_catalog, tmp_path, capsys, older_meta):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    common = ["evaluate", "--catalog", tiny_catalog, "--ratings", tiny, "--bootstrap", "0", "--out", out]
    code, _, err = run_cli(capsys, *common, "-b", "random,popular", "--protocols", "holdout,coldstart", "--compare-to", "random")
    assert code == 0, err
    assert {"paired.csv", "cold_anime.txt", "coldstart_ndcg_at_10.png"} <= set(os.listdir(out))
    if older_meta:  # meta.json of a run made before meta.json listed its outputs
        meta = json.loads((out / "meta.json").read_text())
        meta.pop("outputs", None)
        (out / "meta.json").write_text(json.dumps(meta))
    code, _, err = run_cli(capsys, *common, "-b", "popular", "--protocols", "holdout")
    assert code == 0, err
    written = {"results.csv", "results.md", "holdout_hit_rate_at_10.png", "holdout_ndcg_at_10.png", "nps_by_rank.png",
               "meta.json"}
    assert set(os.listdir(out)) == written | {"notes.md"}
    assert sorted(json.loads((out / "meta.json").read_text())["outputs"]) == sorted(written)
    assert set(pd.read_csv(out / "results.csv")["method"]) == {"popular"}


# ------------------------------------------------------------------ 24. --out . and a symlinked --out


def test_fit_out_dot_and_through_a_symlink(tiny, tiny_catalog, tmp_path, capsys):
    here = tmp_path / "here"
    here.mkdir()
    proc = subprocess.run([sys.executable, "-m", "anirec", *map(str, fit_args(tiny, tiny_catalog, "."))], cwd=here,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert method_of(here) == "popular"

    real, link = tmp_path / "real", tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)  # dangling until the first fit makes the folder
    for method in ("popular", "ease", "popular"):
        code, _, err = run_cli(capsys, *fit_args(tiny, tiny_catalog, link, method))
        assert code == 0, err
        assert link.is_symlink() and real.is_dir() and method_of(link) == method
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")], os.listdir(tmp_path)
