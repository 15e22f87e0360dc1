"""The row split pair labels are mined from (METHOD.md section 3): made, saved, reused, and tied to its pairs.

* Rows: opinions (passives dropped) of the popular anime (``anirec.opinions``).
* Split: shuffle the rows with ``numpy.random.RandomState(seed).permutation`` (exactly what
  ``DataFrame.sample(frac=1, random_state=seed)`` does) and cut at ``int((1 - test_size) * n)``.
  Pairs are counted over the *train* rows only; `evaluate --split` never holds out a train row,
  so no model is scored on a rating its training pairs came from.
* File: parquet with the columns ``SPLIT_COLUMNS`` and, under the ``anirec`` metadata key, the
  ratings' fingerprint, the parameters, the counts and a ``split_id`` (a hash of the three).
  A saved split is reused only with the ratings it was made from.
* Link: a pairs file records the ``split_id`` and relative path of its split; every reader of
  pairs (``check_pairs_split``) refuses them when another split has replaced it since (e.g. an
  `anirec pairs` killed between its two writes).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import AnirecError
from .io import atomic_path
from .opinions import PASSIVE_MIN, PROMOTER_MIN, filter_popular, popularity_threshold, to_opinions

SPLIT_COLUMNS = ["user_id", "anime_id", "rating", "opinion", "split"]
META_KEY = b"anirec"  # parquet schema metadata key of the JSON that pairs and split files carry


@dataclass
class SplitInfo:
    frame: pd.DataFrame  # SPLIT_COLUMNS
    meta: dict  # ratings_hash, params, counts, split_id
    reused: bool


def split_ratings(opinions: pd.DataFrame, test_size: float = 0.1, seed: int = 42) -> pd.DataFrame:
    """Add ``split`` ('train'/'test', categorical): the reference's shuffled row split.

    Rows keep their order; the shuffle only decides which rows are test.
    """
    if not 0.0 <= test_size < 1.0:
        raise AnirecError(f"--test-size {test_size}: must be in [0, 1) (the reference uses 0.1).")
    n = len(opinions)
    order = np.random.RandomState(seed).permutation(n)  # == DataFrame.sample(frac=1, random_state=seed)
    is_test = np.zeros(n, np.int8)
    is_test[order[int((1.0 - test_size) * n):]] = 1
    out = opinions.copy()
    out["split"] = pd.Categorical.from_codes(is_test, categories=["train", "test"])
    return out


def ratings_fingerprint(ratings: pd.DataFrame) -> str:
    """sha256 of the ratings' (user_id, anime_id, rating) values in row order, dtype-normalised.

    The same file loaded from CSV or parquet gives the same fingerprint; any changed, added,
    removed or reordered row gives another (the split depends on row order).
    """
    h = hashlib.sha256(f"ratings:{len(ratings)}".encode())
    for col, dtype in (("user_id", np.int32), ("anime_id", np.int32), ("rating", np.int8)):
        h.update(np.ascontiguousarray(ratings[col].to_numpy(dtype)).data)
    return h.hexdigest()


def make_split(
    ratings: pd.DataFrame,
    promoter_min: int = PROMOTER_MIN,
    passive_min: int = PASSIVE_MIN,
    quantile: float | None = 0.9,
    min_count: int | None = None,
    test_size: float = 0.1,
    seed: int = 42,
) -> SplitInfo:
    """Opinions -> popular anime -> row split, with the metadata that makes it checkable later."""
    opinions = to_opinions(ratings, promoter_min, passive_min)
    threshold = popularity_threshold(opinions, quantile, min_count)
    popular = filter_popular(opinions, quantile, min_count)
    if len(popular) == 0:
        raise AnirecError("ratings: no promoter or detractor ratings left (all passive?). Check --promoter-min/--passive-min.")
    frame = split_ratings(popular, test_size, seed)
    meta = {
        "ratings_hash": ratings_fingerprint(ratings),
        "params": {
            "promoter_min": promoter_min, "passive_min": passive_min, "quantile": quantile,
            "min_count": min_count, "test_size": test_size, "seed": seed,
        },
        "counts": {
            "ratings": int(len(ratings)), "non_passive": int(len(opinions)), "min_ratings_per_anime": threshold,
            "anime_kept": int(popular["anime_id"].nunique()), "rows_kept": int(len(popular)),
            "train": int((frame["split"] == "train").sum()), "test": int((frame["split"] == "test").sum()),
        },
    }
    meta["split_id"] = split_id(meta)
    return SplitInfo(frame, meta, reused=False)


def split_id(meta: dict) -> str:
    """What identifies a split: a hash of everything that determines its rows (the ratings' own
    fingerprint, the parameters, the counts). Pairs record it, so a split rewritten after its
    pairs (an `anirec pairs` killed between its two writes) is noticed by whoever reads them."""
    blob = json.dumps({k: meta.get(k) for k in ("ratings_hash", "params", "counts")}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def reuse_split(path: str | Path, ratings: pd.DataFrame) -> SplitInfo:
    """Load a saved split, refusing one made from other ratings."""
    frame, meta = load_split(path)
    if meta.get("ratings_hash") != ratings_fingerprint(ratings):
        raise AnirecError(
            f"{path}: this split was made from other ratings (fingerprint differs). "
            "Pass the ratings it was made from, or drop --split to make a new one."
        )
    meta.setdefault("split_id", split_id(meta))  # splits saved before the id existed
    return SplitInfo(frame, meta, reused=True)


def train_rows(split: SplitInfo) -> pd.DataFrame:
    return split.frame[(split.frame["split"] == "train").to_numpy()]


# --------------------------------------------------------------------------- the files


def write_parquet(frame: pd.DataFrame, path: str | Path, meta: dict) -> Path:
    """Write ``frame`` as parquet with ``meta`` (JSON) under the ``anirec`` key, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_parquet_meta(path: str | Path) -> dict:
    """The anirec metadata of a parquet file (pairs or split) without reading its rows; {} if none."""
    import pyarrow.parquet as pq

    try:
        raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
        meta = json.loads(raw) if raw else {}
    except Exception:  # noqa: BLE001 - not parquet / no metadata: the caller's own reader reports it
        return {}
    return meta if isinstance(meta, dict) else {}


