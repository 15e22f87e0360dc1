"""The evaluation's outputs: markdown tables, PNG plots, meta.json and the cold-anime list,
each written atomically, as one set: meta.json (written last) lists the files of its run, and
a run into the same folder removes what the previous run wrote and this one does not (its
paired.csv, cold_anime.txt, plots of protocols not run again), nothing else there."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import source_inputs, write_anime_ids
from ..io import atomic_path, check_outputs_not_inputs, read_json_manifest, write_text
from .metrics import RANK_BUCKETS
from .protocols import PROTOCOLS


# Columns of the markdown tables: (metric template, header); {k} is the headline k.
TABLE_COLUMNS = {
    "reference": [("nps@{k}", "mean NPS of found"), ("found@{k}", "found"), ("found_users@{k}", "users with a found rec"),
                  ("coverage@{k}", "coverage"), ("top100_share@{k}", "top-100 share")],
    "holdout": [("hit_rate@{k}", "hit rate@{k}"), ("precision@{k}", "precision@{k}"), ("recall@{k}", "recall@{k}"),
                ("ndcg@{k}", "NDCG@{k}"), ("mrr@{k}", "MRR@{k}"), ("coverage@{k}", "coverage@{k}"),
                ("top100_share@{k}", "top-100 share@{k}"), ("nps@{k}", "NPS of found@{k}"), ("found@{k}", "found@{k}")],
}
TABLE_COLUMNS["coldstart"] = TABLE_COLUMNS["holdout"]
TABLE_COLUMNS["mixed"] = [*TABLE_COLUMNS["holdout"][:7], ("new_share@{k}", "new anime in lists@{k}"),
                          ("hits_new@{k}", "hits on new@{k}"), ("hits_known@{k}", "hits on known@{k}")]
TITLES = {
    "reference": "Reference protocol: mean NPS of the recommendations found in the test split",
    "holdout": "Leakage-free holdout: held-out promoted anime as targets",
    "coldstart": "Cold start: recommending only anime with no ratings in any fitting data",
    "mixed": "Mixed: new anime (no fitting ratings) and known anime together, all anime candidates",
}
PLOTS = {"reference": ["nps@{k}"], "holdout": ["hit_rate@{k}", "ndcg@{k}"], "coldstart": ["hit_rate@{k}", "ndcg@{k}"],
         "mixed": ["hit_rate@{k}", "ndcg@{k}"]}


def _cell(r, metric: str) -> str:
    if r is None or pd.isna(r["value"]):
        return "n/a"
    if metric.startswith(("found@", "hits_")):
        return f"{r['value']:,.0f}"
    if pd.isna(r["ci_lo"]):
        return f"{r['value']:.3f}"
    return f"{r['value']:.3f} [{r['ci_lo']:.3f}, {r['ci_hi']:.3f}]"


def results_markdown(results: pd.DataFrame, k: int, meta: dict | None = None) -> str:
    """One markdown table per protocol: method rows, headline metrics as 'mean [95% CI]'."""
    lines = []
    idx = {(r.protocol, r.method, r.metric): r._asdict() for r in results.itertuples(index=False)}
    for protocol in [p for p in PROTOCOLS if p in set(results["protocol"])]:
        sub = results[results["protocol"] == protocol]
        methods = list(dict.fromkeys(sub["method"]))
        n_users = int(sub["n_users"].iloc[0])
        cols = [(m.format(k=k), h.format(k=k)) for m, h in TABLE_COLUMNS[protocol]]
        lines += [f"### {TITLES[protocol]} (k = {k}, {n_users:,} users)", "",
                  "| method | " + " | ".join(h for _, h in cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for m in methods:
            lines.append(f"| {m} | " + " | ".join(_cell(idx.get((protocol, m, c)), c) for c, _ in cols) + " |")
        lines.append("")
    boot = (meta or {}).get("config", {}).get("bootstrap", 1)
    lines.append("Values are means over users" + (" with 95% bootstrap intervals [lo, hi] (users resampled)" if boot else "")
                 + "; NPS = mean opinion (+1 promoter, 0 passive, -1 detractor) over found recommendations; "
                 "coverage = share of the candidates in anyone's list; top-100 share = share of list places taken by "
                 "the 100 most-rated anime of the protocol's data (popularity bias).")
    if meta:
        d = meta.get("data", {})
        bits = [f"seed {meta.get('seed')}", f"anirec {meta.get('anirec_version')}"]
        if "catalog" in d:
            bits.append(f"catalog descriptions {d['catalog']['description_hash'][:12]}")
        if d.get("split"):
            bits.append(f"split file {d['split']['file_hash'][:12]}")
        lines.append("Run: " + ", ".join(bits) + " (details in meta.json).")
        if d.get("validation"):
            v = d["validation"]
            lines.append(f"VALIDATION split, not the real protocols: {v['rows']:,} of {v['of_rows']:,} ratings, every "
                         f"rating a real protocol scores or holds out and every rating of its cold anime removed; "
                         f"protocols redrawn inside with seed {v['seed']}.")
    return "\n".join(lines) + "\n"


def _save_fig(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path


BASELINE_COLORS = {"random": "#c8c8c8", "popular": "#9a9a9a", "tfidf": "#b39b8e", "itemknn": "#6d4c41", "ease": "#3e2723"}


def _colors(methods: list[str]) -> list:
    """Muted greys/browns for the baselines, tab10 colours for the embedders."""
    import matplotlib.pyplot as plt

    palette = plt.get_cmap("tab10").colors
    out, j = [], 0
    for m in methods:
        if m in BASELINE_COLORS:
            out.append(BASELINE_COLORS[m])
        else:
            out.append(palette[j % len(palette)])
            j += 1
    return out


def plot_metric(results: pd.DataFrame, protocol: str, metric: str, path: Path) -> Path:
    """Bars of one metric per method (baselines grey), with the bootstrap interval as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = results[(results["protocol"] == protocol) & (results["metric"] == metric)]
    methods = sub["method"].tolist()
    vals = sub["value"].to_numpy(float)
    lo = np.nan_to_num(vals - sub["ci_lo"].to_numpy(float))
    hi = np.nan_to_num(sub["ci_hi"].to_numpy(float) - vals)
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(methods) + 2), 4))
    x = np.arange(len(methods))
    ax.bar(x, np.nan_to_num(vals), yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], color=_colors(methods), capsize=4)
    tops = np.fmax(vals, sub["ci_hi"].to_numpy(float))
    for xi, v, top in zip(x, vals, tops):
        if np.isfinite(v):
            ax.text(xi, top, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, methods, rotation=30, ha="right")
    ax.set_ylabel(metric)
    ax.set_title(f"{protocol}: {metric} ({int(sub['n_users'].iloc[0]) if len(sub) else 0:,} users, 95% bootstrap CI)")
    ax.axhline(0, color="black", linewidth=0.5)
    fig.tight_layout()
    try:
        return _save_fig(fig, path)
    finally:
        plt.close(fig)


