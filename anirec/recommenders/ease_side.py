"""cEASE: EASE with side information, over every catalog anime (rated or not).

Jeunen, Van Balen, Goethals, "Closed-Form Models for Collaborative Filtering with
Side-Information" (RecSys 2020; code olivierjeunen/ease-side-info-recsys-2020): stack the
item-feature matrix under the rating matrix as extra "users" and solve EASE on the stack,

    G = X^T X + alpha^2 F F^T + lambda I,   P = G^-1,   B = I - P diag(1/diag P),

with X the fitting users' promoters (users x items) and F the item features (items x d, from
:mod:`anirec.item_features`: TF-IDF reduced by SVD, a sentence-transformers model, structured
one-hot blocks). An anime nobody rated still has a row and a column in B through its features:
it can be recommended, and liking it shapes the list, on the same scale as every other anime.
Unlike :mod:`.ease`, every catalog anime is in the model.

**New anime.** cEASE's own column of an anime without ratings regresses its features on other
anime's while predicting no rating at all; "how much would CF like this anime, judging by the
rated anime it reads like" (the hybrid's text-to-CF map) asks the same from the other side.
Half of each ranks new anime better than either (validation split, cold start NDCG@10: own
0.237, map 0.231, half of each 0.253 on the 2020 set; 0.235 / 0.232 / 0.259 on the 2016 set).
An anime with no promoter therefore scores ``map_share`` x its map (the weighted mean of
the user's cEASE scores of its ``n_neighbors`` nearest rated anime by text, see
:func:`.hybrid.text_to_cf_mapping`) + (1 - ``map_share``) x its own cEASE score, all in units
of the user's largest known-anime score.

**Mixing new and known anime.** The new-anime score is then calibrated onto the known-anime
scale by ``new_weight`` x score + ``new_shift``: with a logistic link per group (Platt
scaling) equal calibrated relevance is exactly such an affine map between the groups, in the
spirit of the score-distribution alignment of GAR (Chen et al., SIGIR 2022) and ALDI (Huang
et al., SIGIR 2023). Both are chosen on the validation split (`anirec tune`,
eval/results/tune-*), never on the scored targets, together with ``new_popularity`` (below):
the best mean NDCG@10 of the holdout, cold-start and mixed protocols over both sets is
weight 1, shift +0.1, popularity 0.075. An anime
nobody rated can never be a holdout target, so each one let into a list costs holdout hits,
while on mixed the cold ones among them gain more. ``new_slots`` > 0 adds a quota (Steck,
"Calibrated Recommendations", RecSys 2018): of every 10 places at least ``new_slots`` go to
the best new anime (the first m places hold ``new_slots * m // 10``), the rest by score; 0
leaves the list to the scores. The quota is built from the top down, so a longer list starts
with the shorter one: what `evaluate` scores at 10 of its 20 is what `recommend -k 10` serves.

**Expected popularity.** The map and cEASE's column say how well a new anime fits this user, not
how many people will like it at all, which for a known anime is part of its score: EASE's
columns carry each anime's popularity. ``new_popularity`` > 0 adds that much of the new anime's
expected popularity - a ridge regression of log(1 + promoters) on F over the rated anime
(:func:`expected_popularity`), in standard deviations of the rated anime's - to its score.
It is read from the catalog's text alone, so it tells an anime nobody watched in its time
(an obscure short, a minor spin-off) from one that reads like the many that were watched: as
a diagnostic (no parameter was chosen on it) it ranks the mixed protocol's cold anime above the
released anime nobody rated with ROC AUC 0.88 on the 2016 set and 0.75 on the 2020 set (TF-IDF F).

**Memory and speed.** G is float64 (a popular anime's count dwarfs lambda) and inverted in
place by a Cholesky factorisation (LAPACK potrf + potri: half the flops of a general inverse,
no second n x n copy); B is float32. Peak about n^2 x 12 bytes: 3.7 GB at 17,562 anime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..config import Seed, Tokens
from ..errors import AnirecError
from ..item_features import NO_TEXT, TFIDF, FeatureSpec, item_features
from ..neighbors import top_k
from .base import USER_BATCH, Params, Recommender
from .ease import check_ease_memory
from .hybrid import text_to_cf_mapping
from .pooled import item_rows_state, sparse_restore, sparse_state
from .text import TextParams, TextRecommender

# float64 G inverted in place + float32 B
BYTES_PER_PAIR = 8 + 4
# new_slots counts places per this many: 2 = at least 1 new anime in the first 5, 2 in the first 10
QUOTA_PER = 10


@dataclass
class CEASEParams(Params):
    # The defaults below were chosen on the validation split of both shared sets (`anirec tune`,
    # eval/results/tune-*/grid.md), each the best of its grid on both sets or, where the sets
    # disagree, on their mean (the reasons are in the README's results section).
    lam: float = 200.0  # L2 weight of B
    alpha: float = 30.0  # weight of the feature rows stacked under the ratings (0: EASE over every anime)
    model: str = TFIDF  # F's text: "tfidf" (SVD to `dims`), a sentence-transformers name/path, or "none"
    dims: int = 256  # TF-IDF's SVD dimensions
    tfidf_weight: float = 0.0  # dense model fused with TF-IDF in F (0.5: equal say once scaled)
    genres_weight: float = 0.0  # structured one-hot blocks of F, each next to the text block's 1
    studios_weight: float = 0.0
    source_weight: float = 0.0
    type_weight: float = 0.0
    max_seq_length: Tokens = None  # a dense model's tokens per description (None or 0: the model's own)
    backend: str = "torch"
    map_model: str = TFIDF  # text of the new-anime map: "tfidf" (full vocabulary), a model, or "none" (no map)
    map_tfidf_weight: float = 0.0  # a dense map model fused with TF-IDF, as the text method does
    map_share: float = 0.5  # a new anime's score: this share from the map, the rest from cEASE's own column
    n_neighbors: int = 20  # rated anime each new anime is mapped from
    power: float = 2.0  # similarity ** power: the nearest rated anime count most
    prior: float = 0.0  # weight of a score-0 pseudo-neighbour: weak text matches stay near 0
    new_weight: float = 1.0  # calibration of new-anime scores onto the known scale: weight x score + shift
    new_shift: float = 0.1
    new_slots: int = 0  # of every 10 places, this many kept for the best new anime (0: scores decide)
    new_popularity: float = 0.075  # weight of a new anime's expected popularity (in SDs) added to its score
    max_memory_gb: float = 0.0  # refuse above this (0 = half the machine's memory)
    seed: Seed = 0  # TruncatedSVD of the TF-IDF features (the run's seed)

    def check(self, where):
        if self.lam <= 0:
            raise AnirecError(f"{where}: lam must be positive (e.g. 200).")
        for name in ("alpha", "prior", "new_weight", "new_slots", "new_popularity"):
            if getattr(self, name) < 0:
                raise AnirecError(f"{where}: {name} must be 0 or more.")
        if self.new_slots > QUOTA_PER:
            raise AnirecError(f"{where}: new_slots counts places per {QUOTA_PER}: at most {QUOTA_PER}.")
        if not 0.0 <= self.map_share <= 1.0 or not 0.0 <= self.map_tfidf_weight <= 1.0:
            raise AnirecError(f"{where}: map_share and map_tfidf_weight must be between 0 and 1.")
        if self.n_neighbors < 1 or self.power <= 0:
            raise AnirecError(f"{where}: n_neighbors must be at least 1 and power positive.")
        if self.alpha > 0:
            self.features().check(where)
        if self.map_model != NO_TEXT:
            self.map_params().check(where)

    def features(self) -> FeatureSpec:
        return FeatureSpec(model=self.model, dims=self.dims, tfidf_weight=self.tfidf_weight,
                           genres_weight=self.genres_weight, studios_weight=self.studios_weight,
                           source_weight=self.source_weight, type_weight=self.type_weight,
                           max_seq_length=self.max_seq_length, backend=self.backend, seed=self.seed)

    def map_params(self) -> TextParams:
        return TextParams(model=self.map_model, max_seq_length=self.max_seq_length, tfidf_weight=self.map_tfidf_weight,
                          backend=self.backend, n_neighbors=self.n_neighbors)


def side_gram(promoted: sp.csr_matrix, features: np.ndarray | None, alpha: float, lam: float,
              block: int = 1024) -> np.ndarray:
    """G = X^T X + alpha^2 F F^T + lambda I as a Fortran-ordered float64 array whose UPPER
    triangle is valid (what LAPACK reads). X^T X is added one column block at a time from
    sparse products, so no sparse n x n matrix ever exists."""
    from scipy.linalg import blas

    x = sp.csr_matrix(promoted, dtype=np.float64)
    n = x.shape[1]
    gram = np.zeros((n, n), np.float64, order="F")
    xt, xc = x.T.tocsr(), x.tocsc()
    for start in range(0, n, block):
        stop = min(start + block, n)
        gram[:, start:stop] += (xt @ xc[:, start:stop]).toarray()
    if features is not None and alpha > 0 and features.shape[1]:
        f = np.asfortranarray(features, dtype=np.float64)
        gram = blas.dsyrk(alpha * alpha, f, beta=1.0, c=gram, trans=0, lower=0, overwrite_c=1)
    gram[np.diag_indices(n)] += lam
    return gram


def weights_from_gram(gram: np.ndarray, block: int = 512) -> np.ndarray:
    """B = I - P diag(1/diag P) (float32, zero diagonal) from G's upper triangle; G is
    overwritten by P = G^-1 (Cholesky: potrf, then potri)."""
    from scipy.linalg import lapack

    chol, info = lapack.dpotrf(gram, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise AnirecError(f"cEASE: the Gram matrix is not positive definite (LAPACK potrf info {info}); raise lam.")
    inv, info = lapack.dpotri(chol, lower=0, overwrite_c=1)
    if info != 0:
        raise AnirecError(f"cEASE: inverting the Gram matrix failed (LAPACK potri info {info}); raise lam.")
    n = inv.shape[0]
    diag = np.diag(inv).copy()
    out = np.empty((n, n), np.float32)
    cols = np.arange(n)
    for start in range(0, n, block):  # full rows of the symmetric P from its upper triangle
        rows = np.arange(start, min(start + block, n))
        full = np.where(cols[None, :] >= rows[:, None], inv[rows, :], inv[:, rows].T)
        out[rows] = full / (-diag[None, :])
        out[rows, rows] = 0.0
    return out


def expected_popularity(features: np.ndarray, support: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Each anime's expected log(1 + promoters) from its features, in standard deviations of the
    rated anime's around their mean (float32; 0 where nothing can be said): ridge regression
    fitted on the anime with support > 0, in closed form (d x d), so cheap at any catalog size."""
    f = np.asarray(features, np.float64)
    known = np.asarray(support) > 0
    out = np.zeros(len(f), np.float32)
    if known.sum() < 2 or not f.shape[1]:
        return out
    y = np.log1p(np.asarray(support, np.float64)[known])
    spread = y.std()
    if spread == 0:
        return out
    fk = f[known]
    mean_f = fk.mean(axis=0)
    fc = fk - mean_f
    w = np.linalg.solve(fc.T @ fc + ridge * np.eye(f.shape[1]), fc.T @ (y - y.mean()))
    return (((f - mean_f) @ w) / spread).astype(np.float32)


