"""Co-rating counts of anime pairs: the one counter behind the reference labels and the CF pairs.

For a pair (a, b) over the train rows (METHOD.md section 3): ``both_promote`` users promote both,
``disagree`` users promote one and detract the other (either way), ``co_raters`` users have a
non-passive rating on both; ``support`` = n(a) + n(b), the non-passive rows of the two anime
(the reference's ``>= 50`` filter counts rows, not co-raters).

With P (users x anime, 1 where promoter) and D (1 where detractor): both_promote = P'P,
disagree = P'D + D'P, co_raters = R'R with R = P + D. All three come from ONE product: with
X = P + K D (K above every count), X'X = P'P + K (P'D + D'P) + K^2 D'D, decoded by integer
division. Users are taken in chunks of at most 2^20, so K^3 <= 2^63 and no entry overflows.

Two ways to ask, one encoding: ``pair_counts`` gives every pair at once (dense n x n, what the
reference labels need over the popular anime) and ``listed_pair_counts`` the pairs asked for
(what the CF pairs need: a few thousand pairs among all catalog anime, where n x n would not fit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import AnirecError
from .interactions import user_item_matrix

MAX_USER_CHUNK = 1 << 20  # K = chunk + 1 and K^3 < 2^63


@dataclass
class OpinionColumns:
    """Non-passive opinions as a (users x anime) matrix, one column per anime of ``anime_ids``."""

    anime_ids: np.ndarray  # (n,) int64, sorted
    opinions: sp.csc_matrix  # (users x n) float32: +1 promoter, -1 detractor (users sorted by id)

    @property
    def rows(self) -> np.ndarray:
        """Non-passive rows per anime."""
        return np.diff(self.opinions.indptr).astype(np.int64)

    @property
    def promoters(self) -> np.ndarray:
        return np.asarray((self.opinions > 0).sum(axis=0), np.int64).ravel()


def opinion_columns(rows: pd.DataFrame) -> OpinionColumns:
    """The opinions of ``rows`` (user_id, anime_id, opinion: passives removed, one row per user and anime)."""
    opinion = rows["opinion"].to_numpy()
    if (opinion == 0).any():
        raise AnirecError("pair counts need passives removed (opinion 0 found); use to_opinions(keep_passives=False).")
    users, user_codes = np.unique(rows["user_id"].to_numpy(np.int64), return_inverse=True)
    anime_ids, anime_codes = np.unique(rows["anime_id"].to_numpy(np.int64), return_inverse=True)
    matrix = user_item_matrix(user_codes, anime_codes, opinion, (len(users), len(anime_ids)))
    if matrix.nnz != len(rows):  # user_item_matrix keeps one of repeated (user, anime) rows
        raise AnirecError(
            f"ratings: {len(rows) - matrix.nnz:,} repeated (user_id, anime_id) rows in train. "
            "Keep one rating per user and anime, then run again."
        )
    return OpinionColumns(anime_ids, matrix.tocsc())


def _encoded(opinions: sp.spmatrix, k: np.int64) -> sp.spmatrix:
    """X = P + K D as int64 (same sparsity as ``opinions``)."""
    x = opinions.astype(np.int64)
    x.data = np.where(opinions.data > 0, np.int64(1), k)
    return x


def _decode(products: np.ndarray, k: np.int64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(both_promote, disagree, co_raters) from entries of X'X."""
    rest, both = np.divmod(products, k)
    dd, disagree = np.divmod(rest, k)
    return both, disagree, both + disagree + dd


def _user_starts(n_users: int, chunk: int, progress: bool):
    starts = range(0, n_users, chunk)
    if progress and n_users > chunk:
        from tqdm.auto import tqdm

        return tqdm(starts, desc="pair counts (user chunks)", leave=False)
    return starts


# --------------------------------------------------------------------------- every pair


@dataclass
class PairCounts:
    """Co-rating counts of every anime pair over train (dense, symmetric, rows/cols = ``anime_ids``)."""

    anime_ids: np.ndarray  # (n,) int64, sorted
    both_promote: np.ndarray  # (n, n) int32: users promoting both
    disagree: np.ndarray  # (n, n) int32: users promoting one and detracting the other
    co_raters: np.ndarray  # (n, n) int32: users with a non-passive rating on both
    rows: np.ndarray  # (n,) int32: non-passive train rows per anime
    promoters: np.ndarray  # (n,) int32: promoters per anime

    def support(self) -> np.ndarray:
        """(n, n): non-passive rows on the two anime together (the reference's ``>= 50`` filter)."""
        return self.rows[:, None] + self.rows[None, :]


def pair_counts(train: pd.DataFrame | OpinionColumns, user_chunk: int = 1 << 17, progress: bool = False) -> PairCounts:
    """Every pair's counts with one sparse product per chunk of users (see the module docstring)."""
    columns = train if isinstance(train, OpinionColumns) else opinion_columns(train)
    n_users, n = columns.opinions.shape
    user_chunk = max(1, min(user_chunk, MAX_USER_CHUNK))
    k = np.int64(user_chunk + 1)  # every count within a chunk is <= user_chunk < K
    x = _encoded(columns.opinions, k).tocsr()
    both, disagree, co = (np.zeros((n, n), np.int32) for _ in range(3))
    for start in _user_starts(n_users, user_chunk, progress):
        block = x[start : start + user_chunk]
        prod = (block.T.tocsr() @ block).tocoo()  # (row, col) unique
        for total, part in zip((both, disagree, co), _decode(prod.data, k)):
            total[prod.row, prod.col] += part.astype(np.int32)
        del prod
    return PairCounts(anime_ids=columns.anime_ids, both_promote=both, disagree=disagree, co_raters=co,
                      rows=columns.rows.astype(np.int32), promoters=columns.promoters.astype(np.int32))


# --------------------------------------------------------------------------- listed pairs


def pair_dot(columns: sp.csc_matrix, a: np.ndarray, b: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """sum over users of columns[:, a] * columns[:, b] for each pair, in chunks of pairs (memory
    stays bounded however many pairs and users; the dtype of ``columns`` is kept)."""
    out = np.zeros(len(a), columns.dtype)
    for s in range(0, len(a), chunk):
        prod = columns[:, a[s:s + chunk]].multiply(columns[:, b[s:s + chunk]])
        out[s:s + chunk] = np.asarray(prod.sum(axis=0)).ravel()
    return out


def listed_pair_counts(columns: OpinionColumns, a: np.ndarray, b: np.ndarray,
                       user_chunk: int = 1 << 17) -> dict[str, np.ndarray]:
    """both_promote, disagree, co_raters and support (int64) of each pair (a[i], b[i]): column
    positions in ``columns``, counted with the same encoding as :func:`pair_counts`."""
    n_users = columns.opinions.shape[0]
    user_chunk = max(1, min(user_chunk, MAX_USER_CHUNK, n_users))
    k = np.int64(user_chunk + 1)
    x = _encoded(columns.opinions, k)
    totals = [np.zeros(len(a), np.int64) for _ in range(3)]
    for start in range(0, n_users, user_chunk):
        block = x if n_users <= user_chunk else x[start : start + user_chunk]
        for total, part in zip(totals, _decode(pair_dot(block, a, b), k)):
            total += part
    rows = columns.rows
    both, disagree, co = totals
    return {"both_promote": both, "disagree": disagree, "co_raters": co, "support": rows[a] + rows[b]}
