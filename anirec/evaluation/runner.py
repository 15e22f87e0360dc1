"""`anirec evaluate`'s run: load the data, build the protocols' tasks, and for every method
and task call ``fit`` on what the protocol allows and ``recommend`` on the task's users,
nothing method-specific; then score and write the report."""

from __future__ import annotations

import hashlib
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import AnirecError, warn
from ..interactions import with_items
from ..io import check_writable_output, hash_file, hash_strings
from ..recommenders import make
from .config import EvalConfig, MethodSpec, check_models
from .metrics import ndcg_at_k, paired_difference, score, verdict
from .protocols import Task, build_tasks, cold_anime_of, released_items
from .report import check_output_set, write_outputs
from .validation import validation_config, validation_split, without_outer_cold


@dataclass
class EvalOutcome:
    results: pd.DataFrame
    meta: dict
    out: Path
    files: list[Path]
    paired: pd.DataFrame | None = None  # NDCG@k differences to the compare_to methods, per protocol


def _load_catalog(source: str) -> tuple[pd.DataFrame, str | None]:
    """A catalog parquet from `anirec build`, or a raw Kaggle folder/CSV built in memory, and
    the parquet file's hash (None for a raw source)."""
    from ..build import open_catalog

    p = Path(source).expanduser()
    catalog = open_catalog(source).reset_index(drop=True)
    return catalog, hash_file(p) if p.suffix == ".parquet" else None


def _row_keys(frame: pd.DataFrame) -> np.ndarray:
    """One int64 per (user_id, anime_id) row, for set membership tests."""
    return (frame["user_id"].to_numpy(np.int64) << 32) | frame["anime_id"].to_numpy(np.int64)


def _ratings_file_hash(sources) -> str | list | None:
    from ..data import RATINGS_FILE

    if not isinstance(sources, (str, Path)):
        return [_ratings_file_hash(s) for s in sources]
    p = Path(sources).expanduser()
    if p.is_dir():
        p = p / RATINGS_FILE
    return hash_file(p) if p.is_file() else None


@dataclass
class Inputs:
    """The data every protocol is built from, plus what meta.json records about it."""

    catalog: pd.DataFrame
    split: pd.DataFrame | None  # split rows on catalog anime, with ``item``
    opinions: pd.DataFrame | None  # all ratings on catalog anime as opinions (passives kept), with ``item``
    meta: dict


def load_inputs(cfg: EvalConfig, protocols: list[str], echo=print) -> Inputs:
    """Catalog, split (reference protocol) and ratings (other protocols), mapped to catalog rows."""
    from ..data import load_ratings, ratings_label
    from ..opinions import to_opinions
    from ..split import load_split, pairs_split_path, ratings_fingerprint

    catalog, catalog_file_hash = _load_catalog(cfg.catalog)
    catalog_ids = catalog["MAL_ID"].to_numpy(np.int64)
    meta: dict = {"catalog": {"path": cfg.catalog, "rows": len(catalog), "file_hash": catalog_file_hash,
                              "description_hash": hash_strings(catalog["description"].astype(str)),
                              "id_hash": hash_strings(catalog_ids)}}
    split = split_df = None
    if "reference" in protocols:
        split_df, split_meta = load_split(cfg.split)
        split, dropped = with_items(split_df, catalog_ids)
        meta["split"] = {"path": cfg.split, "file_hash": hash_file(cfg.split), "rows": int(len(split_df)),
                         "rows_not_in_catalog": dropped, "meta": split_meta}
    opinions = None
    if set(protocols) - {"reference"}:
        if cfg.ratings:
            ratings = load_ratings(cfg.ratings)
            meta["ratings"] = {"path": cfg.ratings, "file_hash": _ratings_file_hash(cfg.ratings),
                               "fingerprint": ratings_fingerprint(ratings), "rows": int(len(ratings))}
            made_from = meta.get("split", {}).get("meta", {}).get("ratings_hash")
            if made_from not in (None, meta["ratings"]["fingerprint"]):
                warn(f"{cfg.split} was made from other ratings than {ratings_label(cfg.ratings)} (fingerprints differ).")
            op = to_opinions(ratings.drop_duplicates(["user_id", "anime_id"], keep="last"), keep_passives=True)
        elif cfg.split:
            op = load_split(cfg.split)[0]
            echo("note: no ratings given: the holdout/coldstart/mixed protocols use the split's rows (passives dropped).")
            meta["ratings"] = {"path": None, "from_split": cfg.split}
        else:
            raise AnirecError("the holdout/coldstart/mixed protocols need ratings: pass --ratings (or --split).")
        opinions, dropped = with_items(op[["user_id", "anime_id", "opinion"]], catalog_ids)
        meta["ratings"].update(rows_not_in_catalog=dropped, rows_used=int(len(opinions)))
        # The rows pair labels were mined from (the train rows of the split of every pairs file
        # a fine-tuned model learnt from; without pairs files, of --split) may not be held out
        # (see holdout_mask).
        splits = [str(p) for p in map(pairs_split_path, cfg.pairs) if p] if cfg.pairs else [cfg.split]
        splits = list(dict.fromkeys(p for p in splits if p))
        if splits:
            keys = []
            for path in splits:
                frame = split_df if (split_df is not None and path == str(cfg.split)) else load_split(path)[0]
                keys.append(_row_keys(frame[frame["split"].astype(str).to_numpy() == "train"]))
            opinions["protected"] = np.isin(_row_keys(opinions), np.concatenate(keys))
            meta["ratings"].update(protected_rows=int(opinions["protected"].sum()), protected_from=splits)
    return Inputs(catalog, split, opinions, meta)


