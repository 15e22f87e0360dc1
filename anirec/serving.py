"""The one path for every query: a :class:`Query` answered by :func:`answer` over any
recommender, in memory (plain `anirec recommend` fits the text method) or from a fitted folder
(`--recommender`), for the CLI now and the HTTP API later.

A query names anime (titles, MAL_IDs) and/or gives catalog rows (what a user liked, what they
already rated); what must never come back (``seen``, ``exclude``, the franchise of the liked
anime) and what may (``candidates``) are rows too. It is answered by the method's own calls,
the ones the evaluation scores, so what is served is what was measured:

* one named anime (and nothing liked from ratings): ``similar_items`` ("Like X");
* anything else: one user who liked those anime, ``recommend`` with the seen and excluded
  rows excluded ("Because you liked ...").

The answer is a plain frame (catalog columns + ``recommender_score``, best first) and what was
matched. Matching happens before the recommender is first needed, so a mistyped title fails
in milliseconds, before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import AnirecError
from .interactions import opinions_on_catalog, rows_of_ids, user_items
from .opinions import PROMOTER_MIN
from .recommenders import Recommender
from .titles import TitleIndex, TitleMatch, franchise_rows

SCORE_COLUMN = "recommender_score"  # the method's own score ("score" is MAL's)
_INT64 = (-(1 << 63), (1 << 63) - 1)


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
    exclude_franchise: bool = False  # never the liked anime's sequels, movies, spin-offs (by title)
    as_user: bool = False  # one named anime is still a user's like (`--likes`), not "similar to"


@dataclass
class Answer:
    frame: pd.DataFrame  # rank, MAL_ID, titles, type, premiered, MAL score, SCORE_COLUMN; best first
    matches: list[TitleMatch]  # how each named anime was found
    liked: np.ndarray  # the rows the answer is for
    call: str  # "similar_items" or "recommend": which method call answered
    asked: dict = field(default_factory=dict)  # the query as --json shows it


class Served:
    """A recommender and the catalog rows it serves. ``fit`` (instead of ``recommender``) makes
    the recommender on first need, after a query's names are matched."""

    def __init__(self, catalog: pd.DataFrame, recommender: Recommender | None = None,
                 fit: Callable[[], Recommender] | None = None):
        if (recommender is None) == (fit is None):
            raise ValueError("give a recommender or a fit function")
        self.catalog = catalog.reset_index(drop=True)
        self.ids = self.catalog["MAL_ID"].to_numpy(np.int64)
        self._id_index = pd.Index(self.ids)  # MAL_ID -> row, built once
        self._recommender, self._fit = recommender, fit
        self._titles: TitleIndex | None = None

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

    def match(self, titles=(), mal_ids=()) -> list[TitleMatch]:
        """Titles and MAL_IDs -> catalog rows, in that order; an unknown one raises."""
        out = [self.titles.match(str(t)) for t in titles] if titles else []
        for mal_id in mal_ids:
            mal_id = int(mal_id)
            row = -1
            if _INT64[0] <= mal_id <= _INT64[1]:
                row = int((self._id_index.get_indexer([mal_id]) if self._id_index.is_unique
                           else rows_of_ids(self.ids, [mal_id]))[0])
            if row < 0:
                raise AnirecError(f"--id {mal_id}: no anime with that MAL_ID in the catalog ({len(self.ids):,} anime).")
            out.append(TitleMatch(str(mal_id), row, str(self.catalog["Name"].iat[row]), "id"))
        return out

    def name(self, row: int) -> str:
        return str(self.catalog["Name"].iat[row])


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


def _row_matrix(rows: np.ndarray, n_items: int) -> sp.csr_matrix:
    """One user (1 x items) with 1 at ``rows`` (sorted unique)."""
    return sp.csr_matrix((np.ones(len(rows), np.float32), (np.zeros(len(rows), np.int64), rows)), shape=(1, n_items))


def _rows(values, n_items: int, what: str) -> np.ndarray:
    """Sorted unique catalog rows, checked to be in 0..n_items-1."""
    rows = np.unique(np.asarray(values, np.int64))
    if len(rows) and (rows[0] < 0 or rows[-1] >= n_items):
        raise AnirecError(f"query {what}: rows must be catalog rows in 0..{n_items - 1}.")
    return rows


def _blocked(served: Served, query: Query, liked: np.ndarray) -> np.ndarray:
    """Rows the answer may not hold besides the liked ones: seen, excluded, the liked franchises."""
    n = len(served.ids)
    parts = [_rows(query.seen, n, "seen"), _rows(query.exclude, n, "exclude")]
    if query.exclude_franchise:
        parts.append(franchise_rows(served.catalog, liked))
    return np.unique(np.concatenate(parts))


def _asked(served: Served, query: Query, matches: list[TitleMatch]) -> dict:
    """The query as --json shows it: the named anime, or how many a user liked and rated."""
    asked: dict = {}
    if matches:
        asked[("likes" if query.as_user else "titles")] = [served.name(m.row) for m in matches]
        asked["mal_ids"] = [int(served.ids[m.row]) for m in matches]
    if query.liked:
        asked.update(promoted=len(np.unique(query.liked)), rated=len(np.unique(query.seen)))
    asked["exclude_franchise"] = query.exclude_franchise
    return asked


def answer(served: Served, query: Query) -> Answer:
    """Answer ``query`` with ``served``'s recommender (see the module docstring for which call)."""
    if query.k < 1:
        raise AnirecError(f"-k {query.k}: ask for at least one recommendation.")
    matches = served.match(query.titles, query.mal_ids)
    liked = _rows(list(query.liked) + [m.row for m in matches], len(served.ids), "liked")
    if not len(liked):
        raise AnirecError("give at least one title, --id MAL_ID or --likes TITLE.")
    blocked = _blocked(served, query, liked)
    rec = served.recommender
    n = len(served.ids)
    if len(liked) == 1 and not query.liked and not query.as_user:
        allowed = np.arange(n) if query.candidates is None else np.asarray(query.candidates, np.int64)
        if len(blocked):  # similar_items scores each candidate alone: leaving one out = excluding it
            allowed = np.setdiff1d(allowed, blocked)
        full = query.candidates is None and not len(blocked)
        idx, scores = rec.similar_items(liked, query.k, None if full else allowed)
        call = "similar_items"
    else:
        exclude = _row_matrix(blocked, n) if len(blocked) else None
        idx, scores = rec.recommend(_row_matrix(liked, n), query.k, exclude=exclude, candidates=query.candidates)
        call = "recommend"
    ok = idx[0] >= 0
    frame = result_frame(served.catalog, idx[0][ok], **{SCORE_COLUMN: scores[0][ok].astype(np.float32)})
    return Answer(frame, matches, liked, call, _asked(served, query, matches))


def heading(served: Served, answer: Answer, user: int | None = None) -> str:
    """The table's title: what the answer is for (``user``: the id of a user query)."""
    if answer.call == "similar_items":
        return f"Like {served.name(int(answer.liked[0]))}"
    if "promoted" in answer.asked:
        who = "user" if user is None else f"user {user}"
        return f"For {who} ({answer.asked['promoted']} promoted anime, already-rated excluded)"
    return "Because you liked " + ", ".join(served.name(m.row) for m in answer.matches)


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
