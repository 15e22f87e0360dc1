"""Recommendations from catalog embeddings: by title(s), by MAL_ID, and for users.

* Titles are matched against Name and English name: exact, then case-insensitive, then
  fuzzy (rapidfuzz). An unknown title raises AnirecError listing the closest titles.
* Several titles are pooled: ``pool="mean"`` ranks by cosine to the mean of their vectors;
  ``pool="votes"`` is the reference pooling (each title pulls in its nearest neighbours,
  ranked by how many pulled a candidate in, ties by mean similarity).
* A user is served by the reference pooling of METHOD.md section 5 over the anime they
  promoted (rated 9-10), never recommending anything they already rated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .data import read_catalog
from .embeddings import Embeddings, load_or_embed, normalize
from .errors import AnirecError
from .index import pool_for_users, rows_of_ids, top_k_rows
from .opinions import PROMOTER_MIN

FUZZY_MIN = 86  # rapidfuzz WRatio (0-100) a fuzzy title match must reach
UNKNOWN = {"", "unknown", "nan", "none"}

# Where a franchise's base title ends: "Title: Subtitle", "Title (TV)", "Title Season 2", "Title 2nd Season"...
_FRANCHISE_END = re.compile(
    r"\s*(?::|\(|\s-\s|\bseason\b|\bthe movie\b|\bmovie\b|\bpart\b|\bfinal\b|\bova\b|\bspecials?\b"
    r"|\b\d+(?:st|nd|rd|th)\b|\s\d+\s*$|\s[ivx]+\s*$)",
    re.IGNORECASE,
)


def _fold(title: str) -> str:
    return " ".join(str(title).casefold().split())


def franchise_stem(title: str) -> str:
    """The base title a sequel/spin-off shares: 'Shingeki no Kyojin Season 3' -> 'shingeki no kyojin'."""
    folded = _fold(title)
    m = _FRANCHISE_END.search(folded)
    return (folded[: m.start()] if m and m.start() > 0 else folded).strip(" :-")


# --------------------------------------------------------------------------- titles


@dataclass
class TitleMatch:
    query: str
    row: int
    title: str  # the catalog title it matched (Name or English name)
    how: str  # 'exact' | 'case' | 'fuzzy' | 'id'
    score: float = 100.0


class TitleIndex:
    """Name / English name lookup. Where one title fits several anime, the most popular wins."""

    def __init__(self, catalog: pd.DataFrame):
        n = len(catalog)
        members = pd.to_numeric(catalog.get("Members", pd.Series(np.zeros(n))), errors="coerce").fillna(0).to_numpy()
        order = np.argsort(-members, kind="stable")  # popular first: first hit wins ties
        names = catalog["Name"].astype(str).to_numpy()
        english = catalog["English name"].astype(str).to_numpy()
        self.exact: dict[str, int] = {}
        self.folded: dict[str, tuple[int, str]] = {}
        self.choices: list[str] = []
        self.choice_rows: list[int] = []
        self.choice_titles: list[str] = []
        for row in order:
            for title in (names[row], english[row]):
                if title.strip().casefold() in UNKNOWN:
                    continue
                self.exact.setdefault(title, int(row))
                key = _fold(title)
                if key not in self.folded:
                    self.folded[key] = (int(row), title)
                    self.choices.append(key)
                    self.choice_rows.append(int(row))
                    self.choice_titles.append(title)

    def closest(self, query: str, n: int = 5) -> list[tuple[str, int, float]]:
        """The ``n`` best fuzzy candidates as (title, row, score), one per anime."""
        from rapidfuzz import fuzz, process

        out, seen = [], set()
        for _, score, i in process.extract(_fold(query), self.choices, scorer=fuzz.WRatio, processor=None, limit=4 * n):
            row = self.choice_rows[i]
            if row not in seen:
                seen.add(row)
                out.append((self.choice_titles[i], row, float(score)))
            if len(out) == n:
                break
        return out

    def match(self, query: str) -> TitleMatch:
        if query in self.exact:
            return TitleMatch(query, self.exact[query], query, "exact")
        key = _fold(query)
        if key in self.folded:
            row, title = self.folded[key]
            return TitleMatch(query, row, title, "case")
        best = self.closest(query, n=5)
        if best and best[0][2] >= FUZZY_MIN:
            title, row, score = best[0]
            return TitleMatch(query, row, title, "fuzzy", score)
        near = "; ".join(f"'{t}'" for t, _, _ in best) or "none"
        raise AnirecError(f"title '{query}' is not in the catalog. Closest: {near}. Pass one of them (quoted) or --id MAL_ID.")


_blas = None


def _one_blas_thread():
    """One query is a matrix-vector product: memory-bound, so BLAS threads buy nothing and,
    on a busy machine, waiting for a descheduled thread costs several times the work itself."""
    global _blas
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional (comes with scikit-learn); without it just use BLAS as configured
        import contextlib

        return contextlib.nullcontext()
    if _blas is None:
        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


def _pulled_similarity(idx: np.ndarray, val: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Mean similarity of each of ``items`` to the sources whose neighbour rows (idx/val) hold it:
    the tie-break of the vote pooling, shown next to the votes. Sizes are sources x n x k: tiny."""
    pulled = idx[:, :, None] == items[None, None, :]
    return (val[:, :, None] * pulled).sum(axis=(0, 1)) / np.maximum(pulled.sum(axis=(0, 1)), 1)


