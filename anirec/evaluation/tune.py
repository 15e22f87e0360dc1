"""`anirec tune`: a grid of method parameters scored on the validation split only.

A tune config is an evaluation config (eval/tune-*.toml) whose ``[[methods]]`` entries may
give a parameter a list of values; every combination becomes one method of the run
(``name`` + ``key=value`` of the varied ones). The run is an evaluation with
``validation = true`` (:mod:`.validation`): the protocols are rebuilt inside the ratings that
no real protocol scores, so the grid never sees a scored target. Besides the evaluation's
usual outputs the folder gets ``grid.md``: NDCG@k of every combination per protocol, the
best of each protocol marked, which is what a default is chosen from.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..errors import AnirecError
from ..io import write_text
from ..recommenders import method_class
from .config import EvalConfig, MethodSpec
from .protocols import PROTOCOLS
from .runner import EvalOutcome, run_evaluation

GRID_FILE = "grid.md"


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def expand_grid(specs: list[MethodSpec]) -> list[MethodSpec]:
    """Every combination of the list-valued parameters of each entry, in the order given."""
    out = []
    for spec in specs:
        varied = {k: v for k, v in spec.params.items() if isinstance(v, list)}
        for name, values in varied.items():
            if not values:
                raise AnirecError(f"{spec.where}: {name} = []: give at least one value.")
        if not varied:
            out.append(spec)
            continue
        keys = list(varied)
        for combo in itertools.product(*(varied[k] for k in keys)):
            params = {**spec.params, **dict(zip(keys, combo))}
            label = " ".join(f"{k}={_label(v)}" for k, v in zip(keys, combo))
            out.append(replace(spec, name=f"{spec.name} {label}", params=params))
    return out


def grid_table(results: pd.DataFrame, specs: list[MethodSpec], k: int) -> pd.DataFrame:
    """One row per method: its parameters that vary across the run, then NDCG@k per protocol
    (and the share of new anime in mixed lists)."""
    metric = f"ndcg@{k}"
    wide = results[results["metric"] == metric].pivot(index="method", columns="protocol", values="value")
    new = results[(results["metric"] == f"new_share@{k}")].set_index("method")["value"]
    varied = sorted({key for s in specs for key in s.params
                     if len({repr(t.params.get(key)) for t in specs if t.method == s.method}) > 1})
    rows = []
    protocols = [p for p in PROTOCOLS if p in wide.columns]
    for s in specs:
        defaults = method_class(s.method).Params().to_dict()  # a parameter an entry leaves out is its default
        row = {"method": s.method, **{key: _label(s.params.get(key, defaults.get(key, ""))) for key in varied}}
        for protocol in protocols:
            row[f"{protocol} {metric}"] = wide.loc[s.name, protocol] if s.name in wide.index else float("nan")
        if s.name in new.index:
            row[f"mixed new_share@{k}"] = new[s.name]
        rows.append(row)
    return pd.DataFrame(rows)


def grid_markdown(table: pd.DataFrame, title: str) -> str:
    """The grid as markdown, the best value of each score column in bold."""
    scores = [c for c in table.columns if "@" in c and "new_share" not in c]
    best = {c: table[c].max() for c in scores}
    head = list(table.columns)
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = []
        for c in head:
            v = r[c]
            if isinstance(v, float):
                cell = "n/a" if pd.isna(v) else f"{v:.4f}"
                cells.append(f"**{cell}**" if c in best and v == best[c] else cell)
            else:
                cells.append(_label(v))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Scores on the validation split (anirec/evaluation/validation.py): the protocols rebuilt inside "
              "the ratings no real protocol scores; bold = best of its column."]
    return "\n".join(lines) + "\n"


def grid_config(cfg: EvalConfig) -> EvalConfig:
    """A tune config as the evaluation it runs: the grid expanded, on the validation split."""
    return replace(cfg, methods=expand_grid(cfg.methods), validation=True)


def run_tune(cfg: EvalConfig, echo=print) -> EvalOutcome:
    """Expand the grid, evaluate it on the validation split, write ``grid.md`` beside the results."""
    cfg = grid_config(cfg)
    outcome = run_evaluation(cfg, echo)
    specs = [s for s in cfg.method_specs() if s.name in set(outcome.results["method"])]
    table = grid_table(outcome.results, specs, cfg.k)
    sets = cfg.ratings if isinstance(cfg.ratings, str) else ", ".join(map(str, cfg.ratings or []))
    path = write_text(grid_markdown(table, f"Validation grid (k = {cfg.k}, ratings {sets})"), Path(cfg.out) / GRID_FILE)
    outcome.files.append(path)
    echo(f"wrote {path}")
    return outcome
