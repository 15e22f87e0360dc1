"""The validation split never touches a scored target, and `anirec tune` runs a grid on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anirec import evaluation as ev
from anirec.evaluation.tune import expand_grid
from anirec.evaluation.validation import scored_rows, validation_split, without_outer_cold

from helpers import run_cli

N_ITEMS = 40


@pytest.fixture(scope="module")
def opinions():
    """60 users with 15-25 ratings each on 40 anime, a third of the rows protected (pairs rows)."""
    rng = np.random.default_rng(3)
    rows = []
    for u in range(60):
        for i in rng.choice(N_ITEMS, rng.integers(15, 26), replace=False):
            rows.append((u + 1000, int(i), int(rng.choice([1, 1, 1, 0, -1])), bool(rng.random() < 0.33)))
    frame = pd.DataFrame(rows, columns=["user_id", "item", "opinion", "protected"])
    return frame.assign(anime_id=frame["item"] + 1)  # catalog ids 1..40


def _keys(frame_or_matrix, users=None) -> set:
    if isinstance(frame_or_matrix, pd.DataFrame):
        return set(zip(frame_or_matrix["user_id"], frame_or_matrix["item"]))
    m = frame_or_matrix.tocoo()
    return set(zip(users[m.row], m.col))


def test_the_validation_split_never_touches_the_scored_targets(opinions):
    cfg = ev.EvalConfig(catalog="unused", seed=5, cold_fraction=0.2, holdout_fraction=0.2, min_promoted=2)
    catalog_ids = np.arange(N_ITEMS) + 1
    outer, _ = ev.build_tasks(cfg, ["holdout", "coldstart", "mixed"], catalog_ids, None, opinions, {})
    cold = outer[1].candidates
    split = validation_split(opinions, cold, cfg)
    val = _keys(split.opinions)
    assert len(val) > 0.4 * len(opinions)
    for task in outer:  # no target, and no rating a protocol scores, of any real protocol
        assert not val & _keys(task.relevant, task.users)
        assert not val & _keys(task.rated, task.users)
    assert not np.isin(split.opinions["item"], cold).any()  # not one rating of a cold anime
    # what is left is exactly what every protocol fits on: rows in no protocol's scored set
    kept = opinions[~scored_rows(opinions, cold, cfg.holdout_fraction, cfg.min_promoted, cfg.seed)]
    assert _keys(kept) == val
    users = np.unique(opinions["user_id"])
    for task in outer:  # every validation opinion (+1/-1) is in each protocol's fit matrix
        fit_users = np.unique(opinions["user_id"])
        assert task.fit.shape[0] == len(fit_users)
        fit = _keys(task.fit, users)
        assert _keys(split.opinions[split.opinions["opinion"] != 0]) <= fit
    # the protocols drawn inside it are new draws, with their own cold anime among the warm ones
    inner_cfg = ev.EvalConfig(catalog="unused", seed=split.seed, cold_fraction=0.2)
    inner, _ = ev.build_tasks(inner_cfg, ["holdout", "coldstart", "mixed"], catalog_ids, None, split.opinions, {})
    assert not np.isin(inner[1].candidates, cold).any() and len(inner[1].candidates) > 0
    without_outer_cold(inner, split.outer_cold)
    for task in inner:
        assert _keys(task.relevant, task.users) <= val
        # the real cold anime (no rating left, never a target) are no candidate in any of them
        assert not np.isin(task.candidates, cold).any() and len(task.candidates) > 0
    assert len(inner[0].candidates) == N_ITEMS - len(cold)


def test_a_grid_expands_every_combination_in_order():
    spec = ev.MethodSpec("cEASE", "cease", {"alpha": [1.0, 10.0], "lam": [100.0, 200.0], "dims": 64})
    names = [s.name for s in expand_grid([spec, ev.MethodSpec("ease", "ease")])]
    assert names == ["cEASE alpha=1 lam=100", "cEASE alpha=1 lam=200", "cEASE alpha=10 lam=100",
                     "cEASE alpha=10 lam=200", "ease"]
    assert expand_grid([spec])[3].params == {"alpha": 10.0, "lam": 200.0, "dims": 64}


def test_tune_cli_scores_a_grid_on_the_validation_split(tmp_path, capsys):
    from helpers import write_tiny_mal

    data = write_tiny_mal(tmp_path / "mal", n_anime=12, n_users=120)
    code, _, _ = run_cli(capsys, "build", "--data", data, "--out", tmp_path / "catalog.parquet")
    assert code == 0
    (tmp_path / "tune.toml").write_text(f"""
catalog = "{tmp_path / 'catalog.parquet'}"
ratings = "{data}"
out = "{tmp_path / 'tune'}"
baselines = []
protocols = ["holdout", "coldstart", "mixed"]
ks = [5]
k = 5
bootstrap = 20
cold_fraction = 0.25

[[methods]]
name = "EASE"
method = "ease"
lam = [10.0, 100.0]
""")
    code, out, err = run_cli(capsys, "tune", "--config", tmp_path / "tune.toml")
    assert code == 0, err
    assert "validation split:" in out
    grid = (tmp_path / "tune" / "grid.md").read_text()
    assert "| ease | 10 |" in grid and "| ease | 100 |" in grid
    assert "VALIDATION split" in (tmp_path / "tune" / "results.md").read_text()
    assert not (tmp_path / "tune" / "cold_anime.txt").exists()