def plot_nps_by_rank(results: pd.DataFrame, path: Path) -> Path:
    """NPS of found recommendations by rank bucket (0-2, 3-6, 7+), one panel per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = [p for p in PROTOCOLS if p in set(results["protocol"])]
    fig, axes = plt.subplots(1, len(protocols), figsize=(6 * len(protocols), 4), squeeze=False)
    buckets = [b[2] for b in RANK_BUCKETS]
    for ax, protocol in zip(axes[0], protocols):
        sub = results[results["protocol"] == protocol]
        methods = list(dict.fromkeys(sub["method"]))
        width = 0.8 / max(len(methods), 1)
        for j, (m, c) in enumerate(zip(methods, _colors(methods))):
            vals = [sub[(sub["method"] == m) & (sub["metric"] == f"nps_rank_{b}")]["value"].iloc[0] for b in buckets]
            ax.bar(np.arange(len(buckets)) + (j - (len(methods) - 1) / 2) * width, np.nan_to_num(vals), width, label=m, color=c)
        ax.set_xticks(np.arange(len(buckets)), [f"ranks {b}" for b in buckets])
        ax.set_title(f"{protocol}: NPS of found recs by rank")
        ax.axhline(0, color="black", linewidth=0.5)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    try:
        return _save_fig(fig, path)
    finally:
        plt.close(fig)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", s.replace("@", "_at_")).strip("_")


def paired_markdown(paired: pd.DataFrame) -> str:
    """One table per reference method: each method's NDCG@k minus the reference's, per protocol."""
    lines = []
    for ref in dict.fromkeys(paired["reference"]):
        sub = paired[paired["reference"] == ref]
        protocols = [p for p in PROTOCOLS if p in set(sub["protocol"])]
        metric = sub["metric"].iloc[0]
        lines += [f"### {metric.upper()} minus {ref}'s, paired over the same users (95% bootstrap CI)", "",
                  "| method | " + " | ".join(protocols) + " |", "|---|" + "---|" * len(protocols)]
        idx = {(r.protocol, r.method): r for r in sub.itertuples(index=False)}
        for m in dict.fromkeys(sub["method"]):
            cells = []
            for p in protocols:
                r = idx.get((p, m))
                cells.append("n/a" if r is None or pd.isna(r.ci_lo) else
                             f"{r.diff:+.3f} [{r.ci_lo:+.3f}, {r.ci_hi:+.3f}] {r.verdict}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("better / worse: the interval of the per-user difference excludes 0; no difference: it contains 0.")
    return "\n".join(lines) + "\n"


OUTPUT_FILES = ("results.csv", "results.md", "paired.csv", "cold_anime.txt", "nps_by_rank.png", "meta.json")
_PLOT_FILE = re.compile(rf"^({'|'.join(PROTOCOLS)})_(nps|hit_rate|ndcg)_at_\d+\.png$")


def is_output_name(name: str) -> bool:
    """Whether ``name`` is a file an evaluation writes into its --out folder."""
    return name in OUTPUT_FILES or bool(_PLOT_FILE.match(name))


def previous_outputs(out: Path) -> set[str]:
    """The files the evaluation that last wrote ``out`` left there: its meta.json's "outputs",
    or, for runs from before that list, the evaluation's file names present. Only names an
    evaluation writes count, so nothing else in the folder is ever taken for its output."""
    meta = read_json_manifest(out, "meta.json") if out.is_dir() else None
    if meta is None or not {"anirec_version", "protocols", "methods"} <= set(meta):
        return set()  # not an evaluation folder (or not ours): nothing of it is ours to remove
    listed = meta.get("outputs")
    names = listed if isinstance(listed, list) else [p.name for p in out.iterdir()]
    return {n for n in names if isinstance(n, str) and is_output_name(n)}


def check_output_set(cfg) -> None:
    """Refuse, before any work, an --out whose output set (this run's files, and the previous
    run's that it replaces) holds one of the evaluation's inputs."""
    out = Path(cfg.out).expanduser()
    plots = {f"{p}_{_slug(m.format(k=cfg.k))}.png" for p in PROTOCOLS for m in PLOTS[p]}
    names = sorted(set(OUTPUT_FILES) | plots | previous_outputs(out))
    check_outputs_not_inputs(
        [("--out", out / n) for n in names],
        [*source_inputs("--catalog", cfg.catalog, "catalog"), *source_inputs("--ratings", cfg.ratings, "ratings"),
         ("--split", cfg.split), ("--cold-anime", cfg.cold_anime), *(("--pairs", p) for p in cfg.pairs or []),
         ("--config", cfg.source or None)])


def write_outputs(out: Path, results: pd.DataFrame, meta: dict, cfg, cold_ids, paired: pd.DataFrame | None = None) -> list[Path]:
    """results.csv, results.md, paired.csv, plots, cold_anime.txt and meta.json, each written
    atomically; then the previous run's files this run did not write are removed, and meta.json
    (listing this run's files) comes last."""
    out.mkdir(parents=True, exist_ok=True)
    previous = previous_outputs(out)
    files = []
    with atomic_path(out / "results.csv") as tmp:
        results.to_csv(tmp, index=False, float_format="%.6g")
    files.append(out / "results.csv")
    markdown = results_markdown(results, cfg.k, meta)
    if paired is not None and len(paired):
        with atomic_path(out / "paired.csv") as tmp:
            paired.to_csv(tmp, index=False, float_format="%.6g")
        files.append(out / "paired.csv")
        markdown += "\n" + paired_markdown(paired)
    files.append(write_text(markdown, out / "results.md"))
    for protocol in [p for p in PROTOCOLS if p in set(results["protocol"])]:
        for metric in PLOTS[protocol]:
            metric = metric.format(k=cfg.k)
            files.append(plot_metric(results, protocol, metric, out / f"{protocol}_{_slug(metric)}.png"))
    files.append(plot_nps_by_rank(results, out / "nps_by_rank.png"))
    if cold_ids is not None:
        files.append(write_anime_ids(cold_ids, out / "cold_anime.txt",
                                     f"anirec cold-start anime (seed {cfg.seed}); exclude them from pairs/fine-tuning"))
    meta["outputs"] = sorted({f.name for f in files} | {"meta.json"})
    for name in sorted(previous - set(meta["outputs"])):
        stale = out / name
        if stale.is_symlink() or stale.is_file():
            with contextlib.suppress(OSError):
                stale.unlink()
    files.append(write_text(json.dumps(meta, indent=2, default=str) + "\n", out / "meta.json"))
    return files

