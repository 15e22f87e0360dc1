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
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AnirecError, warn
from ..recommenders import REGISTRY, method_class
from ..recommenders.text import TFIDF
from .protocols import PROTOCOLS

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

    @property
    def model(self) -> str | None:
        """The sentence-transformers model it reads, if any ("tfidf" is none)."""
        m = self.params.get("model")
        return None if m in (None, TFIDF) else str(m)


ModelSpec = MethodSpec  # the older name, kept for scripts written against it


@dataclass
class EvalConfig:
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
    seed: int = 42
    holdout_fraction: float = 0.2
    min_promoted: int = 2
    cold_fraction: float = 0.15
    cold_anime: str | None = None
    pairs: list[str] = field(default_factory=list)  # pair files the fine-tuned models learnt from (cold-start check)
    bootstrap: int = 1000
    compare_to: list[str] = field(default_factory=list)  # methods every other one is compared with, paired per user
    max_seq_length: int | None = None
    backend: str = "torch"  # how models without their own `backend` run (anirec.models.BACKENDS)
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
            fields = method_class(spec.method).Params.__dataclass_fields__
            if self.max_seq_length and "max_seq_length" in fields:
                params.setdefault("max_seq_length", self.max_seq_length)
            if self.backend != "torch" and "backend" in fields and spec.model is not None:
                params.setdefault("backend", self.backend)
            out.append(MethodSpec(spec.name, spec.method, params, spec.optional, spec.where))
        for spec in out:
            if "seed" in method_class(spec.method).Params.__dataclass_fields__:
                spec.params.setdefault("seed", self.seed)
        return out

    def check(self) -> "EvalConfig":
        where = self.source or "evaluate"
        if not self.catalog:
            raise AnirecError(f"{where}: no catalog given. Set `catalog = ...` in the config or pass --catalog.")
        bad = [b for b in self.baselines if b not in BASELINE_METHODS]
        if bad:
            raise AnirecError(f"{where}: unknown baseline {bad[0]!r}; choose from {', '.join(BASELINE_METHODS)}.")
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        if bad:
            raise AnirecError(f"{where}: unknown protocol {bad[0]!r}; choose from {', '.join(PROTOCOLS)}.")
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
            method_class(spec.method, spec.where).Params.from_dict(spec.params, spec.where)
        return self


_TOP_KEYS = {f for f in EvalConfig.__dataclass_fields__ if f not in ("models", "methods", "source")}
_ENTRY_KEYS = {"name", "optional"}


def _line_of(text: str, value: str) -> int | None:
    for no, line in enumerate(text.splitlines(), 1):
        if re.search(r"=\s*[\"']" + re.escape(value) + r"[\"']", line):
            return no
    return None


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


def _entries(raw: list, table: str, path: Path, text: str) -> list[MethodSpec]:
    """[[methods]] or [[models]] tables -> MethodSpecs (parameters checked later, all at once)."""
    out = []
    for i, entry in enumerate(raw, 1):
        label = f"[[{table}]] entry #{i}"
        if not isinstance(entry, dict):
            raise AnirecError(f"{path}: {label} must be a table.")
        entry = dict(entry)
        if table == "models":
            if "model" not in entry:
                raise AnirecError(f"{path}: {label} needs `model = \"NAME_OR_PATH\"`.")
            method = "text"
            anchor = str(entry["model"])
        else:
            if "method" not in entry:
                raise AnirecError(f"{path}: {label} needs `method = \"...\"` ({', '.join(REGISTRY)}).")
            method = str(entry.pop("method"))
            anchor = str(entry.get("name") or method)
        line = _line_of(text, anchor)
        where = f"{path}" + (f" line {line}" if line else f" {label}")
        method_class(method, where)
        name = str(entry.pop("name", "") or (model_name(entry["model"]) if table == "models" else method))
        optional = entry.pop("optional", False)
        if not isinstance(optional, bool):
            raise AnirecError(f"{where}: optional = {optional!r}: expected true or false.")
        out.append(MethodSpec(name, method, entry, optional, where))
    return out


def load_config(path: str | Path) -> EvalConfig:
    """Read an eval/*.toml (see eval/smoke.toml). Relative paths are relative to the working
    directory, i.e. the configs are written to be run from the repository root."""
    import tomllib

    path = Path(path)
    if not path.exists():
        raise AnirecError(f"{path}: config not found (see eval/*.toml for examples).")
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AnirecError(f"{path}: not valid TOML ({exc}).") from None
    known = _TOP_KEYS | {"models", "methods"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise AnirecError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))}).")
    models = _entries(raw.pop("models", []), "models", path, text)
    methods = _entries(raw.pop("methods", []), "methods", path, text)
    for key in ("pairs", "compare_to"):
        if isinstance(raw.get(key), str):
            raw[key] = [raw[key]]
    try:
        cfg = EvalConfig(**raw, models=models, methods=methods, source=str(path))
    except TypeError as exc:
        raise AnirecError(f"{path}: {exc}.") from None
    return cfg


def _looks_like_path(s: str) -> bool:
    return s.startswith((".", "/", "~")) or os.sep in s.removeprefix("sentence-transformers/")


def check_models(specs: list[MethodSpec]) -> list[MethodSpec]:
    """Fail (or skip an ``optional`` entry) before any work when a method's model cannot be found."""
    from ..models import not_found_message, resolve_model

    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")
    kept = []
    for m in specs:
        model = m.model
        missing = model is not None and not Path(resolve_model(model)).exists() and (_looks_like_path(model) or offline)
        if not missing:
            kept.append(m)
            continue
        if _looks_like_path(model):
            hint = f"{m.where}: model folder {model!r} not found (train it with `anirec finetune --out {model}` first)"
        else:
            hint = f"{m.where}: {not_found_message(model).rstrip('.')}"
        if m.optional:
            warn(hint + "; skipped (optional = true).")
            continue
        raise AnirecError(hint + (". Fix it, remove the entry, or mark it `optional = true`." if m.where != "--models" else "."))
    return kept
