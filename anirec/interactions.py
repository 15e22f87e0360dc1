"""Ratings -> the sparse (users x catalog items) matrices every recommender reads.

One place decides what a stored entry means (this user rated this catalog anime) and what
its value is (the opinion: +1 promoter, 0 passive, -1 detractor), for `fit`, `recommend`
and every evaluation protocol alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .index import rows_of_ids
from .opinions import to_opinions


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
    items = rows_of_ids(np.asarray(catalog_ids, np.int64), ops["anime_id"].to_numpy())
    ok = items >= 0
    out = ops[ok].copy()
    out["item"] = items[ok]
    return out.reset_index(drop=True), int((~ok).sum())


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
