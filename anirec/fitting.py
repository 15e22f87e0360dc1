"""`anirec fit`: a registered method fitted on ratings + a catalog, saved as a folder.

The fitting matrix is :func:`anirec.interactions.user_items` over every rating on a catalog
anime, exactly what the evaluation fits on (minus what a protocol holds out).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .config import Seed, coerce, field_types, parse_param, read_toml
from .data import load_ratings, ratings_label, read_catalog, source_inputs
from .errors import AnirecError
from .fitted import RATINGS_COLUMN, check_replaceable, save_fitted
from .io import check_outputs_not_inputs, output_lock
from .interactions import opinions_on_catalog, user_items
from .recommenders import DEFAULT_METHOD, Recommender, make, method_class
from .split import ratings_fingerprint


@dataclass
class FitMethod:
    """A registry method name and its checked parameters; ``where`` names the place each
    parameter came from (a config line, ``--param``), for messages."""

    method: str
    params: dict
    where: dict = field(default_factory=dict, compare=False, repr=False)


def _method_table(config: str | Path) -> tuple[str | None, dict, dict]:
    """The [method] table of ``fit --config``: (method name, parameters, where each was set)."""
    doc = read_toml(config, f"--config {config}")
    table = doc.table.get("method")
    if not isinstance(table, dict):
        raise AnirecError(f'{doc.label}: needs a [method] table (method = "ease", then its parameters).')
    values = {k: v for k, v in table.items() if k not in ("name", "optional")}
    name = values.pop("method", None)
    if name is not None and not isinstance(name, str):
        raise AnirecError(f"{doc.where('method', 'method')}: method = {name!r}: expected a method name in quotes.")
    return name, values, {k: doc.where(k, "method") for k in values}


def method_spec(method: str | None = None, params: list[str] | None = None, config: str | Path | None = None,
                model: str | None = None, max_seq_length: int | None = None, backend: str | None = None,
                seed: int | None = None) -> FitMethod:
    """The method and its parameters from a config's ``[method]`` table, overridden by the
    command line, checked by name and type before any data is read. The table reads like an
    evaluation config's ``[[methods]]`` entry (``method = "hybrid"`` plus parameters; its
    display ``name`` and ``optional`` are ignored), so an evaluated entry can be fitted as is.
    ``seed`` (``--seed``) sets the ``seed`` parameter of a method that has one."""
    name, values, where = _method_table(config) if config is not None else (None, {}, {})
    name = method or name or DEFAULT_METHOD
    cls = method_class(str(name), "--method")
    given = dict(parse_param(item) for item in params or [])
    values.update(given)
    where.update({key: "--param" for key in given})
    if seed is not None:
        seed = coerce(seed, Seed, "--seed")
        if "seed" in field_types(cls.Params):
            if "seed" in given and given["seed"] != seed:
                raise AnirecError(f"--seed {seed} and --param seed={given['seed']}: give the seed once.")
            values["seed"], where["seed"] = seed, "--seed"
    for option, key, value in (("--model", "model", model), ("--max-seq-length", "max_seq_length", max_seq_length),
                               ("--backend", "backend", backend)):
        if value is None:
            continue
        if not cls.uses_text:
            raise AnirecError(f"{option}: method {name!r} reads no text; it applies to text and hybrid.")
        values[key], where[key] = value, option
    cls.Params.from_dict(values, "--param", where)  # names and types now, before any data is read
    return FitMethod(str(name), values, where)


@dataclass
class FitResult:
    recommender: Recommender
    folder: Path
    manifest_extra: dict


def fit_to_folder(spec: FitMethod, ratings, catalog_path: str | Path, out: str | Path, config_file=None,
                  **context) -> FitResult:
    """Fit ``spec`` on every rating (on a catalog anime) in ``ratings`` and save it to ``out``.

    ``out`` is locked for the whole fit: a second fit to it exits at once, naming this one.
    ``config_file``: the --config the spec came from (only checked not to be inside ``out``).
    ``context``: cache_dir, batch_size, progress (see :func:`anirec.recommenders.make`); the seed
    is one of ``spec``'s parameters (:func:`method_spec`)."""
    recommender = make(spec.method, spec.params, "--param", **context)  # bad params fail before any loading
    check_replaceable(out)
    check_outputs_not_inputs([("--out", out, "dir")], [*source_inputs("--ratings", ratings, "ratings"),
                                                       ("--catalog", catalog_path), ("--config", config_file)])
    with output_lock(out, "--out", wait=1.0):  # another fit there: exit now, do not fit for nothing
        return _fit_and_save(recommender, ratings, catalog_path, out)


def _fit_and_save(recommender: Recommender, ratings, catalog_path, out) -> FitResult:
    catalog = read_catalog(catalog_path)
    frame = load_ratings(ratings)
    ops, off_catalog = opinions_on_catalog(frame, catalog["MAL_ID"].to_numpy())
    if ops.empty:
        raise AnirecError(f"--ratings {ratings_label(ratings)}: no rating is on an anime of {catalog_path}. "
                          "Pass the ratings and catalog of the same data.")
    ui = user_items(ops, len(catalog))
    start = time.perf_counter()
    recommender.fit(ui.fit_matrix, catalog)
    seconds = time.perf_counter() - start
    provenance = {
        "catalog": {"path": str(Path(catalog_path).resolve())},
        "ratings": {"labels": [str(r) for r in ([ratings] if isinstance(ratings, (str, Path)) else ratings)],
                    "fingerprint": ratings_fingerprint(frame), "rows": len(frame),
                    "rows_on_catalog": len(ops), "rows_off_catalog": off_catalog},
        "n_users": len(ui.users),
        "seconds": round(seconds, 3),
    }
    # ratings per anime (passives too) go with the folder: "new anime" = none in the fitted data
    counted = catalog.assign(**{RATINGS_COLUMN: np.bincount(ops["item"].to_numpy(), minlength=len(catalog))})
    folder = save_fitted(recommender, out, counted, provenance)
    return FitResult(recommender, folder, provenance)


def fit_on_catalog(recommender: Recommender, catalog: pd.DataFrame) -> Recommender:
    """Fit a method that learns from the catalog alone (the text method) in memory, with no
    ratings: what plain `anirec recommend` serves."""
    if not recommender.uses_text:
        raise AnirecError(f"method {recommender.name!r} learns from ratings: fit it with `anirec fit --ratings ...`.")
    return recommender.fit(sp.csr_matrix((0, len(catalog)), dtype=np.float32), catalog)


def format_fit_summary(result: FitResult) -> str:
    p, r = result.manifest_extra, result.recommender
    lines = [f"fitted {r.name} on {p['n_users']:,} users x {r.n_items:,} anime "
             f"({p['ratings']['rows_on_catalog']:,} ratings on catalog anime) in {p['seconds']:.2f} s",
             f"saved         {result.folder}"]
    emb = r.describe().get("embedding")
    if emb:
        how = ""
        if "cache_hit" in emb:
            how = f" ({'cached vectors' if emb['cache_hit'] else 'encoded'}, {emb['embed_seconds']:.1f} s)"
        lines.insert(1, f"text model    {emb.get('resolved') or emb.get('model')}{how}")
    return "\n".join(lines)
