"""What `anirec evaluate` runs: an eval/*.toml file and flags -> :class:`EvalConfig`.

Methods come from the recommender registry (:mod:`anirec.recommenders`) three ways, listed
in this order in every table:

* ``baselines = ["random", "popular", "tfidf", "itemknn", "ease"]``: registry methods with
  their default parameters (``tfidf`` is the text method on TF-IDF); ``hybrid`` may be
  named too;
* ``[[methods]]`` tables: ``name``, ``method`` (a registry name), ``optional``, and the
  method's parameters (checked by name and type before any work);
* ``[[models]]`` tables (and ``--models NAME=PATH``): shorthand for the text method on a
  sentence-transformers model.

``compare_to = ["tfidf", ...]`` names methods of the run that every other method is compared
with, per user (NDCG@k differences with a bootstrap interval: ``paired.csv``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Paths, Seed, Tokens, TomlFile, field_types, from_table, read_toml
from ..errors import AnirecError, warn
from ..recommenders import REGISTRY, method_class
from ..recommenders.text import TFIDF
from .protocols import CANDIDATES, PROTOCOLS

BASELINES = ("random", "popular", "tfidf", "itemknn", "ease")
# names `baselines` accepts: registry methods with default parameters, "tfidf" for text on TF-IDF
BASELINE_METHODS = {"tfidf": ("text", {"model": TFIDF}), **{m: (m, {}) for m in REGISTRY if m != "text"}}


@dataclass
class MethodSpec:
    """One row of the results: a registry method with its parameters, under a display name."""

    name: str
    method: str
    params: dict = field(default_factory=dict)
    optional: bool = False
    where: str = ""  # "eval/x.toml line 12" or "--models": named in errors
    key_where: dict = field(default_factory=dict, compare=False, repr=False)  # parameter -> its file and line

    @property
    def model(self) -> str | None:
        """The sentence-transformers model it reads, if any ("tfidf" is none)."""
        m = self.params.get("model")
        return None if m in (None, TFIDF) else str(m)

    @property
    def models(self) -> list[str]:
        """Every sentence-transformers model it reads (cEASE's new-anime map may read another)."""
        return [str(m) for key in MODEL_PARAMS if (m := self.params.get(key)) not in (None, TFIDF, "none")]


ModelSpec = MethodSpec  # the older name, kept for scripts written against it
MODEL_PARAMS = ("model", "map_model")  # parameters that name a model (check_models finds each first)


@dataclass
class EvalConfig:
    """Every setting of a run; an eval/*.toml sets them (these names), flags override them.
    The annotations are the types :mod:`anirec.config` checks each value against."""

    catalog: str = ""
    ratings: str | list[str] | None = None
    split: str | None = None
    out: str = "out/eval"
    models: list[MethodSpec] = field(default_factory=list)
    methods: list[MethodSpec] = field(default_factory=list)
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    protocols: list[str] = field(default_factory=lambda: list(PROTOCOLS))
    k: int = 10
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    seed: Seed = 42
    holdout_fraction: float = 0.2
    min_promoted: int = 2
    cold_fraction: float = 0.15
    cold_anime: str | None = None
    candidates: str = "released"  # holdout/mixed candidates: anime premiered by the ratings' date, or "all" (protocols.py)
    pairs: Paths = field(default_factory=list)  # pair files the fine-tuned models learnt from (cold-start check)
    bootstrap: int = 1000
    compare_to: Paths = field(default_factory=list)  # methods every other one is compared with, paired per user
    validation: bool = False  # score on the validation split (evaluation/validation.py), never on the real targets
    max_seq_length: Tokens = None  # for text models without their own; None (or 0) = the model's own
    backend: str = "torch"  # how models without their own `backend` run (anirec.backends.BACKENDS)
    cache_dir: str | None = None
    batch_size: int = 32
    source: str = ""  # the config file it came from

    def method_specs(self) -> list[MethodSpec]:
        """Every method to run, in table order, with run-wide defaults filled in."""
        out = []
        for b in self.baselines:
            method, params = BASELINE_METHODS[b]
            out.append(MethodSpec(b, method, dict(params), where=f"{self.source or 'evaluate'} baselines"))
        for spec in [*self.methods, *self.models]:
            params = dict(spec.params)
            fields = field_types(method_class(spec.method).Params)
            if self.max_seq_length and "max_seq_length" in fields:
                params.setdefault("max_seq_length", self.max_seq_length)
            if self.backend != "torch" and "backend" in fields and spec.model is not None:
                params.setdefault("backend", self.backend)
            out.append(MethodSpec(spec.name, spec.method, params, spec.optional, spec.where, spec.key_where))
        for spec in out:
            if "seed" in field_types(method_class(spec.method).Params):
                spec.params.setdefault("seed", self.seed)
        return out

    def check(self) -> "EvalConfig":
        where = self.source or "evaluate"
        if not self.catalog:
            raise AnirecError(f"{where}: no catalog given. Set `catalog = ...` in the config or pass --catalog.")
        if not self.baselines and not self.methods and not self.models:
            raise AnirecError(f"{where}: no method to evaluate: name some in `baselines = [...]`, [[methods]] or "
                              "[[models]] (or pass -b/--models).")
        bad = [b for b in self.baselines if b not in BASELINE_METHODS]
        if bad:
            raise AnirecError(f"{where}: unknown baseline {bad[0]!r}; choose from {', '.join(BASELINE_METHODS)}.")
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        if bad:
            raise AnirecError(f"{where}: unknown protocol {bad[0]!r}; choose from {', '.join(PROTOCOLS)}.")
        if self.candidates not in CANDIDATES:
            raise AnirecError(f"{where}: candidates {self.candidates!r}: choose from {', '.join(CANDIDATES)}.")
        if self.k < 1 or any(k < 1 for k in self.ks):
            raise AnirecError(f"{where}: k and ks must be positive (got k={self.k}, ks={self.ks}).")
        if self.k not in self.ks:
            self.ks = sorted(set(self.ks) | {self.k})
        if not 0 < self.holdout_fraction < 1 or not 0 < self.cold_fraction < 1:
            raise AnirecError(f"{where}: holdout_fraction and cold_fraction must be between 0 and 1.")
        if self.min_promoted < 2:
            raise AnirecError(f"{where}: min_promoted must be at least 2.")
        if self.bootstrap < 0:
            raise AnirecError(f"{where}: bootstrap must be 0 (off) or a number of resamples.")
        specs = self.method_specs()
        names = [s.name for s in specs]
        dup = sorted({x for x in names if names.count(x) > 1})
        if dup:
            raise AnirecError(f"{where}: method name {dup[0]!r} is used twice; give each [[methods]]/[[models]] entry its own name.")
        unknown = [c for c in self.compare_to if c not in names]
        if unknown:
            raise AnirecError(f"{where}: compare_to names {unknown[0]!r}, which is not a method of this run; "
                              f"choose from {', '.join(names)}.")
        for spec in specs:  # parameter names and types, before any work
            method_class(spec.method, spec.where).Params.from_dict(spec.params, spec.where, spec.key_where)
        return self


# keys of the file's top level; models and methods are its [[models]]/[[methods]] tables
_TOP_KEYS = [f for f in field_types(EvalConfig) if f not in ("models", "methods", "source")]


def model_name(model: str) -> str:
    """A short display name for a model path or hub id."""
    return Path(str(model).rstrip("/")).name or str(model)


def parse_model_arg(arg: str, where: str = "--models") -> MethodSpec:
    """``NAME=PATH_OR_ID`` or just ``PATH_OR_ID``: the text method on that model."""
    name, sep, model = arg.partition("=")
    if not sep:
        name, model = model_name(arg), arg
    if not name.strip() or not model.strip():
        raise AnirecError(f"{where} {arg!r}: give NAME=MODEL or a model name/path.")
    return MethodSpec(name.strip(), "text", {"model": model.strip()}, where=where)


def _entry(entry, table: str, i: int, doc: TomlFile) -> MethodSpec:
    """The ``i``-th (0-based) [[methods]] or [[models]] table -> a MethodSpec (its parameters are
    checked later, all at once, when run-wide defaults have been filled in)."""
    label = f"[[{table}]] entry #{i + 1}"
    if not isinstance(entry, dict):
        raise AnirecError(f"{doc.label}: {label} must be a table.")
    entry = dict(entry)
    anchor = "model" if table == "models" else ("name" if "name" in entry else "method")
    where = doc.where(anchor, table, i) if doc.line(anchor, table, i) else f"{doc.label} {label}"
    for key in ("name", "method", "model")[: 3 if table == "models" else 2]:
        if key in entry and not isinstance(entry[key], str):
            raise AnirecError(f"{doc.where(key, table, i)}: {key} = {entry[key]!r}: expected a string in quotes.")
    if table == "models":
        if "model" not in entry:
            raise AnirecError(f"{doc.label}: {label} needs `model = \"NAME_OR_PATH\"`.")
        method = "text"
    else:
        if "method" not in entry:
            raise AnirecError(f"{doc.label}: {label} needs `method = \"...\"` ({', '.join(REGISTRY)}).")
        method = entry.pop("method")
    method_class(method, where)
    name = entry.pop("name", "") or (model_name(entry["model"]) if table == "models" else method)
    optional = entry.pop("optional", False)
    if not isinstance(optional, bool):
        raise AnirecError(f"{doc.where('optional', table, i)}: optional = {optional!r}: expected true or false.")
    return MethodSpec(name, method, entry, optional, where, {k: doc.where(k, table, i) for k in entry})


def _entries(raw, table: str, doc: TomlFile) -> list[MethodSpec]:
    if not isinstance(raw, list):
        raise AnirecError(f"{doc.where(table)}: {table} = {raw!r}: write each entry as a [[{table}]] table.")
    return [_entry(entry, table, i, doc) for i, entry in enumerate(raw)]


def load_config(path: str | Path) -> EvalConfig:
    """Read an eval/*.toml (see eval/smoke.toml), every key and value checked. Relative paths
    are relative to the working directory, i.e. the configs are written to be run from the
    repository root."""
    doc = read_toml(path, missing="see eval/*.toml for examples")
    raw = dict(doc.table)
    known = [*_TOP_KEYS, "models", "methods"]
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise AnirecError(f"{doc.where(unknown[0])}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))}).")
    models = _entries(raw.pop("models", []), "models", doc)
    methods = _entries(raw.pop("methods", []), "methods", doc)
    cfg = EvalConfig(models=models, methods=methods, source=str(path))
    return from_table(EvalConfig, raw, doc.locator(), keys=_TOP_KEYS, base=cfg)


def _looks_like_path(s: str) -> bool:
    return s.startswith((".", "/", "~")) or os.sep in s.removeprefix("sentence-transformers/")


def check_models(specs: list[MethodSpec]) -> list[MethodSpec]:
    """Fail (or skip an ``optional`` entry) before any work when a method's model cannot be found."""
    from ..models import not_found_message, resolve_model

    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")
    kept = []
    for m in specs:
        gone = [x for x in m.models if not Path(resolve_model(x)).exists() and (_looks_like_path(x) or offline)]
        if not gone:
            kept.append(m)
            continue
        model = gone[0]
        if _looks_like_path(model):
            hint = f"{m.where}: model folder {model!r} not found (train it with `anirec finetune --out {model}` first)"
        else:
            hint = f"{m.where}: {not_found_message(model).rstrip('.')}"
        if m.optional:
            warn(hint + "; skipped (optional = true).")
            continue
        raise AnirecError(hint + (". Fix it, remove the entry, or mark it `optional = true`." if m.where != "--models" else "."))
    return kept
