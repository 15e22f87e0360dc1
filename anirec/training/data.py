"""The data of a fine-tuning run: pairs file + catalog -> description pairs -> a training dataset.

* ``read_pairs``: a pairs file from `anirec pairs` (or a CSV with the same columns), checked row
  by row, and refused when the split it was mined from has been replaced since.
* ``attach_texts``: both descriptions of every pair, pairs naming unknown anime left out (and
  counted), the budgets (``max_train_pairs``/``max_eval_pairs``) applied. Validation scores
  against the pairs' ``agreement_label`` when they have one (`--label cf` pairs: all positives
  share label 1.0, which no correlation can use), else against ``label``.
* ``make_datasets``: the ``datasets.Dataset`` the loss reads: (sentence_a, sentence_b, label),
  or for the in-batch losses (anchor, positive), or (anchor, positive, negative) when the pairs
  hold negatives (label < 0, e.g. `pairs --label cf --hard-negatives`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import read_catalog
from ..errors import AnirecError, warn
from ..io import hash_file, hash_strings
from ..labels import AGREEMENT_COLUMN
from ..split import check_pairs_split
from .config import FinetuneConfig
from .objectives import IN_BATCH_NEGATIVE_LOSSES

REQUIRED_COLUMNS = ["anime_a", "anime_b", "label", "split"]
SPLITS = ("train", "validation")


def read_pairs(path: str | Path) -> pd.DataFrame:
    """Read and check a pairs file (parquet from `anirec pairs`; a CSV with the same columns also works)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AnirecError(f"{path}: pairs file not found. Create it with `anirec pairs --out {path}`.")
    try:
        df = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as exc:
        raise AnirecError(f"{path}: cannot read the pairs file ({type(exc).__name__}: {str(exc)[:200]}).") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise AnirecError(
            f"{path}: pairs file lacks column(s) {', '.join(missing)} (has: {', '.join(map(str, df.columns))}). "
            f"Expected {', '.join(REQUIRED_COLUMNS)}, as written by `anirec pairs`."
        )
    if len(df) == 0:
        raise AnirecError(f"{path}: the pairs file has no rows.")
    check_pairs_split(path)
    for col in ("anime_a", "anime_b"):
        if not pd.api.types.is_integer_dtype(df[col]):
            raise AnirecError(f"{path}: column '{col}' must hold integer MAL_IDs (found {df[col].dtype}).")
    label = pd.to_numeric(df["label"], errors="coerce").astype(np.float32)
    bad = ~np.isfinite(label.to_numpy())
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise AnirecError(f"{path}: row {row}: label {df['label'].iloc[row]!r} is not a number ({int(bad.sum())} such rows).")
    split = df["split"].astype(str)
    unknown = sorted(set(split.unique()) - set(SPLITS))
    if unknown:
        raise AnirecError(f"{path}: column 'split' has value(s) {', '.join(map(repr, unknown[:5]))}: only 'train' and 'validation' are allowed.")
    out = pd.DataFrame({"anime_a": df["anime_a"].astype(np.int64), "anime_b": df["anime_b"].astype(np.int64),
                        "label": label, "split": split})
    if AGREEMENT_COLUMN in df.columns:
        out[AGREEMENT_COLUMN] = pd.to_numeric(df[AGREEMENT_COLUMN], errors="coerce").astype(np.float32)
    return out


@dataclass
class PairTexts:
    """Pairs with their two descriptions, split into train and validation, and what was left out."""

    train: pd.DataFrame  # anime_a, anime_b, text_a, text_b, label (in-batch losses: the positives)
    validation: pd.DataFrame  # text_a, text_b, label (the label Spearman is measured against)
    pairs_total: int
    missing_anime: int  # pairs naming an anime that is not in the catalog (left out)
    train_available: int  # train pairs usable before the budget / the positives filter
    validation_available: int
    validation_label: str = "label"  # which column of the pairs file validation scores against
    negatives: pd.DataFrame | None = None  # in-batch losses: train pairs with label < 0 (anime_a, anime_b)
    descriptions: pd.Series | None = None  # MAL_ID -> description, to look up negatives


def attach_texts(pairs: pd.DataFrame, catalog: pd.DataFrame, cfg: FinetuneConfig) -> PairTexts:
    """Look up both descriptions of every pair; drop pairs whose anime are missing; apply budgets."""
    desc = catalog.drop_duplicates("MAL_ID").set_index("MAL_ID")["description"]
    text_a = pairs["anime_a"].map(desc)
    text_b = pairs["anime_b"].map(desc)
    known = text_a.notna() & text_b.notna()
    df = pairs.assign(text_a=text_a, text_b=text_b)[known]
    train = df[df["split"] == "train"][["anime_a", "anime_b", "text_a", "text_b", "label"]]
    validation = df[df["split"] == "validation"]
    n_train, n_val = len(train), len(validation)
    validation_label = "label"
    if AGREEMENT_COLUMN in validation and validation[AGREEMENT_COLUMN].notna().sum() >= 2:
        # CF pairs: the graded reference label, where the pair has one, is what Spearman can rank
        validation_label = AGREEMENT_COLUMN
        validation = validation[validation[AGREEMENT_COLUMN].notna()]
        validation = validation.assign(label=validation[AGREEMENT_COLUMN])
    validation = validation[["text_a", "text_b", "label"]]
    negatives = None
    if cfg.loss in IN_BATCH_NEGATIVE_LOSSES:  # in-batch negatives: train on the positive pairs
        if cfg.hard_negatives:
            negatives = train.loc[train["label"] < 0, ["anime_a", "anime_b"]].reset_index(drop=True)
        train = train[train["label"] > 0]
    if cfg.max_train_pairs is not None and len(train) > cfg.max_train_pairs:
        train = train.sample(n=cfg.max_train_pairs, random_state=cfg.seed)
    if cfg.max_eval_pairs is not None and len(validation) > cfg.max_eval_pairs:
        validation = validation.sample(n=cfg.max_eval_pairs, random_state=cfg.seed)
    return PairTexts(train.reset_index(drop=True), validation.reset_index(drop=True), len(pairs),
                     int((~known).sum()), n_train, n_val, validation_label,
                     negatives if negatives is not None and len(negatives) else None, desc)


