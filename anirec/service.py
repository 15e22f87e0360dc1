"""A loaded recommender folder answering queries: what `anirec serve` and `recommend --json` return.

One :class:`Service` per loaded folder holds what every query reads (the catalog view with its
fields and franchises, the title index, per-anime display values), built once, so a query
is the method's own scoring plus a few milliseconds. A :class:`Request` is any mix of liked
titles or MAL_IDs, ratings, a MAL list export (its text) and a free-text query, with k and
the :class:`~anirec.filters.Filters`; :meth:`Service.recommend` turns it into the JSON
payload both front ends print, so the HTTP answer is the CLI answer.

Limits (:data:`LIMITS`) are checked here, not in a front end: k <= 100, at most 500 likes and
500 ratings, a MAL list of at most 5 MB, a query of at most 500 characters. Every problem is
an :class:`AnirecError` of one line (the server answers it as a 4xx).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .anime_fields import numeric
from .errors import AnirecError
from .filters import Filters
from .fitted import RATINGS_COLUMN, FittedRecommender
from .interactions import rows_of_ids
from .opinions import PROMOTER_MIN
from .mal_list import MAX_LIST_BYTES, on_catalog, parse_mal_list
from .ranking import CatalogView, Ranked, rank

MAX_K, MAX_LIKES, MAX_RATINGS, MAX_QUERY_CHARS = 100, 500, 500, 500
LIMITS = {"k": MAX_K, "likes": MAX_LIKES, "ratings": MAX_RATINGS, "mal_list_bytes": MAX_LIST_BYTES,
          "query_chars": MAX_QUERY_CHARS}
MAX_SEARCH = 50


class NotFound(AnirecError):
    """An anime id that is not in the served catalog (HTTP 404)."""


@dataclass
class Request:
    """One recommendation query (any of likes / ratings / mal_list / query)."""

    likes: list = field(default_factory=list)  # MAL_IDs (int) or titles (str)
    ratings: list = field(default_factory=list)  # (anime_id, rating 1-10) pairs
    mal_list: str | None = None  # the XML text of a MAL export
    query: str | None = None  # free text
    k: int = 10
    filters: Filters = field(default_factory=Filters)
    mal_list_name: str = "mal_list"  # what errors call the export (a file name on the CLI)

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


class Service:
    """Queries against one loaded folder; cheap per query, everything shared built at start."""

    def __init__(self, fitted: FittedRecommender):
        self.fitted = fitted
        self.recommender = fitted.recommender
        cat = fitted.catalog
        self.catalog = cat
        self.ids = fitted.ids
        counts = cat[RATINGS_COLUMN].to_numpy() if RATINGS_COLUMN in cat else None
        self.view = CatalogView(cat, counts)
        self.members = np.nan_to_num(numeric(cat, "Members"))
        # Plain lists: a pandas lookup per shown value cost more than the method's own scoring.
        self.names = cat["Name"].astype(str).tolist()
        self.english = [None if e.strip().casefold() in ("", "unknown", "nan") else e
                        for e in cat["English name"].astype(str).tolist()]
        self._titles = None
        self._folded: list[tuple[str, str]] | None = None

    # ------------------------------------------------------------------ lookups

    @property
    def titles(self):
        if self._titles is None:
            from .titles import TitleIndex

            self._titles = TitleIndex(self.catalog)
        return self._titles

    def warm(self) -> "Service":
        """Build what the first query would (franchises, titles), so it is as fast as the rest."""
        _ = self.view.franchises, self.titles, self._search_keys()
        return self

    def row(self, mal_id: int) -> int:
        row = int(rows_of_ids(self.ids, [mal_id])[0]) if -(1 << 63) <= mal_id < (1 << 63) else -1
        if row < 0:
            raise NotFound(f"anime {mal_id}: no anime with that MAL_ID in this recommender's catalog "
                           f"({len(self.ids):,} anime); find one with GET /anime?q=TITLE.")
        return row

    def match(self, likes: list) -> tuple[np.ndarray, list[dict]]:
        """Liked MAL_IDs / titles -> rows, and how each was matched (fuzzy ones say how closely)."""
        rows, matched = [], []
        for like in likes:
            if isinstance(like, (int, np.integer)) and not isinstance(like, bool):
                row, how, score, title = self.row(int(like)), "id", 100.0, None
            elif isinstance(like, str) and like.strip():
                m = self.titles.match(like)
                row, how, score, title = m.row, m.how, round(float(m.score), 1), m.title
            else:
                raise AnirecError(f"likes: {like!r} is neither a MAL_ID nor a title.")
            rows.append(row)
            matched.append({"query": like, "mal_id": int(self.ids[row]), "title": self._name(row),
                            "matched_title": title or self._name(row), "how": how, "closeness": score})
        return np.asarray(rows, np.int64), matched

    def _name(self, row: int) -> str:
        return self.names[row]

    # ------------------------------------------------------------------ answers

    def item(self, row: int) -> dict:
        """The display fields of one anime (what search, lookups and result items share)."""
        f = self.view.fields
        score = f.mal_score[row]
        return {"mal_id": int(self.ids[row]), "title": self.names[row], "english_title": self.english[row],
                "year": None if np.isnan(f.year[row]) else int(f.year[row]), "season": f.season[row] or None,
                "type": f.type[row] or None, "genres": sorted(f.genres[row]),
                "mal_score": None if np.isnan(score) else round(float(score), 2)}

    def _items(self, ranked: Ranked) -> list[dict]:
        out = []
        for i, row in enumerate(ranked.rows):
            b = int(ranked.because[i])
            out.append({**self.item(int(row)), "score": round(float(ranked.scores[i]), 6),
                        "is_new": None if ranked.is_new is None else bool(ranked.is_new[i]),
                        "because": [] if b < 0 else [{"mal_id": int(self.ids[b]), "title": self._name(b)}]})
        return out

    def _payload(self, ranked: Ranked, k: int, matched: list, extra: dict) -> dict:
        notes = list(ranked.notes)
        if len(ranked.rows) < k:
            notes.append(f"only {len(ranked.rows)} of {k} found: method {self.fitted.method!r} scores "
                         f"{len(ranked.rows)} of the {ranked.candidates:,} anime that pass the filters")
        return {"items": self._items(ranked), "matched": matched, **extra, "notes": notes}

    def recommend(self, req: Request) -> dict:
        """The answer to one :class:`Request` (see the module doc)."""
        req.check()
        liked, matched = self.match(req.likes)
        seen = [liked]
        mal = None
        if req.ratings:
            ids = np.asarray([a for a, _ in req.ratings], np.int64)
            rows = np.asarray([self.row(int(a)) for a in ids], np.int64)
            scores = np.asarray([r for _, r in req.ratings], np.int64)
            liked = np.r_[liked, rows[scores >= PROMOTER_MIN]]
            seen.append(rows)
        if req.mal_list is not None:
            if len(req.mal_list.encode("utf-8")) > MAX_LIST_BYTES:
                raise AnirecError(f"{req.mal_list_name}: more than {MAX_LIST_BYTES // (1 << 20)} MB of XML; "
                                  "export a shorter list (e.g. only Completed).")
            got = on_catalog(parse_mal_list(req.mal_list, req.mal_list_name), self.ids)
            liked = np.r_[liked, got.liked]
            seen.append(got.seen)
            mal = got.summary()
            if not len(liked) and req.query is None:
                raise AnirecError(f"{req.mal_list_name}: no anime scored 9-10 on this catalog ({got.entries} "
                                  f"entries, {got.off_catalog} not in it); score some 9 or 10, or add likes or a query.")
        text = req.query.strip() if req.query is not None else None
        ranked = rank(self.recommender, self.view, liked, np.concatenate(seen), req.filters, req.k, text)
        extra = {"mal_list": mal} if mal is not None else {}
        return self._payload(ranked, req.k, matched, extra)

    def similar(self, mal_id: int, k: int = 10, filters: Filters | None = None) -> dict:
        """Anime like one anime (its ``similar_items``), under the same filters as any query."""
        if not 1 <= k <= MAX_K:
            raise AnirecError(f"k = {k}: ask for 1 to {MAX_K}.")
        row = self.row(mal_id)
        ranked = rank(self.recommender, self.view, [row], (), filters or Filters(), k, similar=True)
        return self._payload(ranked, k, [], {"anime": self.item(row)})

    # ------------------------------------------------------------------ search

    def _search_keys(self) -> list[tuple[str, str]]:
        if self._folded is None:
            names = self.catalog["Name"].astype(str).str.casefold().tolist()
            english = self.catalog["English name"].astype(str).str.casefold().tolist()
            self._folded = [(" ".join(a.split()), " ".join(b.split()) if b != "unknown" else "")
                            for a, b in zip(names, english)]
        return self._folded

    def search(self, q: str, limit: int = 10) -> list[dict]:
        """Title search for autocomplete: titles starting with ``q``, then containing it (popular
        first); only when none does, the closest fuzzy matches (a typo), which cost ~10x more."""
        if not 1 <= limit <= MAX_SEARCH:
            raise AnirecError(f"limit = {limit}: ask for 1 to {MAX_SEARCH}.")
        key = " ".join(q.casefold().split())
        if not key:
            raise AnirecError("q: empty; type part of a title.")
        if len(key) > MAX_QUERY_CHARS:
            raise AnirecError(f"q: {len(key)} characters, at most {MAX_QUERY_CHARS}.")
        prefix, inside = [], []
        for row, (a, b) in enumerate(self._search_keys()):
            if a.startswith(key) or b.startswith(key):
                prefix.append(row)
            elif key in a or key in b:
                inside.append(row)
        by_members = lambda rows: sorted(rows, key=lambda r: -self.members[r])  # noqa: E731
        rows = (by_members(prefix) + by_members(inside))[:limit]
        if not rows:
            rows = [r for _, r, _ in self.titles.closest(q, n=limit)]
        return [self.item(r) for r in rows]
