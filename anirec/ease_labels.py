"""EASE-structure pair labels (`anirec pairs --label ease-cosine`): regress the text embedding
onto the item geometry of the closed-form CF model.

Why: cEASE / Add-EASE (Jeunen, Van Balen, Goethals, RecSys 2020) stacks an item-feature matrix
F under the ratings, G = X'X + a^2 F'F + lambda I, so F'F, the text similarity of every anime
pair, is added to the co-occurrence gram. MARec (Monteil et al., RecSys 2024) aligns EASE's
item similarities with metadata-embedding similarities for the same reason. The side feature
that helps most is one whose similarities look like the CF model's own, so this label asks the
embedder to reproduce them: a pair's label is the cosine of the two anime's low-rank EASE
factors, and training regresses the embedding cosine onto it (CosineSimilarityLoss: the
absolute level matters, since unrelated anime should get a cosine near 0 in F'F as they do in
the CF structure, not just a lower rank).

The label, computed from the *train* rows of the pairs split only (the rows `evaluate --split`
never holds out), on the allowed anime (catalog minus ``--exclude-anime``, so the cold-start
anime are not even EASE columns):

* B = EASE weights (Steck 2019) of the promoter matrix (opinion +1, ratings 9-10), lambda ``lam``;
  row a of B is how promoting a moves the score of every other anime;
* B ~ U S V' (truncated SVD, rank ``rank``); an anime's factor is its row of U S (= its row of B
  projected on the top ``rank`` right singular vectors: the cosine of two factors is the cosine of
  the two rank-``rank`` rows of B), L2-normalised;
* label(a, b) = cos(factor a, factor b) in [-1, 1].

Only anime with at least ``min_promoters`` train promoters get pairs (a row of B built from one
or two promoters is noise). Every such anime contributes three kinds of pairs, so the label's
whole range is seen: its ``neighbors`` nearest anime by factor cosine (the CF neighbours, high
labels), its ``text_neighbors`` most TF-IDF-similar anime (what the text alone would call
similar: the label says whether users agree) and ``random_pairs`` random anime (mostly near 0).
A pair found twice keeps its first kind in that order. ``max_pairs`` keeps a seeded random
sample of that many, an equal share from each kind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .cf_pairs import train_opinions
from .co_ratings import listed_pair_counts
from .errors import AnirecError
from .item_vectors import tfidf_vectors
from .labels import PAIR_COLUMNS, PairsResult, validation_split
from .neighbors import neighbor_table
from .recommenders.ease import check_ease_memory, ease_weights

LABEL = "ease-cosine"
PAIR_KINDS = ("neighbor", "text", "random")  # priority when a pair is drawn twice
EASE_PAIR_COLUMNS = PAIR_COLUMNS + ["pair_kind"]


@dataclass
class EaseCosineConfig:
    lam: float = 200.0  # EASE's L2 weight (the recommender's default)
    rank: int = 64  # factors kept from the SVD of B
    min_promoters: int = 5  # train promoters an anime needs to get pairs
    neighbors: int = 5  # per anime: nearest anime by factor cosine
    text_neighbors: int = 5  # per anime: most TF-IDF-similar anime
    random_pairs: int = 5  # per anime: random anime
    max_pairs: int | None = None  # keep a seeded sample of N pairs, an equal share per kind
    validation_size: float = 0.2
    seed: int = 42
    label: str = LABEL  # so the pairs file's metadata names its label like the other label kinds

    def resolved(self) -> "EaseCosineConfig":
        """A checked copy; raise AnirecError naming the option on a bad value."""
        c = EaseCosineConfig(**asdict(self))
        if c.lam <= 0:
            raise AnirecError(f"--lam {c.lam}: must be positive (e.g. 200).")
        for name in ("rank", "min_promoters"):
            if getattr(c, name) < 1:
                raise AnirecError(f"--{name.replace('_', '-')} {getattr(c, name)}: must be at least 1.")
        for name in ("neighbors", "text_neighbors", "random_pairs"):
            if getattr(c, name) < 0:
                raise AnirecError(f"--{name.replace('_', '-')} {getattr(c, name)}: must be 0 or more.")
        if c.neighbors + c.text_neighbors + c.random_pairs == 0:
            raise AnirecError("--neighbors, --text-neighbors and --random-pairs are all 0: no pair would be drawn.")
        if c.max_pairs is not None and c.max_pairs < 1:
            raise AnirecError(f"--max-pairs {c.max_pairs}: must be at least 1.")
        if not 0.0 <= c.validation_size < 1.0:
            raise AnirecError(f"--validation-size {c.validation_size}: must be in [0, 1).")
        return c


# --------------------------------------------------------------------------- the factors


def ease_factors(promoted: sp.spmatrix, lam: float, rank: int, seed: int = 42) -> np.ndarray:
    """(items x r) L2-normalised rows of U S, the rank-r SVD of the EASE matrix B of a binary
    users x items matrix (r = min(rank, items)); a row of zeros stays zero."""
    weights = ease_weights(sp.csr_matrix(promoted), lam).astype(np.float64)
    n = weights.shape[0]
    r = min(rank, n)
    if n <= 4 * r:  # small: the exact SVD is cheap and randomized_svd's oversampling would not fit
        u, s, _ = np.linalg.svd(weights, full_matrices=False)
        u, s = u[:, :r], s[:r]
    else:
        from sklearn.utils.extmath import randomized_svd

        u, s, _ = randomized_svd(weights, r, random_state=seed)
    factors = u * s
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    return (factors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


# --------------------------------------------------------------------------- the pairs


def draw_pairs(factors: np.ndarray, text_rows: sp.csr_matrix, cfg: EaseCosineConfig) -> pd.DataFrame:
    """Unordered pairs (i < j, rows of ``factors``) of each kind, each pair once (first kind wins)."""
    n = len(factors)
    rng = np.random.default_rng(cfg.seed)
    drawn = []
    if cfg.neighbors:
        idx, _ = neighbor_table(factors, cfg.neighbors)
        drawn.append(("neighbor", idx))
    if cfg.text_neighbors:
        idx, _ = neighbor_table(text_rows, cfg.text_neighbors)
        drawn.append(("text", idx))
    if cfg.random_pairs:
        offset = rng.integers(1, n, size=(n, cfg.random_pairs))  # never the anime itself
        drawn.append(("random", (np.arange(n)[:, None] + offset) % n))
    frames = []
    for kind, idx in drawn:
        anchor = np.repeat(np.arange(n), idx.shape[1])
        other = idx.ravel()
        ok = (other >= 0) & (other != anchor)
        frames.append(pd.DataFrame({"i": np.minimum(anchor[ok], other[ok]), "j": np.maximum(anchor[ok], other[ok]),
                                    "pair_kind": kind}))
    pairs = pd.concat(frames, ignore_index=True).drop_duplicates(["i", "j"], keep="first")
    return pairs.sort_values(["i", "j"]).reset_index(drop=True)


def balanced_sample(pairs: pd.DataFrame, total: int, seed: int) -> pd.DataFrame:
    """``total`` pairs, an equal share from each kind; a kind with fewer leaves its rest to the others."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero((pairs["pair_kind"] == k).to_numpy()) for k in PAIR_KINDS]
    groups = sorted((rng.permutation(g) for g in groups if len(g)), key=len)
    kept, left = [], total
    for pos, members in enumerate(groups):
        share = left // (len(groups) - pos)
        kept.append(members[:share])
        left -= len(kept[-1])
    return pairs.iloc[np.sort(np.concatenate(kept))].reset_index(drop=True)