def save_split(df: pd.DataFrame, path: str | Path, meta: dict) -> Path:
    """Write the split as parquet with ``meta`` (JSON) under the ``anirec`` key, atomically."""
    return write_parquet(df[SPLIT_COLUMNS], path, meta)


def load_split(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Read a split file written by :func:`save_split`: (DataFrame, meta)."""
    import pyarrow.parquet as pq

    path = Path(path).expanduser()
    if not path.exists():
        raise AnirecError(f"{path}: split file not found. `anirec pairs` writes one (see --split-out).")
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise AnirecError(f"{path}: not a readable parquet split file ({exc}).") from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    missing = [c for c in SPLIT_COLUMNS if c not in table.column_names]
    if raw is None or missing:
        raise AnirecError(
            f"{path}: not an anirec split file (missing {', '.join(missing) or 'anirec metadata'}). "
            "Use the .split.parquet written by `anirec pairs`."
        )
    df = table.select(SPLIT_COLUMNS).to_pandas()
    df = df.astype({"user_id": np.int32, "anime_id": np.int32, "rating": np.int8, "opinion": np.int8})
    df["split"] = pd.Categorical(df["split"].astype(str), categories=["train", "test"])
    return df, json.loads(raw)


# --------------------------------------------------------------------------- pairs <-> split


def pairs_split_link(pairs_path: str | Path, split_path: str | Path, meta: dict) -> dict:
    """The fields that tie a pairs file to the split it was mined from (kept in the pairs' metadata)."""
    rel = os.path.relpath(Path(split_path).expanduser().resolve(), Path(pairs_path).expanduser().resolve().parent)
    return {"split_id": meta.get("split_id"), "split_file": rel}


def pairs_split_path(pairs_path: str | Path) -> Path | None:
    """The split file a pairs file was mined from (None: not recorded, or no longer there)."""
    pairs_path = Path(pairs_path).expanduser()
    meta = read_parquet_meta(pairs_path) or {}
    for candidate in (pairs_path.parent / meta["split_file"] if meta.get("split_file") else None,
                      Path(meta["split"]) if meta.get("split") else None):
        if candidate is not None and candidate.exists():
            return candidate
    return None


def check_pairs_split(pairs_path: str | Path) -> None:
    """Refuse pairs whose split file (beside them, as they recorded it) is not the split they came from."""
    pairs_path = Path(pairs_path).expanduser()
    meta = read_parquet_meta(pairs_path)
    made_from, rel = meta.get("split_id"), meta.get("split_file")
    if not made_from or not rel:
        return  # pairs from before the link existed, or not from `anirec pairs`
    split_path = pairs_path.parent / rel
    if not split_path.exists():
        return  # moved or deleted: nothing there can contradict the pairs
    split_meta = read_parquet_meta(split_path)
    now = (split_meta.get("split_id") or split_id(split_meta)) if split_meta else None
    if now != made_from:
        raise AnirecError(
            f"{pairs_path}: made from another split than the one now at {split_path} (split id {made_from[:12]}, "
            f"file has {str(now)[:12]}), e.g. after an interrupted `anirec pairs`. Run `anirec pairs` again to remake both."
        )