# --------------------------------------------------------------------------- results


def result_frame(catalog: pd.DataFrame, rows: np.ndarray, **extra) -> pd.DataFrame:
    """The recommendation table: rank, MAL_ID, titles, type, premiered, MAL score, then ``extra``."""
    # Only the k result rows are touched: converting whole 17k-row columns costs milliseconds.
    cat = catalog.iloc[rows]
    score = pd.to_numeric(cat["Score"], errors="coerce").to_numpy(np.float64) if "Score" in cat else np.nan
    out = pd.DataFrame({
        "rank": np.arange(1, len(rows) + 1),
        "MAL_ID": cat["MAL_ID"].to_numpy(np.int64),
        "title": cat["Name"].to_numpy(),
        "english_title": cat["English name"].to_numpy(),
        "type": cat["Type"].to_numpy(),
        "premiered": cat["Premiered"].to_numpy(),
        "score": score,
    })
    for name, values in extra.items():
        out[name] = values
    return out


@dataclass
class UserRecs:
    """Recommendations for many users: (users x k) MAL_IDs (-1 where fewer were found)."""

    user_ids: np.ndarray
    mal_ids: np.ndarray
    votes: np.ndarray
    n_promoted: np.ndarray  # promoted anime per user that are in the catalog

    def to_frame(self) -> pd.DataFrame:
        users, k = self.mal_ids.shape
        ok = self.mal_ids.ravel() >= 0
        return pd.DataFrame({
            "user_id": np.repeat(self.user_ids, k)[ok],
            "rank": np.tile(np.arange(1, k + 1), users)[ok],
            "MAL_ID": self.mal_ids.ravel()[ok],
            "votes": self.votes.ravel()[ok].astype(np.int32),
        })


def _user_matrices(ratings: pd.DataFrame, id_rows, n_items: int, users: np.ndarray | None = None):
    """(users x items) sparse 'promoted' and 'rated' matrices, only ratings on catalog anime."""
    missing = [c for c in ("user_id", "anime_id", "rating") if c not in ratings.columns]
    if missing:
        raise AnirecError(f"ratings lack column(s) {', '.join(missing)}; load them with anirec.data.load_ratings.")
    uid = ratings["user_id"].to_numpy()
    if users is None:
        users = np.unique(uid)
    users = np.asarray(users)
    sorter = np.argsort(users, kind="stable")
    pos = np.clip(np.searchsorted(users, uid, sorter=sorter), 0, len(users) - 1)
    user_ok = users[sorter[pos]] == uid
    rows = id_rows(ratings["anime_id"].to_numpy())
    keep = user_ok & (rows >= 0)
    u, items, rating = sorter[pos[keep]], rows[keep], ratings["rating"].to_numpy()[keep]
    shape = (len(users), n_items)
    rated = sp.csr_matrix((np.ones(len(u), np.float32), (u, items)), shape=shape)
    good = rating >= PROMOTER_MIN
    promoted = sp.csr_matrix((np.ones(int(good.sum()), np.float32), (u[good], items[good])), shape=shape)
    rated.data[:] = 1
    promoted.data[:] = 1  # a duplicated rating row must not count twice
    return users, promoted, rated


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
        raise AnirecError("ratings hold several users: pass user_id=..., or use for_users for all of them.")
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


def _served_neighbors() -> int:
    """Neighbours per liked anime: the text method's own default, so a user is served exactly
    the pooling `anirec evaluate` scores for that method."""
    from .recommenders.text import TextParams

    return TextParams().n_neighbors