def side_weights(promoted: sp.csr_matrix, features: np.ndarray | None, alpha: float, lam: float) -> np.ndarray:
    """The (items x items) float32 cEASE matrix B of a binary users x items matrix and item features."""
    return weights_from_gram(side_gram(promoted, features, alpha, lam))


# The last few B fitted, keyed by everything they depend on: a tuning grid varies the new-anime
# parameters far more often than the data, alpha, lambda or F, and an evaluation fits each
# method on three protocols' data in turn. At most MEMO_BYTES of B are kept (4 of the shared
# catalog's 3,868 x 3,868 = 60 MB; none of a 17,562-anime catalog's 1.2 GB).
MEMO_BYTES = 512 << 20
_memo: dict = {}


def _memoised_weights(promoted: sp.csr_matrix, catalog, p: CEASEParams, context: dict) -> tuple[np.ndarray, dict, np.ndarray | None]:
    import hashlib

    from ..io import hash_strings

    h = hashlib.sha1()
    for a in (promoted.indptr, promoted.indices, np.asarray(promoted.shape)):
        h.update(np.ascontiguousarray(a).tobytes())
    spec = p.features() if p.alpha > 0 else None
    key = (h.hexdigest(), p.alpha, p.lam, repr(spec), hash_strings(catalog["description"].astype(str).tolist()),
           str(context.get("cache_dir")))
    if key in _memo:
        return _memo[key]
    features, info = item_features(catalog, spec, context) if spec is not None else (None, {"dims": 0})
    weights = side_weights(promoted, features, p.alpha, p.lam)
    if weights.nbytes <= MEMO_BYTES:
        while _memo and sum(w.nbytes for w, _, _ in _memo.values()) + weights.nbytes > MEMO_BYTES:
            _memo.pop(next(iter(_memo)))
        _memo[key] = (weights, info, features)
    return weights, info, features


