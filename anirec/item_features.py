"""Item features: one dense row per catalog anime, what side-information models read as F.

A feature matrix is blocks side by side, each block's rows of unit length times its weight,
so the rows' dot product - what a closed form with side information adds to its Gram matrix
(cEASE: G = X^T X + alpha^2 F F^T + lambda I) - is the weighted sum of one cosine per block:

* **text**: the descriptions, as TF-IDF reduced by TruncatedSVD to ``dims`` dimensions
  (``model = "tfidf"``; a full TF-IDF vocabulary is ~30k columns, too wide for a dense F, and
  the reduction keeps the topics that several anime share), as a sentence-transformers model's
  vectors (a name or a folder; through the embedding cache), or both fused (``tfidf_weight``,
  each cosine scaled by its spread over the catalog's pairs first, as the text method does);
  ``model = "none"`` leaves text out;
* **structured fields**: genres, studios, source and type as one-hot blocks (a multi-valued
  field like genres spreads its row over its values), each with its own weight (0 = left out).
  A value only one anime has says nothing about similarity and is dropped.

Only the catalog is read, never a rating: features of an anime nobody rated are as good as
any other's, which is the point of side information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import AnirecError

TFIDF = "tfidf"
NO_TEXT = "none"
# structured field -> catalog column; a field's values are comma-separated
STRUCTURED = {"genres": "Genres", "studios": "Studios", "source": "Source", "type": "Type"}
_MISSING = {"", "unknown", "none", "nan", "none found, add some"}


@dataclass
class FeatureSpec:
    """What goes into F (every weight multiplies a block of unit rows)."""

    model: str = TFIDF  # "tfidf" (SVD-reduced), a sentence-transformers name/path, or "none"
    dims: int = 256  # TF-IDF's TruncatedSVD dimensions
    tfidf_weight: float = 0.0  # with a dense model: TF-IDF's say in the fused text block (0.5: equal)
    text_weight: float = 1.0
    genres_weight: float = 0.0
    studios_weight: float = 0.0
    source_weight: float = 0.0
    type_weight: float = 0.0
    max_seq_length: int | None = None  # dense model: tokens per description (None: the model's own)
    backend: str = "torch"
    seed: int = 0  # TruncatedSVD's randomised solver

    def check(self, where: str) -> None:
        if self.dims < 1:
            raise AnirecError(f"{where}: dims must be at least 1 (e.g. 256).")
        if not 0.0 <= self.tfidf_weight <= 1.0:
            raise AnirecError(f"{where}: tfidf_weight must be between 0 and 1.")
        for name in ("text_weight", *(f"{f}_weight" for f in STRUCTURED)):
            if getattr(self, name) < 0:
                raise AnirecError(f"{where}: {name} must be 0 or more.")
        if self.model not in (TFIDF, NO_TEXT):
            from .backends import require_backend

            require_backend(self.backend, f"{where}: backend")
        if self.width_blocks() == []:
            raise AnirecError(f"{where}: no item features: set model (tfidf or a model) or a structured *_weight above 0.")

    def width_blocks(self) -> list[str]:
        blocks = ["text"] if self.model != NO_TEXT and self.text_weight > 0 else []
        return blocks + [f for f in STRUCTURED if getattr(self, f"{f}_weight") > 0]


def unit_rows(m: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return (m / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def tfidf_svd_rows(descriptions: list[str], dims: int, seed: int = 0) -> np.ndarray:
    """Unit rows of the descriptions' TF-IDF (the text method's vectoriser) reduced to ``dims``."""
    from sklearn.decomposition import TruncatedSVD

    from .item_vectors import tfidf_vectors

    tfidf = tfidf_vectors(descriptions)
    width = min(dims, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
    if width < 1:  # a one-word or one-anime catalog: nothing to reduce
        return unit_rows(tfidf.toarray())
    svd = TruncatedSVD(n_components=width, algorithm="randomized", n_iter=5, random_state=seed)
    return unit_rows(svd.fit_transform(tfidf))


def pair_similarity_spread(rows, sample: int = 2000, seed: int = 0) -> float:
    """Standard deviation of the cosine between two distinct items (rows are unit-norm), from a
    seeded sample of at most ``sample`` items: 2,000 items give ~2M pairs, plenty for one std,
    and keep a 20k-anime catalog's cost at one 2,000 x 2,000 product."""
    n = rows.shape[0]
    if n < 2:
        return 0.0
    pick = np.sort(np.random.default_rng(seed).choice(n, size=min(n, sample), replace=False))
    sub = rows[pick]
    sims = sub @ sub.T
    sims = sims.toarray() if sp.issparse(sims) else np.asarray(sims)
    upper = np.triu_indices(len(pick), 1)
    return float(np.asarray(sims[upper], np.float64).std())