def lists_sha256(recs: np.ndarray) -> str:
    """sha256 of a protocol's lists, the (users x k) int64 item rows in C order: meta.json
    records it per method and protocol, so committed results can be checked against code."""
    return hashlib.sha256(np.ascontiguousarray(recs, dtype=np.int64).tobytes()).hexdigest()


def validation_inputs(cfg: EvalConfig, data: Inputs, catalog_ids: np.ndarray) -> tuple[Inputs, EvalConfig, np.ndarray]:
    """The inputs and config of the protocols inside the validation split (see
    :mod:`.validation`): the ratings every protocol of ``cfg`` may fit on, an own seed; and the
    real protocols' cold anime (no candidates there)."""
    if data.opinions is None:
        raise AnirecError(f"{cfg.source or 'evaluate'}: validation needs ratings (--ratings).")
    _, cold_items = cold_anime_of(cfg, catalog_ids, data.opinions)
    split = validation_split(data.opinions, cold_items, cfg)
    inner = replace(validation_config(cfg), seed=split.seed)
    return Inputs(data.catalog, None, split.opinions, {**data.meta, "validation": split.info}), inner, split.outer_cold


def run_method(spec: MethodSpec, task: Task, catalog: pd.DataFrame, cfg: EvalConfig) -> tuple[np.ndarray, dict]:
    """Fit one method on what ``task`` allows and recommend for its users: (recs, what it was)."""
    context = {"seed": cfg.seed, "cache_dir": cfg.cache_dir, "batch_size": cfg.batch_size, "progress": True}
    rec = make(spec.method, spec.params, spec.where, **context)
    t = time.perf_counter()
    rec.fit(task.fit, catalog)
    fit_s = time.perf_counter() - t
    recs, _ = rec.recommend(task.promoted, k=max(task.ks), exclude=task.seen, candidates=task.candidates)
    return recs, {**rec.describe(), "fit_s": round(fit_s, 3), "recommend_s": round(time.perf_counter() - t - fit_s, 3),
                  "lists_sha256": lists_sha256(recs)}


