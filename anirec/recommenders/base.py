"""The one interface every recommender implements (after implicit's ``recommender_base.py``).

Items are catalog rows (0 .. n_items-1). Users are rows of sparse (users x items) matrices:

* ``fit(interactions, catalog)``: learn from the fitting users' opinions, a (users x items)
  CSR with +1 (promoter, rated 9-10) and -1 (detractor, 1-6); passives carry no CF signal.
  ``catalog`` is the catalog DataFrame (rows aligned with the items) for content methods.
* ``recommend(user_items, k, exclude, candidates)``: for many users at once. ``user_items``
  is what each user liked (non-zero = promoted); ``exclude`` what must never come back
  (every stored entry, whatever its value: a passive rating stored as 0 is still rated; the
  liked items are always excluded); ``candidates`` the items that may be recommended (None:
  all). Returns (users x k) item rows, -1 where a method has fewer than k items to offer,
  and their scores (k at most the number of items).
* ``similar_items(items, k, candidates)``: the k items most like each of ``items``.

Most methods only define ``scores`` (a dense users x candidates block, -inf = cannot be
recommended); the base class does batching, exclusion and the one top-k
(:func:`anirec.neighbors.top_k`: best first, ties -> the lower item row) once, so every
method is served the same way by `evaluate` and `recommend`. A fitted method saves its state
as named arrays plus JSON parameters (``state``/``restore``), which :mod:`anirec.fitted`
writes to a folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..config import from_table
from ..errors import AnirecError
from ..neighbors import top_k

# Users scored per block: a block is (batch x n_items) float32, 2,048 x 17.5k = 144 MB.
USER_BATCH = 2048


def as_user_items(matrix, n_items: int, what: str = "user_items") -> sp.csr_matrix:
    """A (users x n_items) float32 CSR, checked."""
    m = sp.csr_matrix(matrix, dtype=np.float32)
    if m.shape[1] != n_items:
        raise AnirecError(f"{what} has {m.shape[1]} item columns; this recommender was fitted on {n_items} items.")
    return m


def writable_block(scores) -> np.ndarray:
    """A method's score block as float32 the serving loop may overwrite: ``scores`` returns a
    new array, so it is used as is; a read-only view (popularity's broadcast row) is copied."""
    block = np.asarray(scores)
    if block.dtype != np.float32 or not block.flags.writeable or not block.flags.c_contiguous:
        block = np.array(block, dtype=np.float32, order="C")
    return block


@dataclass
class Params:
    """A method's parameters: a dataclass whose annotations :mod:`anirec.config` checks a
    config's keys against, by name and type."""

    @classmethod
    def from_dict(cls, raw: dict, where: str, key_where: dict | None = None) -> "Params":
        """Checked parameters from a config table or ``--param``s; ``key_where`` names the
        place of single keys (their file and line) where it is known."""
        located = (lambda key: key_where.get(key, where)) if key_where else where
        obj = from_table(cls, dict(raw), located, noun="parameter")
        obj.check(where)
        return obj

    def check(self, where: str) -> None:
        """Range checks; raise AnirecError naming ``where``."""

    def to_dict(self) -> dict:
        return asdict(self)


class Recommender:
    """Base class. Subclasses set ``name``, ``Params`` and implement ``fit`` and ``scores``
    (or override ``recommend``), plus ``state``/``restore`` when their fit is worth saving."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params
    # Whether the method reads the catalog's text (then the fitted folder records the catalog
    # description hash and the model) or only ratings (then only the catalog ids matter).
    uses_text: ClassVar[bool] = False

    def __init__(self, params: Params | None = None, **context):
        self.params = params if params is not None else self.Params()
        self.context = context  # run-wide settings: cache_dir, batch_size, progress (a seed is a parameter)
        self.n_items: int = 0

    # ---------------------------------------------------------------- to implement

    def fit(self, interactions: sp.csr_matrix, catalog: pd.DataFrame) -> "Recommender":
        raise NotImplementedError

    def scores(self, user_items: sp.csr_matrix, candidates: np.ndarray) -> np.ndarray:
        """(users x len(candidates)) float32 scores; -inf where an item cannot be recommended.

        A new array (the serving loop writes -inf into it), or a read-only view it copies."""
        raise NotImplementedError

    def item_scores(self, items: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """(len(items) x len(candidates)) similarity of each item to each candidate. The default
        treats each item as a user who liked only it."""
        one_hot = sp.csr_matrix((np.ones(len(items), np.float32), (np.arange(len(items)), items)),
                                shape=(len(items), self.n_items))
        return self.scores(one_hot, candidates)

    def contributions(self, liked: np.ndarray, items: np.ndarray) -> np.ndarray | None:
        """(len(liked) x len(items)) how much each liked item lifts each recommended one, read as
        "because you liked": EASE's B[liked, item], a text method's cosine. None when the method's
        scores do not come from what was liked (popularity, random)."""
        return self.item_scores(np.asarray(liked, np.int64), np.asarray(items, np.int64))

    def query_scores(self, text: str, candidates: np.ndarray) -> np.ndarray:
        """(1 x len(candidates)) how well each candidate fits a free-text query; methods with a
        text part embed it (see :mod:`anirec.text_query`)."""
        raise AnirecError(f"method {self.name!r} reads no text, so it cannot rank by a free-text query; "
                          "use a folder fitted with the text or hybrid method.")

    def usable_likes(self, items) -> np.ndarray:
        """Per liked item, whether liking it can change this method's list (EASE knows nothing of
        an anime nobody rated); serving names the others in a warning instead of ignoring them."""
        return np.ones(len(np.asarray(items)), bool)

    def state(self) -> dict[str, np.ndarray]:
        """Named arrays that, with the parameters, restore the fitted method."""
        raise AnirecError(f"method {self.name!r} cannot be saved to a folder.")

    def restore(self, arrays: dict[str, np.ndarray], catalog: pd.DataFrame) -> "Recommender":
        raise AnirecError(f"method {self.name!r} cannot be loaded from a folder.")

    # ---------------------------------------------------------------- shared serving

    def _candidates(self, candidates) -> np.ndarray:
        if candidates is None:
            return np.arange(self.n_items, dtype=np.int64)
        cand = np.asarray(candidates, np.int64)
        if len(cand) > 1 and not (cand[1:] > cand[:-1]).all():  # already sorted and unique: a served filter mask
            cand = np.unique(cand)
        if len(cand) and (cand[0] < 0 or cand[-1] >= self.n_items):
            raise AnirecError(f"candidates must be item rows in 0..{self.n_items - 1}.")
        return cand

    def recommend(self, user_items, k: int = 10, exclude=None, candidates=None,
                  batch_size: int = USER_BATCH) -> tuple[np.ndarray, np.ndarray]:
        """(users x k) recommended item rows (-1 = none left) and scores, for many users at once."""
        if not self.n_items:
            raise AnirecError(f"method {self.name!r} is not fitted: call fit() first.")
        if k < 1:
            raise AnirecError(f"k = {k}: must be at least 1.")
        k = min(k, self.n_items)  # a list is never longer than the catalog (-k 10**12 must not allocate it)
        liked = as_user_items(user_items, self.n_items)
        blocked = (liked != 0).astype(np.float32)
        if exclude is not None:
            ex = as_user_items(exclude, self.n_items, "exclude")  # stored entries count, not their value
            blocked = blocked + sp.csr_matrix((np.ones(ex.nnz, np.float32), ex.indices, ex.indptr), shape=ex.shape)
        blocked = blocked.tocsr()
        cand = self._candidates(candidates)
        n_users = liked.shape[0]
        out_idx = np.full((n_users, k), -1, np.int64)
        out_val = np.full((n_users, k), -np.inf, np.float32)
        pos = np.full(self.n_items, -1, np.int64)
        pos[cand] = np.arange(len(cand))
        for start in range(0, n_users, batch_size):
            stop = min(start + batch_size, n_users)
            block = writable_block(self.scores(liked[start:stop], cand))
            b = blocked[start:stop].tocoo()
            col = pos[b.col]
            ok = col >= 0
            block[b.row[ok], col[ok]] = -np.inf
            top, val = top_k(block, k)
            out_idx[start:stop] = np.where(top >= 0, cand[np.maximum(top, 0)], -1)
            out_val[start:stop] = val
        return out_idx, out_val

    def similar_items(self, items, k: int = 10, candidates=None) -> tuple[np.ndarray, np.ndarray]:
        """(len(items) x k) the items most like each of ``items`` (never itself), and scores."""
        if not self.n_items:
            raise AnirecError(f"method {self.name!r} is not fitted: call fit() first.")
        items = np.asarray(items, np.int64)
        k = min(k, self.n_items)  # as in recommend
        cand = self._candidates(candidates)
        block = writable_block(self.item_scores(items, cand))
        if candidates is None:  # columns are items: no renumbering (a title query's few microseconds)
            block[np.arange(len(items)), items] = -np.inf
            return top_k(block, k)
        pos = np.full(self.n_items, -1, np.int64)
        pos[cand] = np.arange(len(cand))
        own = pos[items]
        mine = np.flatnonzero(own >= 0)
        block[mine, own[mine]] = -np.inf
        top, val = top_k(block, k)
        return np.where(top >= 0, cand[np.maximum(top, 0)], -1), val

    def describe(self) -> dict:
        """What a results table or manifest says about the method."""
        return {"method": self.name, "params": self.params.to_dict()}
