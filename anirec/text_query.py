"""Free text ("dark psychological thriller") embedded into a text method's item-row space.

A text method's item rows are unit TF-IDF rows, unit sentence-model vectors, or both fused
as ``[sqrt(1-s) * dense, sqrt(s) * tfidf]`` (:func:`anirec.recommenders.text.fuse_rows`).
A query is embedded the same way, so its dot product with an item row is the same cosine
(or fused cosine) the method ranks anime by:

* TF-IDF: the fit's vocabulary and idf, which the fitted folder keeps (``tfidf_vocabulary`` as
  UTF-8 bytes, one word a line, ``tfidf_idf``), applied as scikit-learn's ``transform`` does
  (lowercase, its default token pattern, tf = 1 + log(count), times idf, L2 norm; a stop word
  is simply not in the vocabulary). Done here in a few lines because importing scikit-learn
  costs 2-3 s, longer than a server may take to start;
* a sentence model: loaded by its name or path on the first query (seconds), then kept;
* fused: both, weighted by the share ``s`` the fit chose, which the folder keeps too.

A folder fitted before queries were possible lacks the TF-IDF arrays: its query is one
line asking to refit.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import scipy.sparse as sp

from .errors import AnirecError

_VOCABULARY, _IDF, _SHARE = "tfidf_vocabulary", "tfidf_idf", "tfidf_share"
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern


class TextQuery:
    """Embeds query texts for one fitted text method (``model``: "tfidf" or a sentence model)."""

    def __init__(self, model: str, fused: bool = False, vocabulary: list[str] | None = None,
                 idf: np.ndarray | None = None, tfidf_share: float = 0.0, max_seq_length: int | None = None,
                 backend: str = "torch"):
        self.model, self.fused, self.vocabulary, self.idf = model, fused, vocabulary, idf
        self.tfidf_share = float(tfidf_share)
        self.max_seq_length, self.backend = max_seq_length, backend
        self._columns: dict[str, int] | None = None
        self._encoder = None
        self._lock = threading.Lock()  # one model load, even when a server's threads ask at once

    @property
    def dense(self) -> bool:
        return self.model != "tfidf"

    @classmethod
    def from_fit(cls, model: str, fused: bool, vectorizer, item_rows, dense_dims: int | None,
                 **settings) -> "TextQuery":
        """After a fit: the vectorizer (None when no TF-IDF part) and, for fused rows, the dense width
        (the TF-IDF share is what is left of a fused row's squared norm after its dense part)."""
        vocabulary = idf = None
        share = 0.0 if model != "tfidf" else 1.0
        if vectorizer is not None:
            vocabulary, idf = vectorizer.get_feature_names_out().tolist(), vectorizer.idf_
            if dense_dims is not None:
                dense_part = sp.csr_matrix(item_rows[0])[:, :dense_dims]
                share = 1.0 - float(dense_part.multiply(dense_part).sum())
        return cls(model, fused, vocabulary, idf, share, **settings)

    def state(self) -> dict[str, np.ndarray]:
        if self.vocabulary is None:
            return {}
        words = "\n".join(self.vocabulary).encode("utf-8")
        return {_VOCABULARY: np.frombuffer(words, np.uint8), _IDF: np.asarray(self.idf, np.float32),
                _SHARE: np.asarray([self.tfidf_share], np.float64)}

    @classmethod
    def restore(cls, model: str, fused: bool, arrays: dict, **settings) -> "TextQuery":
        if _VOCABULARY not in arrays:
            return cls(model, fused, **settings)
        words = bytes(np.asarray(arrays[_VOCABULARY], np.uint8)).decode("utf-8").split("\n")
        return cls(model, fused, words, np.asarray(arrays[_IDF]), float(np.asarray(arrays[_SHARE])[0]), **settings)

    def _tfidf_row(self, text: str) -> sp.csr_matrix:
        if self.vocabulary is None:
            raise AnirecError("this recommender folder was fitted before free-text queries were kept in it; "
                              "refit it with `anirec fit` to use --query / \"query\".")
        if self._columns is None:
            self._columns = {w: i for i, w in enumerate(self.vocabulary)}
        counts: dict[int, int] = {}
        for token in _TOKEN.findall(text.lower()):
            col = self._columns.get(token)
            if col is not None:
                counts[col] = counts.get(col, 0) + 1
        cols = np.fromiter(sorted(counts), np.int64, len(counts))
        values = (1.0 + np.log([counts[c] for c in cols])) * self.idf[cols] if len(cols) else np.zeros(0)
        norm = float(np.sqrt(np.sum(np.square(values))))
        values = (values / norm if norm > 0 else values).astype(np.float32)
        return sp.csr_matrix((values, cols, [0, len(cols)]), shape=(1, len(self.vocabulary)))

    def _dense_row(self, text: str) -> np.ndarray:
        from .embeddings import encode_texts

        with self._lock:
            if self._encoder is None:
                from .models import load_model

                self._encoder = load_model(self.model, self.max_seq_length, backend=self.backend)
        return encode_texts(self._encoder, [text], show_progress=False)

    def row(self, text: str):
        """The query's (1 x dims) row: a dense array, or a CSR row when there is a TF-IDF part."""
        if not self.dense:
            row = self._tfidf_row(text)
            if row.nnz == 0:
                raise AnirecError(f"query {text[:60]!r}: none of its words is in the catalog's descriptions "
                                  "(stop words like 'the' do not count); use other words.")
            return row
        dense = self._dense_row(text)
        if not self.fused:
            return dense
        s = self.tfidf_share
        return sp.hstack([sp.csr_matrix(np.sqrt(1.0 - s) * dense), np.sqrt(s) * self._tfidf_row(text)]).tocsr()
