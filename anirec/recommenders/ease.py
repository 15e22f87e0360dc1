"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): a closed-form
item-item linear model, B = I - P diag(1/diag P), P = (X^T X + lambda I)^-1, over the
promoter matrix X of the fitting users; a user's scores are x_u B.

Only anime promoted by some fitting user enter the model (the others have no CF signal and
would only inflate the items^2 matrices); they cannot be recommended by EASE.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import AnirecError
from .base import Params, Recommender


@dataclass
class EASEParams(Params):
    # L2 weight: larger = smoother, more popular-leaning. 100: best of 25-400 on the validation
    # split of both shared sets (eval/results/tune-*/grid.md; 200 was set before any sweep)
    lam: float = 100.0
    max_memory_gb: float = 0.0  # refuse above this (0 = half the machine's memory)

    def check(self, where):
        if self.lam <= 0:
            raise AnirecError(f"{where}: lam must be positive (e.g. 200).")


def _machine_memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def ease_weights(promoted: sp.csr_matrix, lam: float) -> np.ndarray:
    """The (items x items) float32 EASE matrix B (zero diagonal) of a binary users x items matrix."""
    x = sp.csr_matrix(promoted, dtype=np.float32)
    gram = (x.T @ x).toarray().astype(np.float64)  # float64 for the inverse: lambda I is small next to popular items
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = p / (-np.diag(p))[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def check_ease_memory(n_items: int, limit_gb: float = 0.0, bytes_per_pair: int = 8 + 8 + 4, what: str = "EASE") -> None:
    """Fail before allocating when the closed form's matrices would not fit (EASE: float64 gram
    + inverse + float32 B; cEASE inverts in place: ``bytes_per_pair`` 12)."""
    need = n_items * n_items * bytes_per_pair
    limit = limit_gb * (1 << 30) if limit_gb > 0 else _machine_memory_bytes() / 2
    if need > limit:
        raise AnirecError(
            f"{what} over {n_items:,} items needs about {need / (1 << 30):.1f} GB (items^2 x {bytes_per_pair} bytes while fitting), "
            f"more than the {limit / (1 << 30):.1f} GB allowed. Keep fewer anime (a smaller catalog, or only anime "
            "with ratings) or raise max_memory_gb.")


class EASERecommender(Recommender):
    name = "ease"
    Params = EASEParams

    def fit(self, interactions, catalog):
        x = sp.csr_matrix(interactions)
        self.n_items = int(x.shape[1])
        promoted = (x > 0).astype(np.float32).tocsc()
        self.active = np.flatnonzero(np.diff(promoted.indptr) > 0).astype(np.int64)
        check_ease_memory(len(self.active), self.params.max_memory_gb)
        self.weights = ease_weights(promoted[:, self.active].tocsr(), self.params.lam)
        self._pos = None
        return self

    def _active_pos(self) -> np.ndarray:
        if self._pos is None:
            self._pos = np.full(self.n_items, -1, np.int64)
            self._pos[self.active] = np.arange(len(self.active))
        return self._pos

    def usable_likes(self, items):
        return self._active_pos()[np.asarray(items, np.int64)] >= 0

    def scores(self, user_items, candidates):
        pos = self._active_pos()
        liked = (sp.csr_matrix(user_items) != 0).astype(np.float32)[:, self.active]
        cpos = pos[candidates]
        ok = cpos >= 0
        out = np.full((liked.shape[0], len(candidates)), -np.inf, np.float32)
        if ok.any():
            # product first, then pick columns: slicing B's columns would copy all of B on every call
            out[:, ok] = np.asarray(liked @ self.weights)[:, cpos[ok]]
        return out

    def item_scores(self, items, candidates):
        """Column view of B: how much liking each item lifts each candidate."""
        pos = self._active_pos()
        ipos, cpos = pos[np.asarray(items, np.int64)], pos[candidates]
        out = np.full((len(items), len(candidates)), -np.inf, np.float32)
        rows, cols = np.flatnonzero(ipos >= 0), np.flatnonzero(cpos >= 0)
        if len(rows) and len(cols):
            out[np.ix_(rows, cols)] = self.weights[np.ix_(ipos[rows], cpos[cols])]
        return out

    def state(self):
        return {"active": self.active, "weights": self.weights, "n_items": np.asarray([self.n_items])}

    def restore(self, arrays, catalog):
        self.active = np.asarray(arrays["active"], np.int64)
        self.weights = np.asarray(arrays["weights"], np.float32)
        self.n_items = int(arrays["n_items"][0]) if np.shape(arrays["n_items"]) == (1,) else -1
        a = self.active
        if (a.ndim != 1 or self.weights.shape != (len(a), len(a)) or self.n_items < 0
                or (len(a) and (a[0] < 0 or a[-1] >= self.n_items or (np.diff(a) <= 0).any()))):
            raise AnirecError("EASE state: 'active' must be increasing item rows below 'n_items', "
                              "'weights' len(active) x len(active).")
        self._pos = None
        return self
