"""One query's ranked list under the query options, from any recommender.

A query is what a user liked (catalog rows), what they have seen (never recommended), an
optional free text and the :class:`~anirec.filters.Filters`. The filters become the
method's ``candidates``, so the method ranks only anime that may be shown and a filtered
list still has k items. Then:

* likes only: the method's ``recommend`` (the call the evaluation scores), or for one title
  asked as "more like this" its ``similar_items``;
* text only: the method's ``query_scores`` (cosine of the embedded query);
* both: the two rankings fused by reciprocal rank (Cormack, Clarke & Buettcher 2009: score
  ``sum 1 / (60 + rank)``): the method's score and a cosine are on unrelated scales, and a
  rank fusion needs no weight tuned to one data set;
* one entry per franchise: the best ranked of each; since that depends on the ranking, the
  list is asked for with room to spare and widened until k survive or candidates run out;
* ``because`` (:mod:`anirec.explain`) and ``is_new`` (no rating in the fitted data) per item.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .anime_fields import AnimeFields
from .errors import AnirecError
from .explain import because
from .filters import Filters, candidate_mask
from .franchises import Franchises
from .neighbors import top_k

RRF_K = 60  # the reciprocal-rank constant of Cormack et al.; a property of the fusion, not tuned here
_WIDEN = 4  # how much longer a list is asked for each time one-per-franchise leaves fewer than k


class CatalogView:
    """What query options read about a served catalog, parsed once per loaded catalog.

    ``n_ratings``: ratings per row in the data the recommender was fitted on (None: unknown)."""

    def __init__(self, catalog: pd.DataFrame, n_ratings: np.ndarray | None = None):
        self.catalog = catalog
        self.n_ratings = None if n_ratings is None else np.asarray(n_ratings, np.int64)
        self.fields = AnimeFields.of(catalog)
        self._franchises: Franchises | None = None

    @property
    def franchises(self) -> Franchises:
        if self._franchises is None:
            self._franchises = Franchises.of(self.catalog)
        return self._franchises

    def notes(self, filters: Filters) -> list[str]:
        """What the catalog cannot tell, said with the answer instead of silently ignored."""
        out = []
        if not filters.include_adult and "Rating" not in self.fields.has:
            out.append("this catalog has no Rating column, so R+/Rx titles cannot be left out "
                       "(refit the folder with this anirec, or pass --catalog)")
        return out


@dataclass
class Ranked:
    """Recommended catalog rows, best first, with their scores and explanations."""

    rows: np.ndarray
    scores: np.ndarray
    because: np.ndarray  # per row: the liked row that contributed most, -1 for none
    is_new: np.ndarray | None  # per row: nobody rated it in the fitted data (None: unknown)
    candidates: int  # how many anime passed the filters
    notes: list[str] = field(default_factory=list)


def _liked_matrix(rows: np.ndarray, n_items: int) -> sp.csr_matrix:
    """One user (1 x n_items) with 1 at ``rows`` (sorted, unique), built as CSR directly (the
    (row, col) form goes through COO: several times the cost)."""
    return sp.csr_matrix((np.ones(len(rows), np.float32), rows, np.array([0, len(rows)])), shape=(1, n_items))


def _positions(rows: np.ndarray, scores: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of each candidate in a ranked list; len(cand) for candidates it lacks."""
    rank = np.full(len(cand), len(cand), np.int64)
    ok = (rows >= 0) & np.isfinite(scores)
    rank[np.searchsorted(cand, rows[ok])] = np.arange(int(ok.sum()))
    return rank


def _reciprocal_rank(rankings: list[np.ndarray], n: int) -> np.ndarray:
    fused = np.zeros(len(rankings[0]), np.float64)
    for rank in rankings:
        fused += np.where(rank < n, 1.0 / (RRF_K + rank + 1), 0.0)
    return np.where(fused > 0, fused, -np.inf).astype(np.float32)