class CEASERecommender(Recommender):
    name = "cease"
    Params = CEASEParams
    uses_text = True

    def fit(self, interactions, catalog):
        x = sp.csr_matrix(interactions)
        self.n_items = int(x.shape[1])
        p = self.params
        check_ease_memory(self.n_items, p.max_memory_gb, BYTES_PER_PAIR, "cEASE")
        promoted = (x > 0).astype(np.float32)
        self.support = np.asarray(promoted.sum(axis=0)).ravel().astype(np.float32)
        self.weights, self.features_info, features = _memoised_weights(promoted, catalog, p, self.context)
        self.popularity = np.zeros(self.n_items, np.float32)
        if p.new_popularity > 0:
            if features is None:  # alpha 0: F is not in B, but its features still read popularity
                features, _ = item_features(catalog, p.features(), self.context)
            self.popularity = expected_popularity(features, self.support)
        self.map_info, self.text = None, None
        self.mapping = sp.csr_matrix((self.n_items, 0), dtype=np.float32)
        if p.map_model != NO_TEXT:
            # the map's text part: the new-anime map's rows, and what embeds a free-text query
            self.text = TextRecommender(p.map_params(), **self.context).fit(x, catalog)
            self.map_info = self.text.embedding
            if (self.support > 0).any():
                self.mapping = text_to_cf_mapping(self.text.item_rows, self.known, p.n_neighbors, p.power, p.prior)
        return self

    @property
    def known(self) -> np.ndarray:
        """Rows of the anime some fitting user promoted (the map's columns)."""
        return np.flatnonzero(self.support > 0)

    def scores(self, user_items, candidates):
        liked = (sp.csr_matrix(user_items) != 0).astype(np.float32)
        raw = np.asarray(liked @ self.weights)
        known = self.known
        # per user, in units of the largest known-anime score: what new_shift is measured in
        scale = np.abs(raw[:, known]).max(axis=1, initial=0.0) if len(known) else np.zeros(len(raw), np.float32)
        raw /= np.where(scale > 0, scale, 1.0)[:, None]
        out = raw[:, candidates]
        new = np.flatnonzero(self.support[candidates] == 0)
        if len(new):
            p = self.params
            own = out[:, new]
            if self.mapping.shape[1]:
                mapped = np.asarray((self.mapping[candidates[new]] @ raw[:, known].T).T)
                own = p.map_share * mapped + (1.0 - p.map_share) * own
            out[:, new] = p.new_weight * own + p.new_shift + p.new_popularity * self.popularity[candidates[new]]
        return out.astype(np.float32, copy=False)

    def contributions(self, liked, items):
        """B[liked, item]: how much liking each anime adds to each item's raw score. For a new
        item the same additive parts of its new-anime score: ``map_share`` x the liked anime's B
        row over the rated anime its map reads from, plus the rest x its own B column (the
        per-user scale and the calibration are common to every liked anime: they cannot change
        which one lifted an item most)."""
        liked, items = np.asarray(liked, np.int64), np.asarray(items, np.int64)
        rows = self.weights[liked]
        out = rows[:, items].astype(np.float32)
        new = np.flatnonzero(self.support[items] == 0)
        if len(new) and self.mapping.shape[1]:
            share = self.params.map_share
            mapped = np.asarray((self.mapping[items[new]] @ rows[:, self.known].T).T)
            out[:, new] = share * mapped + (1.0 - share) * out[:, new]
        return out

    def usable_likes(self, items):
        return np.ones(len(np.asarray(items)), bool)  # every anime has a row of B through its features

    def query_scores(self, text, candidates):
        if self.text is None:
            return super().query_scores(text, candidates)  # map_model "none": no text to read a query with
        return self.text.query_scores(text, candidates)  # the map's text (TF-IDF by default)

    def recommend(self, user_items, k=10, exclude=None, candidates=None, batch_size=USER_BATCH):
        """The scores' top k, or with ``new_slots`` that many new anime in every 10 places (see
        :func:`merge_quota`)."""
        if self.params.new_slots <= 0 or not self.n_items or k < 1:
            return super().recommend(user_items, k, exclude, candidates, batch_size)
        k = min(k, self.n_items)  # as the base does
        cand = self._candidates(candidates)
        new = self.support[cand] == 0
        if new.all() or not new.any():  # one kind of candidate only: nothing to keep places for
            return super().recommend(user_items, k, exclude, cand, batch_size)
        known_idx, known_val = super().recommend(user_items, k, exclude, cand[~new], batch_size)
        new_idx, new_val = super().recommend(user_items, k, exclude, cand[new], batch_size)
        return merge_quota(known_idx, known_val, new_idx, new_val, k, self.params.new_slots)

    def describe(self):
        return {**super().describe(), "embedding": (getattr(self, "features_info", None) or {}).get("embedding"),
                "map_embedding": getattr(self, "map_info", None)}

    def state(self):
        out = {"weights": self.weights, "support": self.support, "popularity": self.popularity}
        out.update(sparse_state("mapping", self.mapping))
        if self.text is not None:  # only the map's rows (never pooled over) and the query's arrays
            out.update({f"text.{k}": v for k, v in {**item_rows_state(self.text.item_rows),
                                                    **self.text.query.state()}.items()})
        return out

    def restore(self, arrays, catalog):
        self.weights = np.asarray(arrays["weights"], np.float32)
        self.support = np.asarray(arrays["support"], np.float32)
        # a folder fitted before expected popularity existed has none: no new anime is lifted
        self.popularity = np.asarray(arrays["popularity"], np.float32) if "popularity" in arrays else \
            np.zeros(len(self.support), np.float32)
        self.mapping = sparse_restore("mapping", arrays)
        self.n_items = n = len(self.support)
        self.text = None
        text = {k[5:]: v for k, v in arrays.items() if k.startswith("text.")}
        if text:
            self.text = TextRecommender(self.params.map_params(), **self.context).restore(text, catalog)
        n_known = int((self.support > 0).sum())
        if (self.support.ndim != 1 or self.weights.shape != (n, n) or (self.support < 0).any()
                or self.popularity.shape != (n,) or not np.isfinite(self.popularity).all()
                or self.mapping.shape not in ((n, n_known), (n, 0))
                or (self.text is not None and self.text.n_items != n)
                or (self.params.map_model != NO_TEXT) != (self.text is not None)):
            raise AnirecError("cEASE state: 'weights' must be n x n for the n = len('support') items, 'popularity' "
                              "n finite numbers, 'mapping' "
                              "n x (anime with support > 0) or n x 0, and the map's text rows (when its map_model "
                              "reads text) one per item.")
        return self


