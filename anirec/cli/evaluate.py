"""`anirec evaluate` and `anirec cold-anime`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import app
from .. import evaluation as ev
from ..config import override
from .options import backend_option, max_seq_length_option, plain, seed_option

PROTOCOL_HELP = ", ".join(ev.PROTOCOLS)


def _split_list(values: List[str], everything: tuple[str, ...]) -> list[str]:
    """Repeatable options that also take comma lists: -b random,popular -b tfidf; 'none', 'all'."""
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    return [] if items in ([], ["none"]) else (list(everything) if items == ["all"] else items)


@app.command()
def evaluate(
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file (see eval/*.toml); the flags below override it."),
    catalog: Optional[str] = typer.Option(None, "--catalog", help="Catalog parquet from `anirec build`, or a Kaggle folder (built in memory)."),
    ratings: Optional[List[str]] = typer.Option(None, "--ratings", help="Ratings (rating_complete.csv, parquet, or folder) for the holdout, cold-start and mixed protocols; repeat to stack sets with disjoint users."),
    split: Optional[str] = typer.Option(None, "--split", help="The train/test split saved by `anirec pairs` (NAME.split.parquet): the reference protocol."),
    models: Optional[List[str]] = typer.Option(None, "--models", "-m", help=plain("Text method on this embedder (repeatable): NAME=PATH_OR_ID or PATH_OR_ID. Replaces the config's [[models]].")),
    baselines: Optional[List[str]] = typer.Option(None, "--baselines", "-b", help=plain(f"Methods with default parameters (repeatable or comma list; 'none', 'all' = {', '.join(ev.BASELINES)}); 'hybrid' too. Parameters: [[methods]] in a --config.")),
    protocols: Optional[List[str]] = typer.Option(None, "--protocols", help=f"Protocols (repeatable or comma list): {PROTOCOL_HELP} (default: all)."),
    k: Optional[int] = typer.Option(None, "-k", help="Recommendations per user in the reference protocol and the headline k of the tables (default: 10)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder: results.csv, results.md, *.png, meta.json (default: out/eval)."),
    seed: Optional[int] = seed_option(None, "Seed of the holdout, the cold anime, random and the bootstrap, 0..2^32-1 (default: 42)."),
    max_seq_length: Optional[int] = max_seq_length_option("Tokens per description for models without their own setting in the config."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Embedding cache folder (default: $ANIREC_CACHE, else ~/.cache/anirec/embeddings)."),
    bootstrap: Optional[int] = typer.Option(None, "--bootstrap", help="Bootstrap resamples for the confidence intervals (0: off) (default: 1000)."),
    pairs: Optional[List[str]] = typer.Option(None, "--pairs", help="Pairs file(s) the fine-tuned models were trained on: checked to hold no cold-start anime."),
    cold_anime: Optional[Path] = typer.Option(None, "--cold-anime", help="Use this cold-start anime list (from `anirec cold-anime`) instead of drawing one."),
    candidates: Optional[str] = typer.Option(None, "--candidates", help=plain("What the holdout and mixed protocols may recommend: 'released' (default: the anime premiered by the latest season the ratings rate; later ones cannot be targets) or 'all'.")),
    backend: Optional[str] = backend_option(None, " For models without their own `backend` in the config."),
    compare_to: Optional[List[str]] = typer.Option(None, "--compare-to", help="Also report every method's NDCG@k minus this method's, paired over the same users, with a CI that says better/worse/no difference (repeatable; a method name of this run, e.g. tfidf)."),
) -> None:
    """Compare recommenders: reference NPS, leakage-free holdout, cold start and mixed (new + known anime)."""
    cfg = ev.load_config(config) if config else ev.EvalConfig()
    # Flags override the config file; None means "not given".
    overrides = {
        "catalog": catalog, "ratings": list(ratings) if ratings else None, "split": split, "k": k, "seed": seed,
        "max_seq_length": max_seq_length, "bootstrap": bootstrap, "backend": backend,
        "out": str(out) if out is not None else None,
        "cache_dir": str(cache_dir) if cache_dir is not None else None,
        "cold_anime": str(cold_anime) if cold_anime is not None else None,
        "candidates": candidates,
        "pairs": list(pairs) if pairs is not None else None,
        "models": [ev.parse_model_arg(m) for m in models] if models is not None else None,
        "baselines": _split_list(baselines, ev.BASELINES) if baselines is not None else None,
        "protocols": _split_list(protocols, ev.PROTOCOLS) if protocols is not None else None,
        # repeatable, not a comma list: method names may hold commas ("... (cosine, 40 CPU steps)")
        "compare_to": [c.strip() for c in compare_to if c.strip()] if compare_to is not None else None,
    }
    override(cfg, overrides, {"k": "-k", "models": "--models", "baselines": "--baselines"})
    outcome = ev.run_evaluation(cfg, echo=typer.echo)
    typer.echo("")
    typer.echo(ev.results_markdown(outcome.results, cfg.k, outcome.meta))
    if outcome.paired is not None and len(outcome.paired):
        typer.echo(ev.paired_markdown(outcome.paired))


@app.command("cold-anime")
def cold_anime_cmd(
    catalog: str = typer.Option(..., "--catalog", help="Catalog parquet from `anirec build` (or a Kaggle folder)."),
    ratings: List[str] = typer.Option(..., "--ratings", help="The ratings the evaluation will use (repeatable)."),
    out: Path = typer.Option(Path("cold_anime.txt"), "--out", help="Text file: one MAL_ID per line."),
    fraction: float = typer.Option(0.15, "--fraction", help="Share of the rated catalog anime to hold out as cold."),
    seed: int = seed_option(42, "Same seed as `anirec evaluate --seed` gives the same list."),
) -> None:
    """Write the cold-start anime list, so pairs/fine-tuning can leave those anime out."""
    from ..data import load_ratings, ratings_label, source_inputs
    from ..io import check_outputs_not_inputs, check_writable_output

    check_writable_output(out, "file", "--out")
    check_outputs_not_inputs([("--out", out)], [*source_inputs("--catalog", catalog, "catalog"), *source_inputs("--ratings", ratings, "ratings")])
    cat, _ = ev._load_catalog(catalog)
    ids = ev.cold_anime_ids(load_ratings(ratings), cat["MAL_ID"].to_numpy(), fraction, seed)
    ev.write_anime_ids(ids, out, f"anirec cold-start anime: fraction {fraction}, seed {seed}, ratings {ratings_label(ratings)}")
    typer.echo(f"{len(ids):,} cold anime -> {out}")
