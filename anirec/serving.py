"""Answering queries from a fitted recommender folder: a user's ratings, liked titles, or titles.

Every user-shaped query (a ratings file's user, a new user's liked titles, several titles)
becomes a (1 x items) liked matrix and goes through the method's own ``recommend`` - the
call the evaluation scores - so what is served is what was measured. One title asks for
``similar_items``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import AnirecError
from .fitted import FittedRecommender
from .index import rows_of_ids
from .interactions import opinions_on_catalog, user_items
from .recommend import TitleIndex, TitleMatch, result_frame, user_ratings

SCORE_COLUMN = "recommender_score"  # the method's own score ("score" is MAL's)


@dataclass
class Answer:
    frame: pd.DataFrame  # result_frame columns + SCORE_COLUMN, best first
    query: dict  # what was asked, as shown in --json
    heading: str
    matches: list[TitleMatch]


class FittedQueries:
    """Queries against one loaded folder (title index built on first use)."""

    def __init__(self, fitted: FittedRecommender):
        self.fitted = fitted
        self.catalog = fitted.catalog
        self.ids = fitted.ids
        self._titles: TitleIndex | None = None

    @property
    def n_items(self) -> int:
        return len(self.ids)

    def match(self, titles=(), mal_ids=()) -> list[TitleMatch]:
        """Titles (fuzzy, as `anirec recommend`) and MAL_IDs -> catalog rows; unknown ones raise."""
        if titles and self._titles is None:
            self._titles = TitleIndex(self.catalog)
        out = [self._titles.match(str(t)) for t in titles]
        rows = rows_of_ids(self.ids, list(mal_ids))
        for mal_id, row in zip(mal_ids, rows):
            if row < 0:
                raise AnirecError(f"--id {mal_id}: no anime with that MAL_ID in the recommender's catalog "
                                  f"({self.n_items:,} anime).")
            out.append(TitleMatch(str(mal_id), int(row), str(self.catalog["Name"].iat[row]), "id"))
        return out

    def _liked(self, rows) -> sp.csr_matrix:
        rows = np.unique(np.asarray(rows, np.int64))
        return sp.csr_matrix((np.ones(len(rows), np.float32), (np.zeros(len(rows), np.int64), rows)),
                             shape=(1, self.n_items))

    def _answer(self, idx: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
        ok = idx >= 0
        return result_frame(self.catalog, idx[ok], **{SCORE_COLUMN: scores[ok].astype(np.float32)})

    def for_likes(self, titles=(), mal_ids=(), k: int = 10) -> Answer:
        """A new user who liked these anime: ``recommend`` with them as the liked (and excluded) items."""
        matches = self.match(titles, mal_ids)
        if not matches:
            raise AnirecError("give at least one --likes TITLE.")
        idx, scores = self.fitted.recommender.recommend(self._liked([m.row for m in matches]), k)
        names = [str(self.catalog["Name"].iat[m.row]) for m in matches]
        query = {"likes": names, "mal_ids": [int(self.ids[m.row]) for m in matches]}
        return Answer(self._answer(idx[0], scores[0]), query, "Because you liked " + ", ".join(names), matches)

    def similar(self, titles=(), mal_ids=(), k: int = 10) -> Answer:
        """One anime: its ``similar_items``. Several: one user who liked them all (``for_likes``)."""
        matches = self.match(titles, mal_ids)
        rows = np.unique([m.row for m in matches])
        if len(rows) != 1:
            answer = self.for_likes(titles, mal_ids, k)
            answer.query = {"titles": answer.query["likes"], "mal_ids": answer.query["mal_ids"]}
            return answer
        idx, scores = self.fitted.recommender.similar_items(rows, k)
        name = str(self.catalog["Name"].iat[rows[0]])
        query = {"titles": [name], "mal_ids": [int(self.ids[rows[0]])]}
        return Answer(self._answer(idx[0], scores[0]), query, f"Like {name}", matches)

    def for_user(self, ratings: pd.DataFrame, user_id: int, k: int = 10, label: str = "") -> Answer:
        """A user of ``ratings``: their promoted anime are liked, everything they rated is excluded."""
        mine = user_ratings(ratings, user_id, self.ids)  # raises for an unknown user or one who liked nothing here
        ops, _ = opinions_on_catalog(mine, self.ids)
        ui = user_items(ops, self.n_items, users=np.asarray([user_id], np.int64))
        idx, scores = self.fitted.recommender.recommend(ui.liked, k, exclude=ui.rated)
        n_liked = int(ui.liked.nnz)
        query = {"user": int(user_id), "ratings": label, "promoted": n_liked, "rated": int(ui.rated.nnz)}
        heading = f"For user {user_id} ({n_liked} promoted anime, already-rated excluded)"
        return Answer(self._answer(idx[0], scores[0]), query, heading, [])
