"""The one path for every query: a :class:`Query` answered by :func:`answer` over any
recommender, in memory (plain `anirec recommend` fits the text method) or from a fitted folder
(`--recommender`, `anirec serve`), for the CLI and the HTTP API alike.

A query names anime (titles, MAL_IDs) and/or gives catalog rows (what a user liked, what they
already rated or listed); what must never come back (``seen``, ``exclude``) and what may
(``candidates``) are rows too; its :class:`~anirec.filters.Filters` (type, years, genres, MAL
score, age rating, franchises) and a free text complete it. It is answered by the method's own
calls, the ones the evaluation scores (:mod:`anirec.ranking`), so what is served is what was
measured, under the filters asked:

* one named anime (and nothing liked from ratings, no text): ``similar_items`` ("Like X");
* anything else: one user who liked those anime, ``recommend`` (with the free text fused in
  by rank when given; text alone: the text part's ``query_scores``).

:func:`payload` is the JSON both `recommend --json` and `POST /recommend` print, and
:func:`likes_query` the request shape both accept (likes, ratings, a MAL list, free text), so
the HTTP answer is the CLI answer. Matching happens before the recommender is first needed,
so a mistyped title fails in milliseconds, before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np
import pandas as pd

from .errors import AnirecError
from .filters import Filters
from .fitted import RATINGS_COLUMN
from .interactions import opinions_on_catalog, user_items
from .mal_list import MAX_LIST_BYTES, on_catalog, parse_mal_list
from .opinions import PROMOTER_MIN
from .ranking import CatalogView, Ranked, rank
from .recommenders import Recommender
from .titles import TitleIndex, TitleMatch

SCORE_COLUMN = "recommender_score"  # the method's own score ("score" is MAL's)


@dataclass(frozen=True)
class Query:
    """What is asked. Rows are catalog rows (0 .. n_items-1) of the served catalog."""

    titles: tuple[str, ...] = ()  # anime named by title (exact, case-insensitive, then fuzzy)
    mal_ids: tuple[int, ...] = ()  # anime named by MAL_ID
    liked: tuple[int, ...] = ()  # rows the user liked (their 9-10 ratings); named anime are liked too
    seen: tuple[int, ...] = ()  # rows already rated or watched: never recommended
    exclude: tuple[int, ...] = ()  # more rows never recommended
    candidates: tuple[int, ...] | None = None  # rows that may be recommended (None: all)
    k: int = 10
    # What may be shown. The Python API's default filters nothing (the method's own list, as
    # evaluated); the CLI and HTTP front ends default to Filters(): no R+/Rx, one per franchise...
    filters: Filters = field(default_factory=Filters.none)
    text: str | None = None  # a free-text description, ranked by the method's text part
    as_user: bool = False  # one named anime is still a user's like (`--likes`), not "similar to"


@dataclass
class Answer:
    matches: list[TitleMatch]  # how each named anime was found
    liked: np.ndarray  # the rows the answer is for
    call: str  # "similar_items", "recommend" or "query_scores": which method call answered
    asked: dict = field(default_factory=dict)  # the query as --json shows it
    ranked: Ranked | None = None  # rows, scores, because, is_new, notes
    k: int = 10
    extra: dict = field(default_factory=dict)  # more for the payload (a MAL list's counts)
    served: "Served | None" = field(default=None, repr=False)  # whose catalog the rows are

    @cached_property
    def frame(self) -> pd.DataFrame:
        """rank, MAL_ID, titles, type, premiered, MAL score, SCORE_COLUMN, because (is_new); best
        first. Built when first read: the JSON answer never reads it, and a pandas frame of ten
        rows costs more than the method's own scoring of a 4k-anime catalog."""
        r, served = self.ranked, self.served
        extra = {SCORE_COLUMN: r.scores, "because": [served.name(b) if b >= 0 else "" for b in r.because]}
        if r.is_new is not None:
            extra["is_new"] = r.is_new
        return result_frame(served.catalog, r.rows, **extra)