def check_pair_texts(texts: PairTexts, cfg: FinetuneConfig) -> None:
    where = f"{cfg.pairs} with catalog {cfg.catalog}"
    if texts.missing_anime:
        warn(f"{texts.missing_anime:,} of {texts.pairs_total:,} pairs name anime that are not in {cfg.catalog}; "
             "they were left out (build the pairs against the same catalog to use them).")
    if len(texts.train) == 0:
        why = " positive (label > 0)" if cfg.loss in IN_BATCH_NEGATIVE_LOSSES else ""
        raise AnirecError(f"{where}: no{why} training pairs left ({texts.train_available:,} train rows, "
                          f"{texts.missing_anime:,} pairs with anime missing from the catalog). "
                          "Check that the pairs were made from this catalog and have split == 'train'.")
    if len(texts.validation) < 2:
        raise AnirecError(f"{where}: {len(texts.validation)} validation pair(s) with both anime in the catalog"
                          f"{' and an ' + AGREEMENT_COLUMN if texts.validation_label == AGREEMENT_COLUMN else ''}; "
                          "at least 2 are needed to score. Make the pairs with a validation split.")


def load_pair_texts(cfg: FinetuneConfig) -> tuple[PairTexts, dict]:
    """The run's pairs with their texts (checked), and what scores.json records about the data."""
    pairs = read_pairs(cfg.pairs)
    catalog = read_catalog(cfg.catalog)
    texts = attach_texts(pairs, catalog, cfg)
    check_pair_texts(texts, cfg)
    data = {
        "pairs_file": str(cfg.pairs), "pairs_sha256": hash_file(Path(cfg.pairs).expanduser()),
        "catalog_file": str(cfg.catalog), "catalog_description_hash": hash_strings(catalog["description"]),
        "pairs_total": texts.pairs_total, "pairs_missing_anime": texts.missing_anime,
        "train_pairs_available": texts.train_available, "train_pairs_used": len(texts.train),
        "validation_pairs_available": texts.validation_available, "validation_pairs_used": len(texts.validation),
        "validation_label": texts.validation_label,
    }
    return texts, data


def negative_for_each(positives: pd.DataFrame, negatives: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A negative anime for every positive pair (anchor a, positive b): one of a's negative pairs
    (either side of the pair), else one of b's (the pair is then read as b -> a), else a random
    anime of the positives that is neither a nor b (an extra random negative, which is what
    in-batch negatives are anyway). Returns (negative MAL_ID, kind: 2 hard for a, 1 hard for b, 0 random)."""
    rng = np.random.default_rng(seed)
    by_anime = pd.concat([
        negatives.rename(columns={"anime_a": "anime", "anime_b": "negative"}),
        negatives.rename(columns={"anime_b": "anime", "anime_a": "negative"}),
    ]).groupby("anime")["negative"].apply(np.asarray).to_dict()

    def draw(anime):
        options = by_anime.get(anime)
        return -1 if options is None else int(options[rng.integers(len(options))])

    a, b = positives["anime_a"].to_numpy(), positives["anime_b"].to_numpy()
    neg_a = np.array([draw(x) for x in a], np.int64)
    neg_b = np.array([draw(x) for x in b], np.int64)
    kind = np.where(neg_a >= 0, 2, np.where(neg_b >= 0, 1, 0))
    negative = np.where(kind == 2, neg_a, neg_b)
    pool = np.unique(np.r_[a, b])
    for row in np.flatnonzero(kind == 0):
        pick = pool[rng.integers(len(pool))]
        while len(pool) > 2 and pick in (a[row], b[row]):
            pick = pool[rng.integers(len(pool))]
        negative[row] = pick
    return negative, kind


def make_datasets(texts: PairTexts, loss: str, seed: int = 42):
    """The training ``datasets.Dataset`` and what it holds: (sentence_a, sentence_b, label); for
    the in-batch losses (anchor, positive), or (anchor, positive, negative) when there are negatives."""
    from datasets import Dataset

    t = texts.train
    if loss not in IN_BATCH_NEGATIVE_LOSSES:
        return Dataset.from_dict({"sentence_a": t["text_a"].tolist(), "sentence_b": t["text_b"].tolist(),
                                  "label": t["label"].astype(np.float32).tolist()}), {"columns": 3}
    if texts.negatives is None:
        return Dataset.from_dict({"anchor": t["text_a"].tolist(), "positive": t["text_b"].tolist()}), {"columns": 2}
    negative, kind = negative_for_each(t, texts.negatives, seed)
    swap = kind == 1  # only b has a hard negative: b is the anchor
    anchor = np.where(swap, t["text_b"], t["text_a"])
    positive = np.where(swap, t["text_a"], t["text_b"])
    dataset = Dataset.from_dict({"anchor": anchor.tolist(), "positive": positive.tolist(),
                                 "negative": texts.descriptions.loc[negative].tolist()})
    return dataset, {"columns": 3, "triplets_hard_negative": int((kind > 0).sum()),
                     "triplets_random_negative": int((kind == 0).sum()),
                     "hard_negative_pairs": int(len(texts.negatives))}