def fusion_share(dense, tfidf, weight: float) -> tuple[float, dict]:
    """The share s of a fused similarity (1-s) * dense cosine + s * TF-IDF cosine at which the
    two weigh (1-weight) : weight once each cosine is divided by its spread over the catalog's
    pairs (a MiniLM cosine spreads ~6x a TF-IDF one: an unscaled 50/50 sum is MiniLM alone)."""
    dense_spread, tfidf_spread = pair_similarity_spread(dense), pair_similarity_spread(tfidf)
    if dense_spread > 0 and tfidf_spread > 0:
        a, b = (1.0 - weight) / dense_spread, weight / tfidf_spread
        share = b / (a + b)
    else:  # a degenerate catalog (one item, identical texts): no spread to scale by
        share = weight
    return float(share), {"dense_pair_spread": round(dense_spread, 5), "tfidf_pair_spread": round(tfidf_spread, 5),
                          "tfidf_share": round(float(share), 5)}


def field_values(column: pd.Series) -> list[list[str]]:
    """Each row's comma-separated values (missing markers dropped)."""
    out = []
    for cell in column.fillna("").astype(str):
        values = [v.strip() for v in cell.split(",")]
        out.append(sorted({v for v in values if v.lower() not in _MISSING}))
    return out


def one_hot_rows(values: list[list[str]]) -> np.ndarray:
    """(items x values shared by at least two items) with each row of unit length."""
    counts: dict[str, int] = {}
    for row in values:
        for v in row:
            counts[v] = counts.get(v, 0) + 1
    vocab = {v: i for i, v in enumerate(sorted(v for v, c in counts.items() if c >= 2))}
    m = np.zeros((len(values), len(vocab)), np.float32)
    for r, row in enumerate(values):
        cols = [vocab[v] for v in row if v in vocab]
        m[r, cols] = 1.0
    return unit_rows(m)


def text_rows(catalog: pd.DataFrame, spec: FeatureSpec, context: dict) -> tuple[np.ndarray, dict]:
    """The text block (unit rows) and what it was."""
    texts = catalog["description"].astype(str).tolist()
    if spec.model == TFIDF:
        rows = tfidf_svd_rows(texts, spec.dims, spec.seed)
        return rows, {"model": TFIDF, "dims": int(rows.shape[1])}
    from .embeddings import load_or_embed

    emb = load_or_embed(catalog, spec.model, spec.max_seq_length or None, context.get("cache_dir"),
                        batch_size=context.get("batch_size", 32), show_progress=context.get("progress", True),
                        backend=spec.backend)
    info = {"model": spec.model, "resolved": emb.model, "fingerprint": emb.model_fingerprint,
            "max_seq_length": emb.max_seq_length, "backend": emb.backend, "cache_hit": emb.cache_hit,
            "embed_seconds": round(emb.seconds, 3), "dims": emb.dims}
    rows = unit_rows(emb.vectors)
    if spec.tfidf_weight > 0:
        # the text method's fusion on one scale (anirec/recommenders/text.py), on dense rows
        tfidf = tfidf_svd_rows(texts, spec.dims, spec.seed)
        share, fusion = fusion_share(rows, tfidf, spec.tfidf_weight)
        rows = np.hstack([np.sqrt(1.0 - share) * rows, np.sqrt(share) * tfidf]).astype(np.float32)
        info.update(fusion, dims=int(rows.shape[1]))
    return rows, info


# The last few F computed in this process, by (descriptions, spec, cache folder): an evaluation
# or a tuning grid fits one method many times on the same catalog, and the TF-IDF SVD of a
# 4k-anime catalog alone takes seconds (F is small: 17,562 x 256 float32 is 18 MB).
_MEMO: dict = {}
_MEMO_SIZE = 4


def item_features(catalog: pd.DataFrame, spec: FeatureSpec, context: dict | None = None) -> tuple[np.ndarray, dict]:
    """(items x d) float32 F, rows aligned with the catalog, and a description of its blocks."""
    from .io import hash_strings

    context = context or {}
    columns = ["description", *(c for c in STRUCTURED.values() if c in catalog.columns)]
    key = (hash_strings(catalog[columns].astype(str).agg("\x1f".join, axis=1).tolist()), repr(spec),
           str(context.get("cache_dir")))
    if key not in _MEMO:
        if len(_MEMO) >= _MEMO_SIZE:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = _item_features(catalog, spec, context)
    f, info = _MEMO[key]
    return f.copy(), dict(info)


def _item_features(catalog: pd.DataFrame, spec: FeatureSpec, context: dict) -> tuple[np.ndarray, dict]:
    blocks, info = [], {"blocks": {}}
    if "text" in spec.width_blocks():
        rows, text_info = text_rows(catalog, spec, context)
        blocks.append(spec.text_weight * rows)
        info["embedding"] = text_info
        info["blocks"]["text"] = {"weight": spec.text_weight, "dims": int(rows.shape[1])}
    for field, column in STRUCTURED.items():
        weight = getattr(spec, f"{field}_weight")
        if weight <= 0:
            continue
        if column not in catalog.columns:
            raise AnirecError(f"catalog has no {column!r} column for {field}_weight; rebuild it with `anirec build` "
                              f"or set {field}_weight = 0.")
        rows = one_hot_rows(field_values(catalog[column]))
        blocks.append(weight * rows)
        info["blocks"][field] = {"weight": weight, "dims": int(rows.shape[1])}
    f = np.hstack(blocks).astype(np.float32) if blocks else np.zeros((len(catalog), 0), np.float32)
    info["dims"] = int(f.shape[1])
    return np.ascontiguousarray(f), info