def merge_quota(known_idx, known_val, new_idx, new_val, k: int, slots: int, per: int = QUOTA_PER) -> tuple[np.ndarray, np.ndarray]:
    """Per row, place by place: the better of the next known and the next new pick by score
    (ties -> lower item row), except that the first m places hold at least ``slots * m // per``
    new anime while there are new picks left. Built from the top down, so the first m places
    of a longer list are the list of m (an evaluation's k = 20 list scored at 10 is the list
    `recommend -k 10` serves). Both inputs best first, -1 / -inf padded; at least k columns of
    known picks and min(k, new candidates) of new ones."""
    rows = np.arange(known_idx.shape[0])
    idx = np.full((len(rows), k), -1, np.int64)
    val = np.full((len(rows), k), -np.inf, np.float32)
    ki, ni = np.zeros(len(rows), np.int64), np.zeros(len(rows), np.int64)

    def head(ids, vals, at):
        ok = at < ids.shape[1]
        pos = np.minimum(at, ids.shape[1] - 1)
        item = np.where(ok, ids[rows, pos], -1)
        return item, np.where(item >= 0, vals[rows, pos], -np.inf)

    for place in range(k):
        k_item, k_val = head(known_idx, known_val, ki)
        n_item, n_val = head(new_idx, new_val, ni)
        better = (n_val > k_val) | ((n_val == k_val) & (n_item >= 0) & ((k_item < 0) | (n_item < k_item)))
        owed = (ni < slots * (place + 1) // per) & (n_item >= 0)
        take_new = (n_item >= 0) & (better | owed)
        idx[:, place] = np.where(take_new, n_item, k_item)
        val[:, place] = np.where(take_new, n_val, k_val)
        ni += take_new
        ki += ~take_new & (k_item >= 0)
    return idx, val