class Recommender:
    """Nearest-neighbour recommendations over L2-normalised catalog vectors (dot = cosine)."""

    def __init__(self, catalog: pd.DataFrame, vectors: np.ndarray, embeddings: Embeddings | None = None):
        catalog = catalog.reset_index(drop=True)
        if len(catalog) != len(vectors):
            raise AnirecError(f"{len(vectors)} vectors for a catalog of {len(catalog)} anime: embed this catalog again.")
        self.catalog = catalog
        self.vectors = np.ascontiguousarray(normalize(vectors))
        self.embeddings = embeddings
        self.ids = catalog["MAL_ID"].to_numpy(np.int64)
        self._id_sorter = np.argsort(self.ids, kind="stable")
        self._titles: TitleIndex | None = None

    @classmethod
    def from_catalog(cls, catalog: pd.DataFrame | str | Path, model: str, max_seq_length: int | None = None,
                     cache_dir: str | Path | None = None, batch_size: int = 32, show_progress: bool = True,
                     backend: str = "torch") -> "Recommender":
        """Embed (or load from the cache) a catalog DataFrame or parquet path with ``model``."""
        if not isinstance(catalog, pd.DataFrame):
            catalog = read_catalog(catalog)
        emb = load_or_embed(catalog, model, max_seq_length, cache_dir, batch_size, show_progress, backend=backend)
        return cls(catalog, emb.vectors, emb)

    # ---------------------------------------------------------------- lookups

    @property
    def titles(self) -> TitleIndex:
        if self._titles is None:
            self._titles = TitleIndex(self.catalog)
        return self._titles

    def rows_of_ids(self, mal_ids) -> np.ndarray:
        """Catalog rows of MAL_IDs, -1 for ids not in the catalog."""
        return rows_of_ids(self.ids, mal_ids, self._id_sorter)

    def match(self, title_or_id) -> TitleMatch:
        """A title (str) or a MAL_ID (int) -> its catalog row."""
        if isinstance(title_or_id, (int, np.integer)) and not isinstance(title_or_id, bool):
            row = int(self.rows_of_ids([title_or_id])[0])
            if row < 0:
                raise AnirecError(f"--id {title_or_id}: no anime with that MAL_ID in the catalog ({len(self.ids):,} anime).")
            return TitleMatch(str(title_or_id), row, str(self.catalog["Name"].iat[row]), "id")
        return self.titles.match(str(title_or_id))

    def franchise_rows(self, rows: Iterable[int]) -> np.ndarray:
        """Rows whose Name or English name starts with the base title of any of ``rows``."""
        stems = set()
        for r in rows:
            for col in ("Name", "English name"):
                stem = franchise_stem(self.catalog[col].iat[r])
                if len(stem) >= 3 and stem not in UNKNOWN:
                    stems.add(stem)
        if not stems:
            return np.empty(0, np.int64)
        hit = np.zeros(len(self.catalog), bool)
        for col in ("Name", "English name"):
            folded = self.catalog[col].astype(str).str.casefold()
            hit |= folded.str.startswith(tuple(sorted(stems))).to_numpy()
        return np.flatnonzero(hit)

    # ---------------------------------------------------------------- neighbours

    def neighbor_table(self, rows: np.ndarray, n_neighbors: int, blocked: np.ndarray | None = None,
                       block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Full-size (items x n_neighbors) neighbour table filled only for ``rows`` (-1 elsewhere).

        ``blocked`` rows are never anyone's neighbour. Works in blocks of rows so memory stays
        at block x items."""
        n = len(self.vectors)
        idx = np.full((n, n_neighbors), -1, np.int64)
        val = np.zeros((n, n_neighbors), np.float32)
        rows = np.asarray(rows, np.int64)
        for start in range(0, len(rows), block):
            r = rows[start:start + block]
            sims = self.vectors[r] @ self.vectors.T
            sims[np.arange(len(r)), r] = -np.inf
            if blocked is not None and len(blocked):
                sims[:, blocked] = -np.inf
            i, v = top_k_rows(sims, n_neighbors)  # fewer columns when the catalog is smaller
            ok = np.isfinite(v)
            idx[r, :i.shape[1]], val[r, :i.shape[1]] = np.where(ok, i, -1), np.where(ok, v, 0.0)
        return idx, val

    def similar_rows(self, rows: Sequence[int], k: int = 10, pool: str = "mean", exclude: np.ndarray | None = None,
                     n_neighbors: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Core of :meth:`similar`: (rows, scores, similarity) of the ``k`` best; queries never appear.

        ``pool="mean"``: scores = similarity = cosine to the mean query vector. ``pool="votes"``:
        scores are vote counts (reference pooling, ``n_neighbors`` per query title) and
        similarity is the mean cosine to the query titles that pulled the item in (the tie-break)."""
        rows = np.asarray(rows, np.int64)
        blocked = rows if exclude is None else np.union1d(rows, exclude)
        if pool == "mean":
            query = self.vectors[rows].mean(axis=0)
            with _one_blas_thread():
                scores = self.vectors @ (query / max(float(np.linalg.norm(query)), 1e-12))
            scores[blocked] = -np.inf
            top, val = top_k_rows(scores[None, :], k)
            ok = np.isfinite(val[0])
            return top[0][ok], val[0][ok], val[0][ok]
        if pool == "votes":
            idx, val = self.neighbor_table(rows, n_neighbors or k, blocked=blocked)
            promoted = sp.csr_matrix((np.ones(len(rows), np.float32), (np.zeros(len(rows), int), rows)),
                                     shape=(1, len(self.vectors)))
            top, votes = pool_for_users(promoted, idx, val, k=k)
            top, votes = top[0][top[0] >= 0], votes[0][top[0] >= 0]
            return top, votes, _pulled_similarity(idx[rows], val[rows], top)
        raise AnirecError(f"--pool {pool!r}: use 'mean' or 'votes'.")

    def _frame(self, rows: np.ndarray, **extra) -> pd.DataFrame:
        return result_frame(self.catalog, rows, **extra)

    # ---------------------------------------------------------------- public API

    def similar(self, title_or_id, k: int = 10, pool: str = "mean", exclude_franchise: bool = False,
                n_neighbors: int | None = None) -> pd.DataFrame:
        """Anime like one or several titles / MAL_IDs, best first (the queries themselves excluded)."""
        if k < 1:
            raise AnirecError(f"-k {k}: ask for at least one recommendation.")
        queries = list(title_or_id) if isinstance(title_or_id, (list, tuple)) else [title_or_id]
        if not queries:
            raise AnirecError("give at least one title or --id MAL_ID.")
        matches = [self.match(q) for q in queries]
        rows = np.unique([m.row for m in matches])
        exclude = self.franchise_rows(rows) if exclude_franchise else None
        top, scores, sim = self.similar_rows(rows, k, pool, exclude, n_neighbors)
        if pool == "votes":
            frame = self._frame(top, votes=scores.astype(np.int32), similarity=sim.astype(np.float32))
        else:
            frame = self._frame(top, similarity=sim.astype(np.float32))
        frame.attrs["matches"] = matches
        return frame

    def for_user(self, ratings: pd.DataFrame, k: int = 10, user_id: int | None = None,
                 n_neighbors: int | None = None) -> pd.DataFrame:
        """The reference pooling for one user: ``ratings`` holds that user's rows (or pass ``user_id``)."""
        if k < 1:
            raise AnirecError(f"-k {k}: ask for at least one recommendation.")
        ratings = user_ratings(ratings, user_id, self.ids)
        _, promoted, rated = _user_matrices(ratings, self.rows_of_ids, len(self.ids))
        p_rows = promoted.indices
        nk = n_neighbors or _served_neighbors()
        idx, val = self.neighbor_table(p_rows, nk)
        top, votes = pool_for_users(promoted, idx, val, k=k, exclude=rated)
        top, votes = top[0][top[0] >= 0], votes[0][top[0] >= 0]
        mean_sim = _pulled_similarity(idx[p_rows], val[p_rows], top)
        frame = self._frame(top, votes=votes.astype(np.int32), similarity=mean_sim.astype(np.float32))
        frame.attrs["promoted"] = int(len(p_rows))
        return frame

    def for_users(self, ratings: pd.DataFrame, k: int = 10, users=None, n_neighbors: int | None = None,
                  batch_size: int = 2048) -> UserRecs:
        """The reference pooling for many users at once (sparse products, no loop over users)."""
        users, promoted, rated = _user_matrices(ratings, self.rows_of_ids, len(self.ids), users)
        needed = np.flatnonzero(np.asarray(promoted.sum(axis=0)).ravel() > 0)
        idx, val = self.neighbor_table(needed, n_neighbors or _served_neighbors())
        top, votes = pool_for_users(promoted, idx, val, k=k, exclude=rated, batch_size=batch_size)
        mal_ids = np.where(top >= 0, self.ids[np.maximum(top, 0)], -1)
        return UserRecs(users, mal_ids, votes, np.diff(promoted.indptr))
