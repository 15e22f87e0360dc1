"""Item rows whose cosine says which anime are alike, for methods that do not embed.

* :func:`tfidf_vectors`: TF-IDF rows of the same descriptions the embedders read (the
  ``tfidf`` text model, its fusion with a dense one, the CF pairs' hard-negative pool);
* :func:`itemknn_vectors`: the CF view, each anime's column of the users' opinions.

Both are L2-normalised sparse rows, so a dot product is a cosine and
:func:`anirec.neighbors.neighbor_table` treats them like dense embeddings.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def tfidf_vectors(descriptions: list[str]) -> sp.csr_matrix:
    """TF-IDF rows (L2-normalised) of the same descriptions the embedders read."""
    return tfidf_fit(descriptions)[0]


def tfidf_fit(descriptions: list[str]):
    """:func:`tfidf_vectors` and the fitted vectorizer (its vocabulary and idf embed a free-text
    query: :mod:`anirec.text_query`, which repeats its tokenizer and sublinear tf)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    # sublinear tf: a word repeated in a long synopsis should not dominate; English stop
    # words and idf take care of the template's fixed sentences ("It was produced by ...").
    vec = TfidfVectorizer(stop_words="english", sublinear_tf=True, dtype=np.float32)
    return vec.fit_transform(descriptions).tocsr(), vec


def itemknn_vectors(fit: sp.csr_matrix) -> sp.csr_matrix:
    """Item rows for item-kNN CF: columns of the (users x items) opinion matrix, L2-normalised.

    ``fit`` holds +1 (promoter) / -1 (detractor) per rating used for fitting; two anime are
    similar when the same users promote (or pan) both. Unrated anime are zero rows.
    """
    from sklearn.preprocessing import normalize

    return normalize(sp.csr_matrix(fit, dtype=np.float32).T.tocsr(), norm="l2", axis=1)
