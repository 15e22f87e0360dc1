"""The one typed config loader (anirec.config) and the parameter bugs it closes: wrong types,
non-finite numbers, seeds out of range, huge sizes, files that are not UTF-8, a run with no
method, and a seed that never reached the method. Each case is one line and exit 2 (or, for
huge sizes, a clamped answer), on the demo data (44 anime, 40 users)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from anirec import config as C
from anirec.errors import AnirecError
from anirec.evaluation.config import EvalConfig, load_config
from anirec.fitting import method_spec
from anirec.recommenders import REGISTRY, make
from anirec.recommenders.ease import EASEParams
from anirec.recommenders.hybrid import HybridParams
from anirec.recommenders.text import TextParams

from helpers import expect_user_error, run_cli

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo"


@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory) -> Path:
    from anirec.build import build_catalog

    out = tmp_path_factory.mktemp("demo") / "catalog.parquet"
    build_catalog(DEMO, out)
    return out


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("anirec: error: "), err
    return err


def _fit(capsys, catalog, out, *args):
    return run_cli(capsys, "fit", "--ratings", DEMO, "--catalog", catalog, "--out", out, *args)


def _eval_toml(tmp_path, catalog, *lines: str) -> Path:
    """An eval config on the demo data (holdout only, no bootstrap) with ``lines`` appended;
    a key given in ``lines`` replaces the default one."""
    base = {"catalog": f'"{catalog}"', "ratings": f'"{DEMO}"', "protocols": '["holdout"]', "bootstrap": "0",
            "baselines": '["popular", "ease"]', "out": f'"{tmp_path / "eval"}"'}
    given = {line.split("=")[0].strip() for line in lines}
    text = "".join(f"{k} = {v}\n" for k, v in base.items() if k not in given) + "".join(f"{x}\n" for x in lines)
    path = tmp_path / "eval.toml"
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- the loader itself


@pytest.mark.parametrize("hint, value, expected", [
    (int, 3, 3), (float, 3, 3.0), (float, 2.5, 2.5), (bool, True, True), (str, "x", "x"),
    (int | None, None, None), (list[int], [5, 10], [5, 10]), (str | list[str], "a", "a"),
    (C.Paths, "a.parquet", ["a.parquet"]), (C.Tokens, 0, None), (C.Tokens, 256, 256), (C.Seed, 2**32 - 1, 2**32 - 1),
])
def test_coerce_accepts_and_normalises(hint, value, expected):
    got = C.coerce(value, hint, "x.toml line 1: key")
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("hint, value, says", [
    (int, "10", "key = '10': expected a whole number."),
    (int, True, "expected a whole number"),
    (int, 2.0, "expected a whole number"),
    (float, "1", "expected a number"),
    (float, math.nan, "key = nan: expected a finite number (not nan or inf)."),
    (float, -math.inf, "not nan or inf"),
    (float | None, math.inf, "not nan or inf"),
    (bool, 1, "expected true or false"),
    (str, 5, "expected a string"),
    (list[int], 5, "key = 5: expected a list of whole numbers."),
    (list[int], [5, "x"], "expected a list of whole numbers"),
    (list[str], "ease", "key = 'ease': expected a list of strings."),
    (str | list[str] | None, 5, "expected a string or a list of strings"),
    (C.Paths, 3, "expected a string or a list of strings"),
    (C.Seed, -1, "key = -1: expected a seed between 0 and 4294967295"),
    (C.Seed, 2**32, "expected a seed between 0 and 4294967295"),
    (C.Tokens, -5, "expected a number of tokens (0 or absent: the model's own)"),
])
def test_coerce_refuses_in_one_line_naming_the_key(hint, value, says):
    with pytest.raises(AnirecError) as exc:
        C.coerce(value, hint, "x.toml line 1: key")
    assert says in str(exc.value) and "\n" not in str(exc.value)
    assert str(exc.value).startswith("x.toml line 1: key")


def test_flags_read_as_flags():
    with pytest.raises(AnirecError, match=r"^--seed -1: expected a seed"):
        C.coerce(-1, C.Seed, "--seed")


def test_toml_lines_of_keys_in_tables_and_arrays_of_tables(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('k = 10\n# a comment\n[[methods]]\nname = "a"\nlam = 1\n\n[[methods]]\nlam = 2\n'
                    '[method]\n  "lam" = 3\n')
    doc = C.read_toml(path)
    assert doc.line("k") == 1 and doc.line("lam", "methods", 0) == 5 and doc.line("lam", "methods", 1) == 8
    assert doc.line("lam", "method") == 10 and doc.line("lam") is None and doc.where("nope") == str(path)


def test_unknown_keys_name_the_known_ones(tmp_path):
    with pytest.raises(AnirecError, match=r"x\.toml line 2: unknown key 'kk' \(known: .*\bks\b.*\)"):
        C.from_table(EvalConfig, {"k": 3, "kk": 3}, lambda key: f"x.toml line {2 if key == 'kk' else 1}")


def test_parse_param_keeps_toml_literals_and_strings():
    assert C.parse_param("lam=200") == ("lam", 200)
    assert C.parse_param("model=out/models/x") == ("model", "out/models/x")
    assert C.parse_param("lam=nan")[0] == "lam" and math.isnan(C.parse_param("lam=nan")[1])


# ----------------------------------------------------------------------------- parameters declared once


def test_hybrid_declares_only_its_own_parameters():
    own = set(HybridParams.__dict__.get("__annotations__", {}))
    assert own == {"power", "prior", "new_weight", "shrink"}
    names = {f.name for f in fields(HybridParams)}
    assert {f.name for f in fields(EASEParams)} | {f.name for f in fields(TextParams)} <= names
    p = HybridParams.from_dict({"lam": 50, "n_neighbors": 7, "tfidf_weight": 0.5}, "t")
    assert p.ease_params() == EASEParams(lam=50.0) and p.text_params() == TextParams(n_neighbors=7, tfidf_weight=0.5)


@pytest.mark.parametrize("raw, stored", [({}, None), ({"max_seq_length": 0}, None), ({"max_seq_length": 128}, 128)])
def test_max_seq_length_means_one_thing(raw, stored, tmp_path):
    """Absent or 0: the model's own setting, stored as None by every loader (text, hybrid, eval,
    finetune); the CLI flag reads the same."""
    from anirec.training import load_config as finetune_config

    assert make("text", raw).params.max_seq_length == stored
    assert make("hybrid", raw).params.max_seq_length == stored
    assert C.from_table(EvalConfig, raw, "x").max_seq_length == stored
    path = tmp_path / "ft.toml"
    path.write_text("".join(f"{k} = {v}\n" for k, v in raw.items()))
    assert finetune_config(path).max_seq_length == stored
    assert finetune_config(None, max_seq_length=raw.get("max_seq_length")).max_seq_length == stored


def test_every_committed_config_loads(tmp_path):
    from anirec.training import load_config as finetune_config

    from anirec.evaluation.tune import grid_config

    for path in sorted((ROOT / "eval").glob("*.toml")):
        cfg = load_config(path)
        (grid_config(cfg) if path.name.startswith("tune") else cfg).check()  # a tune config: its grid
    for path in sorted((ROOT / "finetune").glob("*.toml")):
        finetune_config(path).validate()


# ----------------------------------------------------------------------------- the seed is a parameter


def test_make_passes_the_seed_as_the_parameter():
    assert make("random", {}, seed=7).params.seed == 7
    assert make("random", {"seed": 3}, seed=7).params.seed == 3  # the method's own setting wins
    assert make("ease", {}, seed=7).params == EASEParams()  # no seed to set: nothing else changes
    with pytest.raises(AnirecError, match="seed = -1: expected a seed"):
        make("ease", {}, seed=-1)


def test_fit_seed_is_stored_and_used(demo_catalog, tmp_path, capsys):
    from anirec.fitted import load_fitted

    lists = {}
    for seed in ("7", "42"):
        code, _, err = _fit(capsys, demo_catalog, tmp_path / seed, "--method", "random", "--seed", seed)
        assert code == 0, err
        manifest = json.loads((tmp_path / seed / "manifest.json").read_text())
        assert manifest["params"]["seed"] == int(seed)
        rec = load_fitted(tmp_path / seed).recommender
        assert rec.params.seed == int(seed)
        liked = np.zeros((3, rec.n_items), np.float32)
        liked[[0, 1, 2], [0, 5, 9]] = 1
        lists[seed] = rec.recommend(liked, 10)[0]
    assert not np.array_equal(lists["7"], lists["42"])
    # the config's seed, unless the command line sets one
    cfg = tmp_path / "fit.toml"
    cfg.write_text('[method]\nmethod = "random"\nseed = 5\n')
    assert method_spec(config=cfg).params["seed"] == 5
    assert method_spec(config=cfg, seed=9).params["seed"] == 9
    assert "give the seed once" in one_line(expect_user_error(
        capsys, "fit", "--method", "random", "--param", "seed=3", "--seed", "4", "--ratings", DEMO,
        "--catalog", demo_catalog, "--out", tmp_path / "x"))


# ----------------------------------------------------------------------------- bug 5, 17: parameters


@pytest.mark.parametrize("args, says", [
    (["--method", "ease", "--param", "lam=nan"], "--param: lam = nan: expected a finite number (not nan or inf)."),
    (["--method", "ease", "--param", "lam=inf"], "not nan or inf"),
    (["--method", "hybrid", "--param", "power=-inf"], "not nan or inf"),
    (["--method", "random", "--seed", "-1"], "--seed -1: expected a seed between 0 and 4294967295"),
    (["--method", "random", "--seed", str(2**32)], "--seed 4294967296: expected a seed"),
    (["--method", "random", "--param", "seed=-1"], "seed = -1: expected a seed"),
    (["--method", "ease", "--seed", "-1"], "--seed -1"),  # checked even where no method reads it
    (["--method", "text", "--max-seq-length", "-3"], "--max-seq-length -3: expected a number of tokens"),
])
def test_bad_fit_parameters_are_one_line(demo_catalog, tmp_path, capsys, args, says):
    err = one_line(expect_user_error(capsys, "fit", "--ratings", DEMO, "--catalog", demo_catalog,
                                     "--out", tmp_path / "x", *args))
    assert says in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("line, says", [
    ("seed = -1", "line 7: seed = -1: expected a seed between 0 and 4294967295"),
    ("seed = 4294967296", "expected a seed"),
    ("holdout_fraction = nan", "holdout_fraction = nan: expected a finite number"),
    ("cold_fraction = inf", "not nan or inf"),
])
def test_bad_eval_numbers_are_one_line(demo_catalog, tmp_path, capsys, line, says):
    err = one_line(expect_user_error(capsys, "evaluate", "--config", _eval_toml(tmp_path, demo_catalog, line)))
    assert says in err
    assert not (tmp_path / "eval").exists()


def test_eval_seed_flag_is_checked(demo_catalog, tmp_path, capsys):
    err = expect_user_error(capsys, "evaluate", "--config", _eval_toml(tmp_path, demo_catalog), "--seed", "-1")
    assert "--seed -1: expected a seed" in one_line(err)
    assert "--seed -5" in one_line(expect_user_error(capsys, "cold-anime", "--catalog", demo_catalog, "--ratings",
                                                     DEMO, "--seed", "-5", "--out", tmp_path / "c.txt"))


# ----------------------------------------------------------------------------- bug 19: eval config types


@pytest.mark.parametrize("line, says", [
    ('k = "10"', "line 7: k = '10': expected a whole number."),
    ("ks = 5", "line 7: ks = 5: expected a list of whole numbers."),
    ("bootstrap = 1.5", "line 6: bootstrap = 1.5: expected a whole number."),
    ("ratings = 5", "line 6: ratings = 5: expected a string or a list of strings."),
    ('baselines = "ease"', "line 6: baselines = 'ease': expected a list of strings."),
    ('protocols = "holdout"', "expected a list of strings"),
    ("pairs = 3", "pairs = 3: expected a string or a list of strings"),
    ("min_promoted = true", "expected a whole number"),
    ("[[methods]]\nname = \"e2\"\nmethod = \"ease\"\nlam = \"big\"", "line 10: lam = 'big': expected a number."),
    ("[[methods]]\nmethod = 5", "line 8: method = 5: expected a string"),
    ("[[models]]\nmodel = \"tfidf\"\nn_neighbors = 2.5", "line 9: n_neighbors = 2.5: expected a whole number."),
    ("models = 5", "models = 5: write each entry as a [[models]] table"),
])
def test_eval_config_wrong_types_are_one_line(demo_catalog, tmp_path, capsys, line, says):
    err = one_line(expect_user_error(capsys, "evaluate", "--config", _eval_toml(tmp_path, demo_catalog, line)))
    assert says in err and str(tmp_path / "eval.toml") in err
    assert "unknown baseline 'e'" not in err
    assert not (tmp_path / "eval").exists()


def test_eval_config_lists_of_one_still_read(demo_catalog, tmp_path, capsys):
    """``pairs`` and ``compare_to`` took a lone string before the typed loader; they still do."""
    cfg = load_config(_eval_toml(tmp_path, demo_catalog, 'compare_to = "popular"', 'pairs = "p.parquet"'))
    assert cfg.compare_to == ["popular"] and cfg.pairs == ["p.parquet"]


# ----------------------------------------------------------------------------- bug 18: not UTF-8


@pytest.mark.parametrize("command", ["fit", "evaluate", "finetune"])
def test_config_that_is_not_utf8_is_one_line(demo_catalog, tmp_path, capsys, command):
    cfg = tmp_path / "bad.toml"
    cfg.write_bytes(b'[method]\nmethod = "ease"\n# caf\xe9 in Latin-1\n')
    extra = ["--ratings", DEMO, "--catalog", demo_catalog, "--out", tmp_path / "x"] if command == "fit" else []
    err = one_line(expect_user_error(capsys, command, "--config", cfg, *extra))
    assert f"{cfg} line 3: byte 0xe9 is not UTF-8" in err
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- bug 20: no methods


@pytest.mark.parametrize("args", [["-b", "none"], ["--config", "CONFIG"]])
def test_evaluate_without_methods_refuses_before_any_work(demo_catalog, tmp_path, capsys, args):
    cfg = _eval_toml(tmp_path, demo_catalog, "baselines = []")
    args = [str(cfg) if a == "CONFIG" else a for a in args]
    err = one_line(expect_user_error(capsys, "evaluate", "--catalog", demo_catalog, "--ratings", DEMO,
                                     "--protocols", "holdout", "--out", tmp_path / "eval", *args))
    assert "no method to evaluate" in err
    assert not (tmp_path / "eval").exists()


def test_evaluate_with_every_method_skipped_refuses(demo_catalog, tmp_path, capsys):
    cfg = _eval_toml(tmp_path, demo_catalog, "baselines = []",
                     '[[models]]\nmodel = "out/models/not-there"\noptional = true')
    err = expect_user_error(capsys, "evaluate", "--config", cfg)
    assert "skipped (optional = true)" in err
    assert "every method was skipped" in one_line(err.split("\n", 1)[1])
    assert not (tmp_path / "eval").exists()


# ----------------------------------------------------------------------------- bug 15: huge sizes


@pytest.fixture(scope="module")
def huge_folders(demo_catalog, tmp_path_factory):
    """Folders fitted with n_neighbors = 10**12 (the text and hybrid ones are TF-IDF)."""
    from helpers import cli_exit_code

    d = tmp_path_factory.mktemp("huge")
    for method in ("ease", "itemknn", "text", "hybrid"):
        extra = [] if method == "ease" else ["--param", f"n_neighbors={10**12}"]
        assert cli_exit_code(["fit", "--method", method, "--ratings", DEMO, "--catalog", demo_catalog,
                              "--out", d / method, *extra]) == 0
    return d


@pytest.mark.parametrize("method", ["ease", "itemknn", "text", "hybrid"])
def test_huge_k_and_neighbours_are_clamped_to_the_catalog(huge_folders, demo_catalog, capsys, method):
    from anirec.fitted import load_fitted

    folder = huge_folders / method
    for query in (["--id", "1"], ["--id", "1", "--id", "5114"]):  # similar_items, recommend
        code, out, err = run_cli(capsys, "recommend", "--recommender", folder, "-k", str(10**12), "--json", *query)
        assert code == 0, err
        assert 1 <= len(json.loads(out)["items"]) <= 44
    fitted = load_fitted(folder)
    rec = fitted.recommender
    liked = np.zeros((2, rec.n_items), np.float32)
    liked[0, 0] = liked[1, 3] = 1
    idx, _ = rec.recommend(liked, 10**12)
    assert idx.shape == (2, rec.n_items)
    small, _ = rec.recommend(liked, 5)  # the clamped list starts with the short one
    assert np.array_equal(idx[:, :5], small)
    if method != "ease":  # 10**12 neighbours serve what "every anime" does
        from anirec.data import load_ratings, read_catalog
        from anirec.interactions import opinions_on_catalog, user_items

        catalog = read_catalog(demo_catalog)
        ops, _ = opinions_on_catalog(load_ratings(DEMO), catalog["MAL_ID"].to_numpy())
        fit = user_items(ops, len(catalog)).fit_matrix
        every = make(method, {"n_neighbors": len(catalog)}).fit(fit, catalog)
        huge = make(method, {"n_neighbors": 10**12}).fit(fit, catalog)
        assert np.array_equal(every.recommend(liked, 10)[0], huge.recommend(liked, 10)[0])
        assert np.array_equal(huge.recommend(liked, 10)[0], rec.recommend(liked, 10)[0])


def test_huge_eval_k_is_scored_without_allocating_it(demo_catalog, tmp_path, capsys):
    code, out, err = run_cli(capsys, "evaluate", "--config", _eval_toml(tmp_path, demo_catalog, f"k = {10**9}"))
    assert code == 0, err
    import pandas as pd

    res = pd.read_csv(tmp_path / "eval" / "results.csv").set_index(["method", "metric"])["value"]
    # past the catalog, NDCG and hit rate are those of the whole catalog as one list
    code, _, err = run_cli(capsys, "evaluate", "--config", _eval_toml(tmp_path, demo_catalog, "k = 44"),
                           "--out", tmp_path / "k44")
    assert code == 0, err
    whole = pd.read_csv(tmp_path / "k44" / "results.csv").set_index(["method", "metric"])["value"]
    for method in ("popular", "ease"):
        for metric in ("ndcg", "hit_rate", "recall"):
            assert res[(method, f"{metric}@{10**9}")] == pytest.approx(whole[(method, f"{metric}@44")])


def test_ndcg_past_the_list_is_unchanged():
    """The clamped discount table gives the same NDCG as the full one did."""
    import scipy.sparse as sp

    from anirec.evaluation.metrics import ndcg_at_k

    recs = np.array([[3, 1, -1], [0, 2, 4]])
    relevant = sp.csr_matrix(np.array([[0, 1, 0, 1, 1, 1], [1, 0, 0, 0, 1, 0]], np.float32))
    for k in (1, 2, 3, 5, 50, 10**9):
        discount = 1.0 / np.log2(np.arange(2, min(k, 60) + 2))
        hits = np.array([[1, 1, 0], [1, 0, 1]], float)[:, :k]
        n_rel = np.array([4, 2])
        ideal = np.r_[0, np.cumsum(discount)][np.minimum(n_rel, k)]
        expected = (hits * discount[: hits.shape[1]]).sum(axis=1) / ideal
        np.testing.assert_allclose(ndcg_at_k(recs, relevant, k), expected)


# ----------------------------------------------------------------------------- help text


def _help_brackets(command) -> set[str]:
    words = set()
    for param in command.params:
        words |= set(re.findall(r"\[+[A-Za-z][\w-]*\]+", (getattr(param, "help", None) or "").replace("\\", "")))
    return words


def test_help_shows_brackets_as_written(capsys, monkeypatch):
    """rich markup ate ``[method]``, ``[[methods]]`` and defaults like ``[cosine]``: every bracketed
    word of an option's help is printed by --help."""
    import typer.main

    from anirec.cli import main  # noqa: F401  (registers every command)

    try:
        from anirec.cli.app import app  # where house's cli split puts the typer app
    except ImportError:
        from anirec.cli import app

    monkeypatch.setenv("COLUMNS", "400")
    group = typer.main.get_command(app)
    seen = set()
    for name, command in group.commands.items():
        words = {w.replace("\\", "") for w in _help_brackets(command)}
        if not words:
            continue
        code, out, _ = run_cli(capsys, name, "--help")
        assert code == 0
        missing = [w for w in words if w not in out]
        assert not missing, f"`anirec {name} --help` lost {missing}"
        seen |= words
    assert {"[method]", "[[methods]]", "[[models]]", "[cosine]", "[auto]"} <= seen