def run_evaluation(cfg: EvalConfig, echo=print) -> EvalOutcome:
    """Load data, build the protocols, run every method through them, write the outputs."""
    t_start = time.perf_counter()
    cfg.check()
    check_writable_output(cfg.out, "files-in", "--out")  # before minutes of work, not after
    check_output_set(cfg)  # and no input is one of the files it writes or replaces
    specs = check_models(cfg.method_specs())
    if not specs:
        raise AnirecError(f"{cfg.source or 'evaluate'}: every method was skipped (optional and missing): nothing to evaluate.")
    protocols = list(cfg.protocols)
    if cfg.validation and "reference" in protocols:
        protocols.remove("reference")  # its split's test rows are not part of the validation split
    if "reference" in protocols and not cfg.split:
        echo("note: no split given (--split / `split = ...`): skipping the reference protocol.")
        protocols.remove("reference")
    if not protocols:
        raise AnirecError("nothing to evaluate: no protocol left (the reference protocol needs --split).")
    data = load_inputs(cfg, protocols, echo)
    catalog_ids = data.catalog["MAL_ID"].to_numpy(np.int64)
    released = None
    if cfg.candidates == "released" and data.opinions is not None:
        # from every rating, before any is held out or set aside for validation: the data's date
        released, info = released_items(data.catalog, data.opinions["item"].to_numpy())
        data.meta["candidates"] = {"rule": "released", **info}
        echo(f"candidates: the {info['released']:,} anime premiered by {info['as_of']} (the latest premiere rated); "
             f"{info['later']:,} later ones left out" if info["as_of"] else
             "candidates: every anime (no rated anime has a premiere date to go by)")
    task_cfg = cfg
    if cfg.validation:
        data, task_cfg, outer_cold = validation_inputs(cfg, data, catalog_ids)
        protocols = task_cfg.protocols
        echo(f"validation split: {data.meta['validation']['rows']:,} of {data.meta['validation']['of_rows']:,} ratings "
             "(every scored or held-out rating and every rating of a cold anime removed)")
    tasks, cold_ids = build_tasks(task_cfg, protocols, catalog_ids, data.split, data.opinions, data.meta, released)
    if cfg.validation:
        without_outer_cold(tasks, outer_cold)
    timings = {"load": time.perf_counter() - t_start}
    for task in tasks:
        echo(f"{task.protocol:<9} {len(task.users):>8,} users  " + ", ".join(f"{k} {v}" for k, v in task.info.items() if k != "users"))

    rows: list[dict] = []
    methods_meta: dict = {}
    per_user: dict[tuple[str, str], np.ndarray] = {}  # (protocol, method) -> NDCG@k of each user
    for spec in specs:
        m_meta: dict = {"method": spec.method, "params": spec.params, "runs": {}}
        for task in tasks:
            t = time.perf_counter()
            recs, info = run_method(spec, task, data.catalog, cfg)
            task_rows = score(task, recs, cfg.bootstrap, cfg.seed)
            if task.relevant is not None and cfg.compare_to:
                per_user[(task.protocol, spec.name)] = ndcg_at_k(recs, task.relevant, cfg.k)
            secs = time.perf_counter() - t
            m_meta["runs"][task.protocol] = {**info, "seconds": round(secs, 3)}
            rows += [dict(protocol=task.protocol, method=spec.name, **r) for r in task_rows]
            echo(f"{task.protocol:<9} {spec.name:<28} {_headline(task, task_rows, cfg.k)}  ({secs:.1f} s)")
        methods_meta[spec.name] = m_meta

    results = pd.DataFrame(rows, columns=["protocol", "method", "metric", "value", "ci_lo", "ci_hi", "n_users"])
    paired = paired_table(per_user, [t.protocol for t in tasks], [s.name for s in specs], cfg)
    timings["total"] = time.perf_counter() - t_start
    meta = {
        "anirec_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": asdict(cfg),
        "config_file_hash": hash_file(cfg.source) if cfg.source and Path(cfg.source).exists() else None,
        "seed": cfg.seed,
        "data": data.meta,
        "protocols": {t.protocol: t.info for t in tasks},
        "methods": methods_meta,
        "timings_s": timings,
        "versions": _versions(),
    }
    out = Path(cfg.out)
    # the validation's own cold anime are no list to keep out of pairs (they are outer warm anime)
    files = write_outputs(out, results, meta, cfg, None if cfg.validation else cold_ids, paired)
    echo(f"wrote {', '.join(str(f) for f in files)} in {timings['total']:.1f} s")
    return EvalOutcome(results, meta, out, files, paired)


PAIRED_COLUMNS = ["protocol", "method", "reference", "metric", "diff", "ci_lo", "ci_hi", "verdict",
                  "better_users", "worse_users", "n_users"]


def paired_table(per_user: dict, protocols: list[str], methods: list[str], cfg: EvalConfig) -> pd.DataFrame | None:
    """Every method minus each ``compare_to`` method, on the same users of each protocol."""
    if not cfg.compare_to:
        return None
    rows = []
    for protocol in protocols:
        for ref in cfg.compare_to:
            if (protocol, ref) not in per_user:
                continue  # the reference protocol has no per-user relevance
            for m in methods:
                if m == ref:
                    continue
                r = paired_difference(per_user[(protocol, m)], per_user[(protocol, ref)], cfg.bootstrap, cfg.seed)
                rows.append(dict(protocol=protocol, method=m, reference=ref, metric=f"ndcg@{cfg.k}", **r, verdict=verdict(r)))
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def _headline(task: Task, rows: list[dict], k: int) -> str:
    by = {r["metric"]: r["value"] for r in rows}
    keys = [f"nps@{k}"] if task.relevant is None else [f"hit_rate@{k}", f"ndcg@{k}", f"nps@{k}"]
    return "  ".join([f"{m} {by[m]:.4f}" for m in keys] + [f"found@{k} {by[f'found@{k}']:,.0f}"])


def _versions() -> dict:
    import scipy
    import sklearn

    v = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
         "scikit-learn": sklearn.__version__, "pandas": pd.__version__}
    try:
        import sentence_transformers
        import torch

        v.update({"sentence-transformers": sentence_transformers.__version__, "torch": torch.__version__})
    except ImportError:
        pass
    return v