class Served:
    """A recommender and the catalog rows it serves. ``fit`` (instead of ``recommender``) makes
    the recommender on first need, after a query's names are matched."""

    def __init__(self, catalog: pd.DataFrame, recommender: Recommender | None = None,
                 fit: Callable[[], Recommender] | None = None):
        if (recommender is None) == (fit is None):
            raise ValueError("give a recommender or a fit function")
        self.catalog = catalog.reset_index(drop=True)
        self.ids = self.catalog["MAL_ID"].to_numpy(np.int64)
        self._recommender, self._fit = recommender, fit
        self._titles: TitleIndex | None = None
        self._view: CatalogView | None = None
        # Plain lists and dicts: a pandas lookup per id or shown value costs more than the
        # method's own scoring of a 4k-anime catalog.
        self.row_of: dict[int, int] = {}  # MAL_ID -> row (a repeated id: its first row)
        for row, mal_id in enumerate(self.ids.tolist()):
            self.row_of.setdefault(mal_id, row)
        self.names = self.catalog["Name"].astype(str).tolist()
        self.english = [e if isinstance(e, str) and e.strip().casefold() not in ("", "unknown", "nan") else None
                        for e in self.catalog["English name"].astype(str).tolist()]
        self._items: list[dict | None] = [None] * len(self.ids)

    @property
    def recommender(self) -> Recommender:
        if self._recommender is None:
            self._recommender = self._fit()
            if self._recommender.n_items != len(self.ids):
                raise AnirecError(f"method fitted on {self._recommender.n_items} items, catalog has {len(self.ids)}.")
        return self._recommender

    @property
    def titles(self) -> TitleIndex:
        if self._titles is None:
            self._titles = TitleIndex(self.catalog)
        return self._titles

    @property
    def view(self) -> CatalogView:
        """The catalog's parsed fields and franchises (query filters), and ratings per anime."""
        if self._view is None:
            counts = self.catalog[RATINGS_COLUMN].to_numpy() if RATINGS_COLUMN in self.catalog else None
            self._view = CatalogView(self.catalog, counts)
        return self._view

    def item(self, row: int) -> dict:
        """One anime's display fields: what search, lookups and answers show (a new dict each
        call, made once per row: answers copy it rather than parse the fields again)."""
        shown = self._items[row]
        if shown is None:
            f = self.view.fields
            score = f.mal_score[row]
            shown = self._items[row] = {
                "mal_id": int(self.ids[row]), "title": self.names[row], "english_title": self.english[row],
                "year": None if np.isnan(f.year[row]) else int(f.year[row]), "season": f.season[row] or None,
                "type": f.type[row] or None, "genres": sorted(f.genres[row]),
                "mal_score": None if np.isnan(score) else round(float(score), 2)}
        return {**shown, "genres": list(shown["genres"])}

    def match(self, titles=(), mal_ids=()) -> list[TitleMatch]:
        """Titles and MAL_IDs -> catalog rows, in that order; an unknown one raises."""
        out = [self.titles.match(str(t)) for t in titles] if titles else []
        for mal_id in mal_ids:
            mal_id = int(mal_id)
            row = self.row_of.get(mal_id, -1)
            if row < 0:
                raise AnirecError(f"--id {mal_id}: no anime with that MAL_ID in the catalog ({len(self.ids):,} anime).")
            out.append(TitleMatch(str(mal_id), row, str(self.names[row]), "id"))
        return out

    def name(self, row: int) -> str:
        return self.names[row]


def result_frame(catalog: pd.DataFrame, rows: np.ndarray, **extra) -> pd.DataFrame:
    """The recommendation table: rank, MAL_ID, titles, type, premiered, MAL score, then ``extra``."""
    # Only the k result rows are touched: converting whole 17k-row columns costs milliseconds.
    cat = catalog.iloc[rows]
    score = pd.to_numeric(cat["Score"], errors="coerce").to_numpy(np.float64) if "Score" in cat else np.nan
    return pd.DataFrame({
        "rank": np.arange(1, len(rows) + 1),
        "MAL_ID": cat["MAL_ID"].to_numpy(np.int64),
        "title": cat["Name"].to_numpy(),
        "english_title": cat["English name"].to_numpy(),
        "type": cat["Type"].to_numpy(),
        "premiered": cat["Premiered"].to_numpy(),
        "score": score,
        **extra,
    })


def _rows(values, n_items: int, what: str) -> np.ndarray:
    """Sorted unique catalog rows, checked to be in 0..n_items-1."""
    rows = np.unique(np.asarray(values, np.int64))
    if len(rows) and (rows[0] < 0 or rows[-1] >= n_items):
        raise AnirecError(f"query {what}: rows must be catalog rows in 0..{n_items - 1}.")
    return rows