# ----------------------------------------------------------------------------- fuzz


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value)


SCALARS = st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(), st.booleans(),
                    st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
                    st.sampled_from(["", "10", "ease", "nan", "[[methods]]", "../x", "\\"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(["a", "k"]), inner, max_size=2)),
                      max_leaves=4)
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
EVAL_KEYS = sorted(f for f in C.field_types(EvalConfig) if f not in ("models", "methods", "source", "catalog", "out"))


def _one_line_or_nothing(capsys, tmp_path, *args):
    """Run and expect exit 2 with one line, never a traceback, and nothing written."""
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (code, out, err)
    assert not (tmp_path / "o").exists()
    return err


@FUZZ
@given(key=st.sampled_from(EVAL_KEYS), value=VALUES)
def test_fuzz_eval_config_values(tmp_path, capsys, key, value):
    cfg = tmp_path / "f.toml"
    cfg.write_text(f"{key} = {_toml(value)}\n", encoding="utf-8")
    # a missing catalog: whatever the value, nothing can run
    err = _one_line_or_nothing(capsys, tmp_path, "evaluate", "--config", cfg, "--catalog", tmp_path / "none.parquet",
                               "--out", tmp_path / "o")
    if "expected" in err:
        assert f"{key} = " in err


@FUZZ
@given(method=st.sampled_from(sorted(REGISTRY)), data=st.data())
def test_fuzz_method_parameters(tmp_path, capsys, method, data):
    from anirec.recommenders import method_class

    key = data.draw(st.sampled_from(sorted(C.field_types(method_class(method).Params)) + ["nope"]))
    value = data.draw(VALUES)
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[method]\nmethod = "{method}"\n{key} = {_toml(value)}\n', encoding="utf-8")
    # fit: the [method] table, then the same value as --param
    _one_line_or_nothing(capsys, tmp_path, "fit", "--config", cfg, "--ratings", DEMO, "--catalog", tmp_path / "none",
                         "--out", tmp_path / "o")
    _one_line_or_nothing(capsys, tmp_path, "fit", "--method", method, "--param", f"{key}={_toml(value)}",
                         "--ratings", DEMO, "--catalog", tmp_path / "none", "--out", tmp_path / "o")
    # evaluate: the same table as a [[methods]] entry
    cfg.write_text(f'baselines = []\n[[methods]]\nmethod = "{method}"\n{key} = {_toml(value)}\n', encoding="utf-8")
    _one_line_or_nothing(capsys, tmp_path, "evaluate", "--config", cfg, "--catalog", tmp_path / "none.parquet",
                         "--out", tmp_path / "o")


@FUZZ
@given(data=st.data())
def test_fuzz_finetune_config_values(tmp_path, capsys, data):
    from anirec.training import FinetuneConfig

    key = data.draw(st.sampled_from(sorted(C.field_types(FinetuneConfig))))
    cfg = tmp_path / "ft.toml"
    cfg.write_text(f"{key} = {_toml(data.draw(VALUES))}\n", encoding="utf-8")
    # no base, catalog or pairs (unless the value set one): never trains
    _one_line_or_nothing(capsys, tmp_path, "finetune", "--config", cfg, "--out", tmp_path / "o",
                         "--catalog", tmp_path / "none.parquet")
