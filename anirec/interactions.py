"""Ratings -> the sparse (users x catalog items) matrices every recommender reads.

One place decides which catalog row an anime id is (:func:`rows_of_ids`), what a stored
entry means (this user rated this catalog anime) and what its value is (the opinion: +1
promoter, 0 passive, -1 detractor), for `fit`, `recommend` and every evaluation protocol
alike; :func:`lookup` reads (user, item) entries back for the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .opinions import to_opinions


def rows_of_ids(catalog_ids, ids) -> np.ndarray:
    """Catalog row of each id (MAL_ID), -1 for ids the catalog lacks (a repeated catalog id
    maps to its first row)."""
    index = pd.Index(np.asarray(catalog_ids, np.int64))
    ids = np.asarray(ids, np.int64)
    if index.is_unique:
        return index.get_indexer(ids).astype(np.int64)
    first = ~index.duplicated(keep="first")
    pos = index[first].get_indexer(ids)
    return np.where(pos >= 0, np.flatnonzero(first)[np.maximum(pos, 0)], -1).astype(np.int64)


def with_items(frame: pd.DataFrame, catalog_ids) -> tuple[pd.DataFrame, int]:
    """``frame`` (with ``anime_id``) plus ``item`` = catalog row; rows on anime outside the
    catalog are dropped and counted."""
    items = rows_of_ids(catalog_ids, frame["anime_id"].to_numpy())
    ok = items >= 0
    out = frame[ok].copy()
    out["item"] = items[ok]
    return out.reset_index(drop=True), int((~ok).sum())


def user_item_matrix(rows: np.ndarray, cols: np.ndarray, values, shape: tuple[int, int]) -> sp.csr_matrix:
    """CSR (users x items) built directly, so explicit zeros (passive opinions) stay stored.

    A stored entry means "this user rated this item"; its value is the opinion. Duplicate
    (row, col) pairs keep the last one.
    """
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    values = np.broadcast_to(np.asarray(values, np.float32), rows.shape)
    keys = rows * shape[1] + cols
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    last = np.r_[keys[1:] != keys[:-1], True] if len(keys) else np.zeros(0, bool)
    keys, values = keys[last], values[last]
    indptr = np.r_[0, np.cumsum(np.bincount(keys // shape[1], minlength=shape[0]))]
    return sp.csr_matrix((values, keys % shape[1], indptr), shape=shape)


def opinions_on_catalog(ratings: pd.DataFrame, catalog_ids) -> tuple[pd.DataFrame, int]:
    """Ratings as opinions (passives kept) with ``item`` = catalog row; rows on anime outside the
    catalog are dropped and counted. Later duplicates of a (user, anime) win."""
    ops = to_opinions(ratings.drop_duplicates(["user_id", "anime_id"], keep="last"), keep_passives=True)
    return with_items(ops, catalog_ids)


@dataclass
class UserItems:
    """Users (sorted ids) and their (users x items) ratings: ``rated`` stores every rating on a
    catalog anime with its opinion; ``liked`` is 1 where the user promoted the anime."""

    users: np.ndarray
    rated: sp.csr_matrix
    liked: sp.csr_matrix

    @property
    def fit_matrix(self) -> sp.csr_matrix:
        """+1/-1 opinions (passives dropped): what CF and popularity learn from."""
        m = self.rated.copy()
        m.eliminate_zeros()
        return m


def user_rows_matrix(frame: pd.DataFrame, users: np.ndarray, n_items: int, values=1.0) -> sp.csr_matrix:
    """(len(users) x items) from the rows of ``frame`` (user_id, item) whose user is in ``users``
    (sorted); ``values`` is one value for all, or one per row of ``frame``."""
    uid = frame["user_id"].to_numpy()
    rows = np.searchsorted(users, uid)
    ok = (rows < len(users)) & (users[np.minimum(rows, len(users) - 1)] == uid) if len(users) else np.zeros(len(frame), bool)
    vals = values if np.isscalar(values) else np.asarray(values)[ok]
    return user_item_matrix(rows[ok], frame["item"].to_numpy()[ok], vals, (len(users), n_items))


def fit_matrix(frame: pd.DataFrame, n_items: int) -> sp.csr_matrix:
    """+1/-1 opinions of every user in ``frame`` (passives carry no CF signal and are left out):
    what CF and popularity learn from."""
    f = frame[frame["opinion"].to_numpy() != 0]
    codes, _ = pd.factorize(f["user_id"].to_numpy(), sort=True)
    return user_item_matrix(codes, f["item"].to_numpy(), f["opinion"].to_numpy(np.float32),
                            (int(codes.max(initial=-1)) + 1, n_items))


def user_items(opinions: pd.DataFrame, n_items: int, users: np.ndarray | None = None) -> UserItems:
    """Matrices for ``users`` (default: every user in ``opinions``; columns user_id, item, opinion)."""
    users = np.unique(opinions["user_id"].to_numpy(np.int64)) if users is None else np.asarray(users, np.int64)
    rated = user_rows_matrix(opinions, users, n_items, opinions["opinion"].to_numpy(np.float32))
    liked = rated.copy()
    liked.data = (liked.data > 0).astype(np.float32)
    liked.eliminate_zeros()
    return UserItems(users, rated, liked)


def lookup(matrix: sp.csr_matrix, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For (rows x m) item indices, whether each (row, item) is stored in ``matrix`` and its value.

    One searchsorted over the sorted (row, col) keys of the matrix: no per-row loop.
    Item -1 (no recommendation) is never found.
    """
    m = sp.csr_matrix(matrix)
    if not m.has_sorted_indices:
        m = m.sorted_indices()
    n_rows, n_cols = m.shape
    keys = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(m.indptr)) * n_cols + m.indices
    items = np.asarray(items, np.int64)
    if len(keys) == 0:
        return np.zeros(items.shape, bool), np.zeros(items.shape, np.float64)
    query = np.arange(len(items), dtype=np.int64)[:, None] * n_cols + np.maximum(items, 0)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    found = (items >= 0) & (keys[pos] == query)
    return found, np.where(found, m.data[pos], 0).astype(np.float64)