def label_ease_pairs(split_frame: pd.DataFrame, catalog: pd.DataFrame, cfg: EaseCosineConfig) -> PairsResult:
    """EASE-factor cosine labels among ``catalog`` anime (MAL_ID, description), from the *train*
    rows of ``split_frame`` only (see the module docstring)."""
    cfg = cfg.resolved()
    t = train_opinions(split_frame, catalog["MAL_ID"].to_numpy(np.int64))
    n = len(t.anime_ids)
    funnel = {"anime_in_catalog": int(catalog["MAL_ID"].nunique()), "catalog_anime_with_promoters": n}
    check_ease_memory(n)
    eligible = np.flatnonzero(t.promoters >= cfg.min_promoters)
    funnel[f"anime_with_{cfg.min_promoters}+_promoters"] = int(len(eligible))
    if len(eligible) < 2:
        raise AnirecError(f"only {len(eligible)} catalog anime have at least {cfg.min_promoters} train promoters, "
                          "so there is no pair to label. Lower --min-promoters or pass more ratings.")
    factors = ease_factors(t.promoted, cfg.lam, cfg.rank, cfg.seed)[eligible]
    desc = catalog.drop_duplicates("MAL_ID").set_index("MAL_ID").loc[t.anime_ids[eligible], "description"]
    drawn = draw_pairs(factors, tfidf_vectors(desc.astype(str).tolist()), cfg)
    for kind in PAIR_KINDS:
        funnel[f"{kind}_pairs_drawn"] = int((drawn["pair_kind"] == kind).sum())
    if cfg.max_pairs is not None and len(drawn) > cfg.max_pairs:
        drawn = balanced_sample(drawn, cfg.max_pairs, cfg.seed)
    i, j = drawn["i"].to_numpy(np.int64), drawn["j"].to_numpy(np.int64)
    label = np.clip((factors[i] * factors[j]).sum(axis=1), -1.0, 1.0)
    a, b = eligible[i], eligible[j]  # columns of the train matrices
    counts = listed_pair_counts(t.columns, a, b)
    pairs = pd.DataFrame({
        "anime_a": t.anime_ids[a], "anime_b": t.anime_ids[b], "label": label.astype(np.float32),
        **{k: v.astype(np.int32) for k, v in counts.items()},
        "pair_kind": drawn["pair_kind"].to_numpy(),
    })
    # validation keeps the neighbour share of train: those pairs carry the high labels
    pairs["split"] = validation_split((pairs["pair_kind"] == "neighbor").to_numpy(), cfg.validation_size, cfg.seed)
    pairs = pairs.sort_values(["anime_a", "anime_b"], kind="stable").reset_index(drop=True)[EASE_PAIR_COLUMNS]
    funnel["pairs"] = len(pairs)
    funnel["catalog_anime_in_a_pair"] = int(len(np.unique(np.r_[pairs["anime_a"], pairs["anime_b"]])))
    funnel["train"] = int((pairs["split"] == "train").sum())
    funnel["validation"] = int((pairs["split"] == "validation").sum())
    return PairsResult(pairs=pairs, funnel=funnel, scores=pairs["label"].to_numpy(np.float64), config=cfg)

