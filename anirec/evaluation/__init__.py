"""Honest comparison of recommenders: `anirec evaluate` (METHOD.md sections 5-6), in parts that
each do one job: :mod:`.protocols` (who is scored, what methods may learn from), :mod:`.metrics`
(pure metric functions, bootstrap, ``score``), :mod:`.config` (eval/*.toml), :mod:`.runner`
(fit + recommend every method on every task) and :mod:`.report` (tables, plots, meta.json).
Every method comes from :mod:`anirec.recommenders`: what is scored here is what
`anirec recommend` serves.
"""

from ..data import read_anime_ids, write_anime_ids
from .config import BASELINES, EvalConfig, MethodSpec, ModelSpec, check_models, load_config, model_name, parse_model_arg
from .metrics import (
    RANK_BUCKETS, bootstrap_ci, coverage_at_k, hit_matrix, hit_rate_at_k, most_rated, mrr_at_k, ndcg_at_k, nps_at_k,
    paired_difference, popular_share_at_k, precision_at_k, recall_at_k, score, verdict,
)
from .protocols import (
    PROTOCOLS, Task, build_tasks, check_pairs_exclude, cold_anime_ids, coldstart_task, drop_anime, holdout_mask,
    holdout_task, mixed_task, reference_task, released_items,
)
from .report import paired_markdown, plot_metric, plot_nps_by_rank, results_markdown, write_outputs
from .runner import EvalOutcome, Inputs, _load_catalog, load_inputs, run_evaluation, run_method

__all__ = [
    "BASELINES", "PROTOCOLS", "RANK_BUCKETS", "EvalConfig", "EvalOutcome", "Inputs", "MethodSpec", "ModelSpec", "Task",
    "bootstrap_ci", "build_tasks", "check_models", "check_pairs_exclude", "cold_anime_ids", "coldstart_task",
    "coverage_at_k", "drop_anime", "hit_matrix", "hit_rate_at_k", "holdout_mask", "holdout_task", "load_config",
    "load_inputs", "mixed_task", "model_name", "most_rated", "mrr_at_k", "popular_share_at_k", "ndcg_at_k", "nps_at_k", "parse_model_arg", "plot_metric",
    "plot_nps_by_rank", "precision_at_k", "read_anime_ids", "recall_at_k", "reference_task", "released_items", "results_markdown",
    "paired_difference", "paired_markdown", "run_evaluation", "verdict", "run_method", "score", "write_anime_ids", "write_outputs", "_load_catalog",
]
