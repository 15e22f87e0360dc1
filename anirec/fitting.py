"""`anirec fit`: a registered method fitted on ratings + a catalog, saved as a folder.

The fitting matrix is :func:`anirec.interactions.user_items` over every rating on a catalog
anime, exactly what the evaluation fits on (minus what a protocol holds out).
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .data import load_ratings, ratings_label, read_catalog
from .errors import AnirecError
from .fitted import check_replaceable, save_fitted
from .interactions import opinions_on_catalog, user_items
from .labels import ratings_fingerprint
from .recommenders import Recommender, make, method_class


@dataclass
class FitMethod:
    """A registry method name and its parameters (checked by ``make``)."""

    method: str
    params: dict


def parse_param(text: str) -> tuple[str, object]:
    """``key=value`` with a TOML value (``lam=200``, ``tfidf_weight=0.3``, ``x=true``);
    anything that is not a TOML literal is a string (``model=tfidf``)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise AnirecError(f"--param {text!r}: expected key=value, e.g. --param lam=200.")
    try:
        return key, tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key, value.strip()


def method_spec(method: str | None = None, params: list[str] | None = None, config: str | Path | None = None,
                model: str | None = None, max_seq_length: int | None = None, backend: str | None = None) -> FitMethod:
    """The method and its parameters from a config's ``[method]`` table, overridden by the
    command line. The table reads like an evaluation config's ``[[methods]]`` entry
    (``method = "hybrid"`` plus parameters; its display ``name`` and ``optional`` are
    ignored), so an evaluated entry can be fitted as is."""
    name, values = None, {}
    if config is not None:
        path = Path(config)
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8")).get("method")
        except OSError as exc:
            raise AnirecError(f"--config {path}: cannot read it ({exc.strerror}).") from None
        except tomllib.TOMLDecodeError as exc:
            raise AnirecError(f"--config {path}: not valid TOML ({exc}).") from None
        if not isinstance(table, dict):
            raise AnirecError(f'--config {path}: needs a [method] table (method = "ease", then its parameters).')
        values = {k: v for k, v in table.items() if k not in ("name", "optional")}
        name = values.pop("method", None)
    name = method or name
    if not name:
        raise AnirecError('no method: pass --method NAME (or method = "..." in the config\'s [method] table).')
    cls = method_class(str(name), "--method")
    for item in params or []:
        key, value = parse_param(item)
        values[key] = value
    for option, key, value in (("--model", "model", model), ("--max-seq-length", "max_seq_length", max_seq_length),
                               ("--backend", "backend", backend)):
        if value is None:
            continue
        if not cls.uses_text:
            raise AnirecError(f"{option}: method {name!r} reads no text; it applies to text and hybrid.")
        values[key] = value
    return FitMethod(str(name), values)


@dataclass
class FitResult:
    recommender: Recommender
    folder: Path
    manifest_extra: dict


def fit_to_folder(spec: FitMethod, ratings, catalog_path: str | Path, out: str | Path, **context) -> FitResult:
    """Fit ``spec`` on every rating (on a catalog anime) in ``ratings`` and save it to ``out``.

    ``context``: seed, cache_dir, batch_size, progress (see :func:`anirec.recommenders.make`)."""
    recommender = make(spec.method, spec.params, where="--param", **context)  # bad params fail before any loading
    check_replaceable(out)
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
    folder = save_fitted(recommender, out, catalog, provenance)
    return FitResult(recommender, folder, provenance)


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
