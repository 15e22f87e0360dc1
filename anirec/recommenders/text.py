"""Content-based: anime near in their descriptions, by a sentence-transformers model, by
TF-IDF (``model = "tfidf"``), or both fused (``tfidf_weight``), served by the reference pooling.

Fusion is done on the item rows: [sqrt(1-w) * dense, sqrt(w) * tfidf] has unit norm and its
dot product is (1-w) * dense cosine + w * TF-IDF cosine, so the fused method is the same
pooling over one similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..baselines import tfidf_vectors
from ..errors import AnirecError
from .base import Params
from .pooled import PooledRecommender

TFIDF = "tfidf"


@dataclass
class TextParams(Params):
    model: str = TFIDF  # "tfidf", or a sentence-transformers name/path
    max_seq_length: int = 0  # tokens per description; 0 = the model's own setting
    tfidf_weight: float = 0.0  # share of TF-IDF cosine fused into a dense model's cosine
    backend: str = "torch"  # how a dense model runs (torch, onnx, onnx-int8, openvino)
    n_neighbors: int = 20

    def check(self, where):
        if self.n_neighbors < 1:
            raise AnirecError(f"{where}: n_neighbors must be at least 1.")
        if not 0.0 <= self.tfidf_weight <= 1.0:
            raise AnirecError(f"{where}: tfidf_weight must be between 0 and 1.")
        if self.max_seq_length < 0:
            raise AnirecError(f"{where}: max_seq_length must be positive (0 = the model's own).")
        if self.model != TFIDF:  # an unknown backend or a missing extra fails before any work
            from ..models import require_backend

            require_backend(self.backend, f"{where}: backend")


def text_item_rows(catalog, params: TextParams, context: dict):
    """L2-normalised item rows of the catalog's descriptions, and what the embedding was."""
    texts = catalog["description"].astype(str).tolist()
    info: dict = {"model": params.model}
    if params.model == TFIDF:
        rows = tfidf_vectors(texts)
        info["vocabulary"] = int(rows.shape[1])
        return rows, info
    from ..embeddings import load_or_embed

    emb = load_or_embed(catalog, params.model, params.max_seq_length or None, context.get("cache_dir"),
                        batch_size=context.get("batch_size", 32), show_progress=context.get("progress", True),
                        backend=params.backend)
    info.update(resolved=emb.model, fingerprint=emb.model_fingerprint, max_seq_length=emb.max_seq_length,
                backend=emb.backend, cache_hit=emb.cache_hit, embed_seconds=round(emb.seconds, 3))
    rows = emb.vectors
    w = params.tfidf_weight
    if w > 0:
        rows = sp.hstack([sp.csr_matrix(np.sqrt(1.0 - w) * rows), np.sqrt(w) * tfidf_vectors(texts)]).tocsr()
    return rows, info


class TextRecommender(PooledRecommender):
    name = "text"
    Params = TextParams
    uses_text = True

    def fit(self, interactions, catalog):
        self.item_rows, self.embedding = text_item_rows(catalog, self.params, self.context)
        self.n_items = self.item_rows.shape[0]
        return self

    def describe(self):
        return {**super().describe(), "embedding": getattr(self, "embedding", None)}