def _scorer(recommender, liked: np.ndarray, text: str | None, cand: np.ndarray, similar: bool,
            exclude: sp.csr_matrix | None):
    """A function want -> (rows, scores): the best ``want`` candidates for this query, best first.
    ``exclude`` (not None): nothing but the liked and seen rows is filtered out, so the method is
    called exactly as the evaluation calls it (seen rows excluded, every other item a candidate:
    a pooled method's neighbours are then not restricted), ``cand`` being what is left."""
    n_items = recommender.n_items

    def by_likes(want):
        if similar:
            idx, val = recommender.similar_items(liked[:1], want, candidates=None if exclude is not None and
                                                 exclude.nnz == 0 else cand)
        elif exclude is not None:  # (nothing seen: no exclusion to build, the liked are excluded anyway)
            idx, val = recommender.recommend(_liked_matrix(liked, n_items), want, exclude=exclude if exclude.nnz else None)
        else:
            idx, val = recommender.recommend(_liked_matrix(liked, n_items), want, candidates=cand)
        return idx[0], val[0]

    def by_text(want):
        idx, val = top_k(recommender.query_scores(text, cand), want)
        return np.where(idx[0] >= 0, cand[np.maximum(idx[0], 0)], -1), val[0]

    if text is None:
        return by_likes
    if not len(liked):
        return by_text
    # Both: each ranking whole, then fused (cheap for one user: a sort of the candidates).
    rankings = [_positions(*by_likes(len(cand)), cand), _positions(*by_text(len(cand)), cand)]
    fused = _reciprocal_rank(rankings, len(cand))

    def by_both(want):
        idx, val = top_k(fused[None, :], want)
        return np.where(idx[0] >= 0, cand[np.maximum(idx[0], 0)], -1), val[0]

    return by_both


def rank(recommender, view: CatalogView, liked=(), seen=(), filters: Filters = Filters(), k: int = 10,
         text: str | None = None, similar: bool = False, allowed=None) -> Ranked:
    """The k best anime for one query (see the module doc). ``seen``: rows never recommended;
    ``allowed``: the only rows that may be (None: any); ``similar``: one liked title, asked as
    "more like this" (its ``similar_items``) rather than as a user who liked it."""
    if k < 1:
        raise AnirecError(f"k = {k}: ask for at least one recommendation.")
    liked = np.unique(np.asarray(liked, np.int64))
    seen = np.unique(np.asarray(seen, np.int64))
    if not len(liked) and not text:
        raise AnirecError("nothing to recommend from: give liked anime, ratings, a MAL list or a free-text query.")
    mask = candidate_mask(view.fields, filters, view.franchises, liked, seen, view.n_ratings)
    if allowed is not None:
        mask &= np.isin(np.arange(len(mask)), np.asarray(allowed, np.int64))
    unrestricted = bool(mask.all())
    mask[liked] = False
    mask[seen] = False
    cand = np.flatnonzero(mask)
    notes = view.notes(filters)
    if not len(cand):
        empty = np.empty(0, np.int64)
        return Ranked(empty, np.empty(0, np.float32), empty, None, 0, notes + ["no anime passes these filters"])
    exclude = _liked_matrix(seen, recommender.n_items) if unrestricted else None
    score = _scorer(recommender, liked, text, cand, similar, exclude)
    k = min(k, len(cand))  # -k 10**12 asks for everything there is, not for 10**12 slots
    rows, scores = _best(score, k, len(cand), view.franchises if filters.one_per_franchise else None)
    is_new = None if view.n_ratings is None else view.n_ratings[rows] == 0
    return Ranked(rows, scores, because(recommender, liked, rows), is_new, len(cand), notes)


def _best(score, k: int, n_cand: int, franchises: Franchises | None) -> tuple[np.ndarray, np.ndarray]:
    """Ask ``score`` for a list long enough that k remain after one-per-franchise (when asked)."""
    want = min(n_cand, k if franchises is None else _WIDEN * k)
    while True:
        rows, scores = score(want)
        ok = (rows >= 0) & np.isfinite(scores)
        rows, scores = rows[ok], scores[ok]
        offered = len(rows)
        if franchises is not None:
            keep = franchises.best_of_each(rows)
            rows, scores = rows[keep], scores[keep]
        if len(rows) >= k or want >= n_cand or offered < want:
            return rows[:k], scores[:k].astype(np.float32)
        want = min(n_cand, want * _WIDEN)