def _asked(served: Served, query: Query, matches: list[TitleMatch]) -> dict:
    """The query as --json shows it: the named anime, how many a user liked and rated, the options."""
    asked: dict = {}
    if matches:
        asked[("likes" if query.as_user else "titles")] = [served.name(m.row) for m in matches]
        asked["mal_ids"] = [int(served.ids[m.row]) for m in matches]
    if query.liked:
        asked.update(promoted=len(np.unique(query.liked)), rated=len(np.unique(query.seen)))
    if query.text is not None:
        asked["query"] = query.text
    asked["filters"] = query.filters.to_dict()
    return asked


def _unusable_note(served: Served, liked: np.ndarray, text: str | None) -> str | None:
    """A liked anime the method cannot use (EASE: nobody rated it) is named in one note, not
    silently dropped; when it can use none of them and no free text answers instead, the list
    would be arbitrary: one error."""
    rec = served.recommender
    usable = np.asarray(rec.usable_likes(liked), bool)
    if usable.all():
        return None
    names = [served.name(int(r)) for r in liked[~usable]]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    why = f"method {rec.name!r} has nothing to go by for {shown} (no rating of it in the fitted data)"
    if not usable.any() and not text:
        raise AnirecError(f"{why}, so its list would be arbitrary; fit `cease` (the default) or `hybrid`, "
                          "which read every anime's text.")
    return f"{why}: left out of this list; fit `cease` or `hybrid` to use it"


def answer(served: Served, query: Query) -> Answer:
    """Answer ``query`` with ``served``'s recommender (see the module docstring for which call)."""
    if query.k < 1:
        raise AnirecError(f"-k {query.k}: ask for at least one recommendation.")
    matches = served.match(query.titles, query.mal_ids)
    n = len(served.ids)
    liked = _rows(list(query.liked) + [m.row for m in matches], n, "liked")
    text = query.text.strip() if query.text is not None else None
    if not len(liked) and not text:
        raise AnirecError("give at least one title, --id MAL_ID, --likes TITLE, a MAL list or --query TEXT.")
    blocked = np.union1d(_rows(query.seen, n, "seen"), _rows(query.exclude, n, "exclude"))
    similar = len(liked) == 1 and not query.liked and not query.as_user and not text
    allowed = None if query.candidates is None else _rows(query.candidates, n, "candidates")
    unusable = _unusable_note(served, liked, text) if len(liked) else None
    ranked = rank(served.recommender, served.view, liked, blocked, query.filters, query.k, text, similar, allowed)
    if unusable:
        ranked.notes.insert(0, unusable)
    call = "similar_items" if similar else ("query_scores" if not len(liked) else "recommend")
    return Answer(matches, liked, call, _asked(served, query, matches), ranked, query.k, served=served)


def payload(served: Served, result: Answer, about: dict) -> dict:
    """The JSON of an answer, one shape for `recommend --json` and `POST /recommend`: what was
    asked and of which method (``about``), the items best first, how each title was matched,
    and notes on what the answer could not do."""
    r = result.ranked
    items = []
    for i, row in enumerate(r.rows):
        b = int(r.because[i])
        items.append({**served.item(int(row)), "score": round(float(r.scores[i]), 6),
                      "is_new": None if r.is_new is None else bool(r.is_new[i]),
                      "because": [] if b < 0 else [{"mal_id": int(served.ids[b]), "title": served.name(b)}]})
    matched = [{"query": m.query, "mal_id": int(served.ids[m.row]), "title": served.name(m.row),
                "matched_title": m.title, "how": m.how, "closeness": round(float(m.score), 1)} for m in result.matches]
    k = result.k
    notes = list(r.notes)
    if len(items) < k:
        notes.append(f"only {len(items)} of {k} found: method {about.get('method')!r} scores {len(items)} "
                     f"of the {r.candidates:,} anime that pass the filters")
    return {"query": result.asked, **about, "k": k, "items": items,
            "matched": matched, **result.extra, "notes": notes}


def heading(served: Served, answer: Answer, user: int | None = None) -> str:
    """The table's title: what the answer is for (``user``: the id of a user query)."""
    if answer.call == "similar_items":
        return f"Like {served.name(int(answer.liked[0]))}"
    if "promoted" in answer.asked:
        who = "user" if user is None else f"user {user}"
        return f"For {who} ({answer.asked['promoted']} promoted anime, already-rated excluded)"
    if answer.call == "query_scores":
        return f"Matching \"{answer.asked.get('query', '')}\""
    return "Because you liked " + ", ".join(served.name(m.row) for m in answer.matches)


# --------------------------------------------------------------------------- the request shape


