"""Baselines that rank directly: random and most popular."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..config import Seed
from .base import Params, Recommender


def _mix_in_place(x: np.ndarray, tmp: np.ndarray) -> None:
    """splitmix64's finaliser on uint64 ``x``, in place (``tmp``: scratch of the same shape)."""
    with np.errstate(over="ignore"):
        for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, None)):
            np.right_shift(x, np.uint64(shift), out=tmp)
            np.bitwise_xor(x, tmp, out=x)
            if factor is not None:
                np.multiply(x, np.uint64(factor), out=x)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a cheap, well-spread integer hash, vectorised."""
    x = x.astype(np.uint64, copy=True)
    _mix_in_place(x, np.empty_like(x))
    return x


def _mix_top24(x: np.ndarray, tmp: np.ndarray, out: np.ndarray) -> None:
    """``out = float32(_mix64(x) >> 40)``, ``x`` (uint64) and ``tmp`` used as scratch. splitmix64's
    last step (x ^= x >> 31) only changes bits 0..32, so the top 24 bits skip it; the 24-bit
    result goes to float32 through int64 (numpy's uint64 -> float32 cast is 10x slower)."""
    with np.errstate(over="ignore"):
        for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
            np.right_shift(x, np.uint64(shift), out=tmp)
            np.bitwise_xor(x, tmp, out=x)
            np.multiply(x, np.uint64(factor), out=x)
    np.right_shift(x, np.uint64(40), out=tmp)
    out[...] = tmp.view(np.int64)  # < 2**24: exact in float32


def _mixed_grid(row_keys: np.ndarray, col_keys: np.ndarray, rows_per_chunk: int = 64) -> np.ndarray:
    """``float32(_mix64(row_keys[:, None] + col_keys[None, :]) >> 40)``, in chunks of rows with
    in-place operations, the row range split over the CPUs (numpy releases the GIL): a serving
    block is 2,048 x 17,562, and whole-block uint64 temporaries (280 MB each) made this hash
    the slowest part of serving random."""
    from concurrent.futures import ThreadPoolExecutor

    from ..backends import cpu_threads

    n, m = len(row_keys), len(col_keys)
    out = np.empty((n, m), np.float32)

    def rows(lo: int, hi: int) -> None:
        x = np.empty((min(rows_per_chunk, hi - lo), m), np.uint64)
        tmp = np.empty_like(x)
        for start in range(lo, hi, rows_per_chunk):
            r = min(rows_per_chunk, hi - start)
            with np.errstate(over="ignore"):
                np.add(row_keys[start:start + r, None], col_keys[None, :], out=x[:r])
            _mix_top24(x[:r], tmp[:r], out[start:start + r])

    parts = min(cpu_threads(), max(1, n // rows_per_chunk))
    bounds = np.linspace(0, n, parts + 1).astype(int)
    if parts == 1:
        rows(0, n)
    else:
        with ThreadPoolExecutor(parts) as pool:
            list(pool.map(rows, bounds[:-1], bounds[1:]))
    return out


@dataclass
class RandomParams(Params):
    seed: Seed = 42


class RandomRecommender(Recommender):
    """Uniformly random unseen items. A user's draw is a hash of (seed, what they liked, item),
    so it does not depend on which batch or position the user comes in: same input, same list."""

    name = "random"
    Params = RandomParams

    def fit(self, interactions, catalog: pd.DataFrame):
        self.n_items = int(interactions.shape[1])
        return self

    def scores(self, user_items: sp.csr_matrix, candidates: np.ndarray) -> np.ndarray:
        m = sp.csr_matrix(user_items)
        m.sort_indices()
        # one 64-bit key per user from its liked items (order-free: a sum of hashes)
        per_entry = _mix64(m.indices.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))
        with np.errstate(over="ignore"):
            user_key = np.add.reduceat(per_entry, m.indptr[:-1]) if m.nnz else np.zeros(m.shape[0], np.uint64)
        user_key = np.where(np.diff(m.indptr) > 0, user_key, np.uint64(0))
        with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as a hash should
            row_keys = user_key * np.uint64(1_000_003)
            col_keys = candidates.astype(np.uint64) + np.uint64(self.params.seed) * np.uint64(0x632BE59BD9B4E019)
        return _mixed_grid(row_keys, col_keys)

    def contributions(self, liked, items):
        return None  # a random draw owes nothing to what was liked

    def state(self) -> dict:
        return {}

    def restore(self, arrays, catalog):
        self.n_items = len(catalog)
        return self


class PopularRecommender(Recommender):
    """Most promoted items first (ties: lower catalog row). Items nobody promoted still fill a
    list, after all promoted ones, as a popularity chart would show them."""

    name = "popular"

    def fit(self, interactions, catalog: pd.DataFrame):
        x = sp.csr_matrix(interactions)
        self.n_items = int(x.shape[1])
        self.counts = np.bincount(x.indices[x.data > 0], minlength=self.n_items).astype(np.float32)
        return self

    def scores(self, user_items, candidates):
        return np.broadcast_to(self.counts[candidates], (user_items.shape[0], len(candidates)))

    def item_scores(self, items, candidates):
        return np.broadcast_to(self.counts[candidates], (len(items), len(candidates)))

    def contributions(self, liked, items):
        return None  # popular for everyone, whatever was liked

    def state(self):
        return {"counts": self.counts}

    def restore(self, arrays, catalog):
        self.counts = np.asarray(arrays["counts"], np.float32)
        self.n_items = len(self.counts)
        return self
