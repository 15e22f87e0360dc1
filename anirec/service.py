"""A loaded recommender folder answering `anirec serve`'s requests through the one serving path.

One :class:`Service` per loaded folder holds a :class:`~anirec.serving.Served` (the catalog
view with its fields and franchises, the title index), built once and warmed at start, so a
query is the method's own scoring plus a few milliseconds. A :class:`Request` (liked titles or
MAL_IDs, ratings, a MAL list's text, a free text, k and filters) becomes a query by
:func:`~anirec.serving.likes_query` and its answer the :func:`~anirec.serving.payload`: the
same two functions `anirec recommend --json` uses, so the HTTP answer is the CLI answer.
Title search for autocomplete and the anime lookups live here: only the page needs them.

Limits (:data:`LIMITS`) are checked here, not only by the HTTP models: k <= 100, at most 500
likes and 500 ratings, a MAL list of at most 5 MB, a query of at most 500 characters. Every
problem is an :class:`AnirecError` of one line (the server answers it as a 4xx).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .anime_fields import numeric
from .errors import AnirecError
from .filters import Filters
from .fitted import FittedRecommender
from .mal_list import MAX_LIST_BYTES
from .serving import Query, Served, answer, likes_query, payload
from .titles import fold

MAX_K, MAX_LIKES, MAX_RATINGS, MAX_QUERY_CHARS = 100, 500, 500, 500
LIMITS = {"k": MAX_K, "likes": MAX_LIKES, "ratings": MAX_RATINGS, "mal_list_bytes": MAX_LIST_BYTES,
          "query_chars": MAX_QUERY_CHARS}
MAX_SEARCH = 50


class NotFound(AnirecError):
    """An anime id that is not in the served catalog (HTTP 404)."""


@dataclass
class Request:
    """One recommendation request (any of likes / ratings / mal_list / query)."""

    likes: list = field(default_factory=list)  # MAL_IDs (int) or titles (str)
    ratings: list = field(default_factory=list)  # (anime_id, rating 1-10) pairs
    mal_list: str | None = None  # the XML text of a MAL export
    query: str | None = None  # free text
    k: int = 10
    filters: Filters = field(default_factory=Filters)

    def check(self) -> None:
        if not 1 <= self.k <= MAX_K:
            raise AnirecError(f"k = {self.k}: ask for 1 to {MAX_K} recommendations.")
        if len(self.likes) > MAX_LIKES:
            raise AnirecError(f"likes: {len(self.likes)} given, at most {MAX_LIKES}; send the ones that matter most.")
        if len(self.ratings) > MAX_RATINGS:
            raise AnirecError(f"ratings: {len(self.ratings)} given, at most {MAX_RATINGS}; "
                              "send a MAL list export for a whole list.")
        if self.query is not None and len(self.query) > MAX_QUERY_CHARS:
            raise AnirecError(f"query: {len(self.query)} characters, at most {MAX_QUERY_CHARS}.")
        if self.query is not None and not self.query.strip():
            raise AnirecError("query: empty; describe what to watch, e.g. \"dark psychological thriller\".")
        for anime_id, rating in self.ratings:
            if not 1 <= rating <= 10:
                raise AnirecError(f"ratings: anime {anime_id} rated {rating}; a MAL rating is 1-10.")


def about(fitted: FittedRecommender) -> dict:
    """What an answer says of the recommender that gave it (the same on the CLI and over HTTP)."""
    return {"method": fitted.method, "recommender": fitted.folder.name, "model": fitted.model}


class Service:
    """Requests against one loaded folder; cheap per request, everything shared built at start."""

    def __init__(self, fitted: FittedRecommender):
        self.fitted = fitted
        self.served = Served(fitted.catalog, fitted.recommender)
        self.recommender = fitted.recommender
        self.catalog = fitted.catalog
        self.ids = self.served.ids
        self.view = self.served.view
        self.members = np.nan_to_num(numeric(self.catalog, "Members"))
        self._folded: list[_TitleText] | None = None

    def warm(self) -> "Service":
        """Build what the first request would (franchises, titles), so it is as fast as the rest."""
        _ = self.view.franchises, self.served.titles, self._search_texts()
        return self

    def row(self, mal_id: int) -> int:
        row = self.served.row_of.get(int(mal_id), -1)
        if row < 0:
            raise NotFound(f"anime {mal_id}: no anime with that MAL_ID in this recommender's catalog "
                           f"({len(self.ids):,} anime); find one with GET /anime?q=TITLE.")
        return row

    def item(self, row: int) -> dict:
        return self.served.item(row)

    def slow(self, req: Request) -> bool:
        """Whether answering ``req`` may take long: a MAL list to parse (up to 5 MB of XML), or a
        free text for a sentence model to embed (loaded on the first such query: seconds)."""
        return req.mal_list is not None or (req.query is not None and self.fitted.model not in (None, "tfidf"))

    def recommend(self, req: Request, mal_list_name: str = "mal_list") -> dict:
        """The answer to one :class:`Request`: :func:`~anirec.serving.payload` of its query."""
        req.check()
        for like in req.likes:
            if not isinstance(like, str):
                self.row(int(like))  # an unknown MAL_ID is a 404 here, as in GET /anime/{id}
        query, extra = likes_query(self.served, req.likes, req.ratings, req.mal_list, req.query, req.k, req.filters,
                                   mal_list_name)
        result = answer(self.served, query)
        result.extra.update(extra)
        return payload(self.served, result, about(self.fitted))

    def similar(self, mal_id: int, k: int = 10, filters: Filters | None = None) -> dict:
        """Anime like one anime (its ``similar_items``), under the same filters as any query."""
        if not 1 <= k <= MAX_K:
            raise AnirecError(f"k = {k}: ask for 1 to {MAX_K}.")
        row = self.row(mal_id)
        result = answer(self.served, Query(mal_ids=(mal_id,), k=k, filters=filters or Filters()))
        result.extra["anime"] = self.item(row)
        return payload(self.served, result, about(self.fitted))

    # ------------------------------------------------------------------ search

    def _search_texts(self) -> list["_TitleText"]:
        if self._folded is None:
            names = [fold(a) for a in self.catalog["Name"].astype(str)]
            english = [fold(b) if b.casefold() != "unknown" else "" for b in self.catalog["English name"].astype(str)]
            self._folded = [_TitleText(names), _TitleText(english)]
        return self._folded

    def search(self, q: str, limit: int = 10) -> list[dict]:
        """Title search for autocomplete: titles starting with ``q``, then containing it (popular
        first); only when none does, the closest fuzzy matches (a typo), which cost ~10x more."""
        if not 1 <= limit <= MAX_SEARCH:
            raise AnirecError(f"limit = {limit}: ask for 1 to {MAX_SEARCH}.")
        key = fold(q)
        if not key:
            raise AnirecError("q: empty; type part of a title.")
        if len(key) > MAX_QUERY_CHARS:
            raise AnirecError(f"q: {len(key)} characters, at most {MAX_QUERY_CHARS}.")
        starts, inside = [], []
        for text in self._search_texts():  # Name, then English name
            rows, at_start = text.hits(key)
            starts.append(rows[at_start])
            inside.append(rows)
        prefix = np.unique(np.concatenate(starts))
        inside = np.setdiff1d(np.concatenate(inside), prefix)  # sorted, unique
        by_members = lambda rows: rows[np.lexsort((rows, -self.members[rows]))].tolist()  # noqa: E731  (ties: by row)
        rows = (by_members(prefix) + by_members(inside))[:limit]
        if not rows:
            rows = [r for _, r, _ in self.served.titles.closest(q, n=limit)]
        return [self.item(r) for r in rows]


class _TitleText:
    """One folded title per catalog row, joined into one string by newlines (which no folded
    title holds), so that finding a text in every title is one regular-expression scan in C
    rather than a Python loop over the catalog (17,562 titles: ~10 ms a search)."""

    def __init__(self, titles: list[str]):
        self.text = "\n" + "\n".join(titles) + "\n"
        self.begins = np.cumsum([1] + [len(t) + 1 for t in titles])[:-1]  # where each row's title starts

    def hits(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows whose title contains ``key`` (no newline in it; a row may repeat), and whether the
        title starts with it. No occurrence spans a newline, so the scan enters every row at its
        start and finds an occurrence there if the title starts with ``key``."""
        at = np.fromiter((m.start() for m in re.finditer(re.escape(key), self.text)), np.int64)
        rows = np.searchsorted(self.begins, at, side="right") - 1
        return rows, at == self.begins[rows]
