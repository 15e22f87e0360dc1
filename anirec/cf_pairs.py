"""CF-neighbour pair labels (`anirec pairs --label cf`): teach the embedder what users co-like.

The reference labels (agreement of co-raters) score a pair; a recommender needs each anime's
nearest anime. So the positives here are each anime's top-N collaborative-filtering
neighbours, computed from the *train* rows of the split only (the rule that keeps the
evaluation's holdout leakage-free: `evaluate --split` protects exactly these rows):

* promoters: the train rows with opinion +1 (ratings 9-10) on the allowed anime (catalog
  minus ``--exclude-anime``: the cold-start anime never enter the CF model, not even as
  columns that EASE's inverse would mix in);
* ``itemknn``: cosine of the anime's promoter columns; ``ease``: the EASE weight B[a, b]
  (how much promoting a lifts b), only positive weights;
* a neighbour needs at least ``min_co_promoters`` users promoting both (noise guard);
* each anime's top ``neighbors`` become positive pairs (label 1.0), each unordered pair once.

Hard negatives (optional, ``hard_negatives`` per anchor), for anchors that have a positive:
anime the text alone would call similar but users do not. Candidates are the anchor's
``text_pool`` most TF-IDF-similar allowed anime (the same descriptions the embedder reads);
a candidate is a hard negative when it is not a positive pair, *no* train user promoted both,
and that zero means something: the overlap expected by chance, promoters(a) x promoters(n) /
promoting users, is at least ``min_expected`` (0.5: zero happens by chance in e^-0.5 = 61% of
such pairs, so this is "no sign of co-liking", not proof of dislike; at 1.0 the shared 4,575
users leave only ~500 candidates). The most text-similar such candidates are kept (label
-1.0, the sign convention of the reference labels: negative = dissimilar).

Every pair also carries its co-rating counts over train and the reference ``agreement`` label
(``agreement_label``, NaN unless support >= ``min_support`` and both outcomes occur), so the
validation Spearman still compares the embedder with a graded signal (all positives share
label 1.0, which no correlation can use).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .co_ratings import OpinionColumns, listed_pair_counts, opinion_columns, pair_dot
from .errors import AnirecError
from .item_vectors import itemknn_vectors, tfidf_vectors
from .labels import AGREEMENT_COLUMN, PAIR_COLUMNS, PairsResult, agreement_from_counts, validation_split
from .neighbors import block_neighbors, neighbor_table
from .recommenders.ease import check_ease_memory, ease_weights

CF_METHODS = ("itemknn", "ease")
CF_PAIR_COLUMNS = PAIR_COLUMNS + [AGREEMENT_COLUMN, "cf_score"]
POSITIVE, NEGATIVE = 1.0, -1.0


@dataclass
class CFPairsConfig:
    method: str = "itemknn"
    neighbors: int = 10  # positives per anchor (before merging a->b with b->a)
    min_co_promoters: int = 3
    lam: float = 200.0  # EASE L2 weight
    hard_negatives: int = 0  # per anchor; 0 = positives only
    text_pool: int = 200  # TF-IDF neighbours per anchor searched for hard negatives
    min_expected: float = 0.5  # co-promoters expected by chance for a zero to count (hard negatives)
    min_support: int = 50  # for the agreement_label column (the reference's support rule)
    validation_size: float = 0.2
    seed: int = 42
    label: str = "cf"  # so the pairs file's metadata names its label like the other label kinds

    def resolved(self) -> "CFPairsConfig":
        c = CFPairsConfig(**asdict(self))
        if c.method not in CF_METHODS:
            raise AnirecError(f"--cf-method {c.method!r}: choose one of {', '.join(CF_METHODS)}.")
        for name in ("neighbors", "min_co_promoters", "text_pool"):
            if getattr(c, name) < 1:
                raise AnirecError(f"--{name.replace('_', '-')} {getattr(c, name)}: must be at least 1.")
        if c.hard_negatives < 0:
            raise AnirecError(f"--hard-negatives {c.hard_negatives}: must be 0 (none) or more.")
        if c.min_expected <= 0:
            raise AnirecError(f"min_expected {c.min_expected}: must be positive (e.g. 0.5).")
        if c.lam <= 0:
            raise AnirecError(f"--lam {c.lam}: must be positive (e.g. 200).")
        if not 0.0 <= c.validation_size < 1.0:
            raise AnirecError(f"--validation-size {c.validation_size}: must be in [0, 1).")
        return c


# --------------------------------------------------------------------------- train matrices


@dataclass
class TrainOpinions:
    """Train opinions on the allowed anime that have a promoter: columns = ``anime_ids``."""

    columns: OpinionColumns  # +1 promoter / -1 detractor (what the co-rating counts read)
    promoted: sp.csc_matrix  # (users x n) float32: 1 where promoter (what the neighbours read)
    n_promoting_users: int

    @property
    def anime_ids(self) -> np.ndarray:
        return self.columns.anime_ids

    @property
    def promoters(self) -> np.ndarray:
        return np.diff(self.promoted.indptr).astype(np.int64)


def train_opinions(split_frame: pd.DataFrame, allowed_ids) -> TrainOpinions:
    """The split's train rows (and nothing else) on allowed anime with at least one promoter."""
    train = split_frame[(split_frame["split"].astype(str) == "train").to_numpy()]
    train = train[np.isin(train["anime_id"].to_numpy(np.int64), np.asarray(allowed_ids, np.int64))]
    promoted_ids = np.unique(train.loc[train["opinion"].to_numpy() > 0, "anime_id"].to_numpy(np.int64))
    columns = opinion_columns(train[np.isin(train["anime_id"].to_numpy(np.int64), promoted_ids)])
    promoted = (columns.opinions > 0).astype(np.float32).tocsc()
    return TrainOpinions(columns, promoted, int(len(np.unique(promoted.indices))))