def likes_query(served: Served, likes=(), ratings=(), mal_list: str | None = None, text: str | None = None,
                k: int = 10, filters: Filters | None = None, mal_list_name: str = "mal_list") -> tuple[Query, dict]:
    """A new user's query from what `POST /recommend` and `recommend --likes/--mal-list/--query`
    take: liked titles or MAL_IDs, (anime_id, rating) pairs (9-10 liked, all seen), a MAL list
    export's XML text (9-10 liked, every entry seen), a free text. Returns the query and what the
    payload adds (a MAL list's counts)."""
    titles = tuple(str(x) for x in likes if isinstance(x, str))
    ids = tuple(int(x) for x in likes if not isinstance(x, str))
    liked, seen, extra = [], [], {}
    if ratings:
        rated_ids = [int(a) for a, _ in ratings]
        rows = [m.row for m in served.match((), rated_ids)]  # an unknown id raises, naming it
        liked += [row for row, (_, score) in zip(rows, ratings) if score >= PROMOTER_MIN]
        seen += rows
    if mal_list is not None:
        if len(mal_list.encode("utf-8")) > MAX_LIST_BYTES:
            raise AnirecError(f"{mal_list_name}: more than {MAX_LIST_BYTES >> 20} MB of XML; "
                              "export a shorter list (e.g. only Completed).")
        got = on_catalog(parse_mal_list(mal_list, mal_list_name), served.ids)
        liked += got.liked.tolist()
        seen += got.seen.tolist()
        extra["mal_list"] = got.summary()
        if not liked and not titles and not ids and text is None:
            raise AnirecError(f"{mal_list_name}: no anime scored 9-10 on this catalog ({got.entries} entries, "
                              f"{got.off_catalog} not in it); score some 9 or 10, or add likes or a query.")
    query = Query(titles=titles, mal_ids=ids, liked=tuple(liked), seen=tuple(seen), k=k,
                  filters=filters or Filters(), text=text, as_user=True)
    return query, extra


# --------------------------------------------------------------------------- users from ratings


def user_ratings(ratings: pd.DataFrame, user_id: int | None, catalog_ids) -> pd.DataFrame:
    """One user's ratings, checked: the user exists and promoted at least one catalog anime.

    Cheap (no embeddings needed), so the CLI calls it before encoding anything."""
    if user_id is not None:
        if "user_id" not in ratings:
            raise AnirecError("ratings have no user_id column; pass only that user's rows, without user_id=.")
        mine = ratings[ratings["user_id"] == user_id]
        if mine.empty:
            some = ", ".join(map(str, np.unique(ratings["user_id"].to_numpy())[:5]))
            raise AnirecError(f"--user {user_id}: no ratings by that user_id ({ratings['user_id'].nunique():,} users "
                              f"in the ratings, e.g. {some}). Check the id.")
        ratings = mine
    elif "user_id" in ratings and ratings["user_id"].nunique() > 1:
        raise AnirecError("ratings hold several users: pass user_id=....")
    if "user_id" not in ratings:
        ratings = ratings.assign(user_id=0)
    in_catalog = np.isin(ratings["anime_id"].to_numpy(), np.asarray(catalog_ids))
    promoted = in_catalog & (ratings["rating"].to_numpy() >= PROMOTER_MIN)
    if not promoted.any():
        who = f"user {user_id}" if user_id is not None else "this user"
        top = int(ratings["rating"].max()) if len(ratings) else "-"
        raise AnirecError(
            f"{who} promoted no anime in the catalog (rated {PROMOTER_MIN}-10): {len(ratings)} rating(s), "
            f"{int(in_catalog.sum())} on catalog anime, highest rating {top}. "
            'Nothing to pool from; recommend by title instead: anirec recommend "TITLE".'
        )
    return ratings


def user_query(ratings: pd.DataFrame, user_id: int | None, catalog_ids, k: int = 10, **options) -> Query:
    """A user of ``ratings`` as a query: their promoted anime are liked, every anime they rated
    (passives too) is seen, as in the evaluation's protocols. ``options``: more Query fields."""
    mine = user_ratings(ratings, user_id, catalog_ids)
    ops, _ = opinions_on_catalog(mine, catalog_ids)
    uid = int(ops["user_id"].iat[0])
    ui = user_items(ops, len(catalog_ids), users=np.asarray([uid], np.int64))
    return Query(liked=tuple(ui.liked.indices.tolist()), seen=tuple(ui.rated.indices.tolist()), k=k, **options)