# --------------------------------------------------------------------------- neighbours


def cf_neighbors(t: TrainOpinions, cfg: CFPairsConfig, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each anime's top ``cfg.neighbors`` CF neighbours (column positions, -1 = none) and scores."""
    promoted = t.promoted
    n = promoted.shape[1]
    items_users = promoted.T.tocsr()
    if cfg.method == "itemknn":
        item_rows = itemknn_vectors(promoted.tocsr())  # promoter columns, L2-normalised: dot = cosine
        item_cols = item_rows.T.tocsc()

        def block_scores(rows):
            return (item_rows[rows] @ item_cols).toarray()
    else:
        check_ease_memory(n)
        weights = ease_weights(promoted.tocsr(), cfg.lam)

        def block_scores(rows):
            return weights[rows].copy()

    def neighbor_scores(rows):
        scores = block_scores(rows).astype(np.float32)
        co = (items_users[rows] @ promoted).toarray()
        scores[(co < cfg.min_co_promoters) | (scores <= 0)] = -np.inf
        return scores

    return block_neighbors(neighbor_scores, n, cfg.neighbors, np.arange(n), block)


def _unordered(a: np.ndarray, b: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    """Pairs (column positions) with i < j, each once (the higher score kept)."""
    df = pd.DataFrame({"i": np.minimum(a, b), "j": np.maximum(a, b), "score": score})
    df = df.sort_values("score", ascending=False, kind="stable").drop_duplicates(["i", "j"])
    return df.sort_values(["i", "j"]).reset_index(drop=True)


def positive_pairs(idx: np.ndarray, val: np.ndarray) -> pd.DataFrame:
    anchor = np.repeat(np.arange(len(idx)), idx.shape[1])
    flat, score = idx.ravel(), val.ravel()
    ok = flat >= 0
    return _unordered(anchor[ok], flat[ok], score[ok])


def hard_negative_pairs(t: TrainOpinions, descriptions: list[str], positives: pd.DataFrame,
                        cfg: CFPairsConfig) -> pd.DataFrame:
    """Per anchor (an anime with a positive), its ``cfg.hard_negatives`` most text-similar anime
    with zero co-promoters where at least one was expected by chance (see the module docstring)."""
    n = len(t.anime_ids)
    text_idx, text_val = neighbor_table(tfidf_vectors(descriptions), cfg.text_pool)
    anchors = np.unique(np.r_[positives["i"].to_numpy(), positives["j"].to_numpy()])
    a = np.repeat(anchors, text_idx.shape[1])
    c, sim = text_idx[anchors].ravel(), text_val[anchors].ravel()
    ok = c >= 0
    a, c, sim = a[ok], c[ok], sim[ok]
    pos_keys = np.r_[positives["i"] * n + positives["j"], positives["j"] * n + positives["i"]]
    p = t.promoters
    expected = p[a].astype(np.float64) * p[c] / max(t.n_promoting_users, 1)
    keep = ~np.isin(a * n + c, pos_keys) & (expected >= cfg.min_expected)
    a, c, sim = a[keep], c[keep], sim[keep]
    keep = pair_dot(t.promoted, a, c) == 0
    a, c, sim = a[keep], c[keep], sim[keep]
    # text_idx rows are sorted by similarity, so the first hard_negatives per anchor are the most similar
    rank = np.arange(len(a)) - np.searchsorted(a, a, side="left")
    keep = rank < cfg.hard_negatives
    return _unordered(a[keep], c[keep], sim[keep])


# --------------------------------------------------------------------------- the labels


def label_cf_pairs(split_frame: pd.DataFrame, catalog: pd.DataFrame, cfg: CFPairsConfig) -> PairsResult:
    """CF-neighbour positives (+ optional hard negatives) among ``catalog`` anime (MAL_ID,
    description), from the *train* rows of ``split_frame`` only."""
    cfg = cfg.resolved()
    catalog_ids = catalog["MAL_ID"].to_numpy(np.int64)
    t = train_opinions(split_frame, catalog_ids)
    n = len(t.anime_ids)
    train_anime = split_frame.loc[(split_frame["split"].astype(str) == "train").to_numpy(), "anime_id"]
    funnel = {"anime_in_train": int(train_anime.nunique()), "anime_in_catalog": int(len(catalog_ids)),
              "catalog_anime_with_promoters": n}
    if n < 2:
        raise AnirecError(f"only {n} catalog anime have a promoter in the train rows, so there is no CF neighbour. "
                          "Check that --catalog matches the ratings, or lower --quantile.")
    idx, val = cf_neighbors(t, cfg)
    funnel["anime_with_a_neighbor"] = int((idx[:, 0] >= 0).sum())
    pos = positive_pairs(idx, val)
    funnel["positives"] = len(pos)
    neg = pos.iloc[:0]
    if cfg.hard_negatives and len(pos):
        desc = catalog.drop_duplicates("MAL_ID").set_index("MAL_ID").loc[t.anime_ids, "description"]
        neg = hard_negative_pairs(t, desc.astype(str).tolist(), pos, cfg)
        funnel["anchors_with_hard_negatives"] = int(len(np.unique(np.r_[neg["i"], neg["j"]])))
    funnel["negatives"] = len(neg)

    i = np.r_[pos["i"].to_numpy(), neg["i"].to_numpy()].astype(np.int64)
    j = np.r_[pos["j"].to_numpy(), neg["j"].to_numpy()].astype(np.int64)
    is_pos = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    counts = listed_pair_counts(t.columns, i, j)
    agreement = agreement_from_counts(counts["both_promote"], counts["disagree"])
    agreement_ok = (counts["both_promote"] > 0) & (counts["disagree"] > 0) & (counts["support"] >= cfg.min_support)
    pairs = pd.DataFrame({
        "anime_a": t.anime_ids[i], "anime_b": t.anime_ids[j],
        "label": np.where(is_pos, POSITIVE, NEGATIVE).astype(np.float32),
        **{k: v.astype(np.int32) for k, v in counts.items()},
        AGREEMENT_COLUMN: np.where(agreement_ok, agreement, np.nan).astype(np.float32),
        "cf_score": np.r_[pos["score"].to_numpy(), neg["score"].to_numpy()].astype(np.float32),
    })
    pairs["split"] = validation_split(is_pos, cfg.validation_size, cfg.seed)
    pairs = pairs.sort_values(["anime_a", "anime_b"], kind="stable").reset_index(drop=True)[CF_PAIR_COLUMNS]
    funnel["catalog_anime_in_a_pair"] = int(len(np.unique(np.r_[pairs["anime_a"], pairs["anime_b"]])))
    funnel["catalog_anime_in_a_positive"] = int(len(np.unique(np.r_[pos["i"], pos["j"]])))
    funnel["pairs_with_agreement_label"] = int(agreement_ok.sum())
    funnel["train"] = int((pairs["split"] == "train").sum())
    funnel["validation"] = int((pairs["split"] == "validation").sum())
    val_rows = pairs[pairs["split"] == "validation"]
    funnel["validation_with_agreement_label"] = int(val_rows[AGREEMENT_COLUMN].notna().sum())
    scores = pairs[AGREEMENT_COLUMN].to_numpy()
    return PairsResult(pairs=pairs, funnel=funnel, scores=scores[np.isfinite(scores)], config=cfg)
