"""The evaluation protocols: which users are scored, what each method may learn from (``fit``),
what it is given per user (``promoted``, ``seen``), what may be recommended (``candidates``)
and what counts as a hit (``relevant``). Each builds a :class:`Task`; methods never see more.

``reference``  faithful to the reference: the saved train/test split of `anirec pairs`;
    each test user's train promoters are the input; the score is the mean opinion
    (+1/0/-1) of the recommendations the user rated in test ("found"). It ignores misses.
``holdout``    leakage-free ranking metrics: for every user with >= ``min_promoted``
    promoted anime, a seeded ``fraction`` of their promoted anime (at least 1, never all)
    and the same fraction of their other ratings are held out. Targets = the held-out
    promoters; the remaining ratings are the input and are never recommended; CF and
    popularity are fit on the remaining ratings of all users. With a split, its train rows
    (what pair labels, hence fine-tuned models, were mined from) are never held out.
``coldstart``  a seeded set of rated anime (``cold_fraction``) is treated as brand new:
    every rating of them is removed from the fitting data. Users with a promoted cold anime
    and a promoted warm anime are evaluated: input = their warm ratings, targets = their
    promoted cold anime, and **only cold anime may be recommended**. CF cannot recommend
    them at all: this is where text must win.
``mixed``      a new season beside the back catalogue: the same cold anime have no ratings
    in the fitting data, but **every (released) anime is a candidate**; the holdout's held-out warm
    promoters and every promoted cold anime are the targets. It shows whether a method
    mixes new and known anime well (``new_share@k``: how much of a list is new anime).

**Candidates are the anime released by the ratings' date** (``candidates = "released"``, the
default; ``"all"`` for every catalog anime). A catalog is often newer than its ratings (the
shared 2016 ratings sit beside a catalog that runs to 2025: 2,066 of its 3,868 anime premiered
after the last season anyone rated), and an anime that premiered after the ratings were taken
could not have been rated by anyone in them: as a candidate it can only be a miss, however apt,
and it makes every method that lets anime without ratings into its lists look worse than it
would for users of that time (on the 2016 set 2,066 of the mixed protocol's 2,650 candidates
without fitting ratings). Time-aware offline evaluation keeps the candidates to what existed at the
time (Ji, Sun, Zhang, Li, "A Critical Study on Data Leakage in Recommender System Offline
Evaluation", TOIS 2023). The ratings carry no dates, so "the ratings' date" is the latest
premiere season of any anime they rate (:func:`released_items`); anime with no known premiere
stay candidates. The reference protocol is left as the reference ran it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..anime_fields import SEASONS, premiere_order
from ..data import read_anime_ids
from ..errors import AnirecError, warn
from ..interactions import fit_matrix, rows_of_ids, user_rows_matrix
from ..io import hash_strings
from ..split import check_pairs_split
from .seeds import STREAM_COLD, STREAM_HOLDOUT, seeded_rng

PROTOCOLS = ("reference", "holdout", "coldstart", "mixed")
CANDIDATES = ("released", "all")


# --------------------------------------------------------------------------- released anime


def released_items(catalog: pd.DataFrame, rated_items: np.ndarray) -> tuple[np.ndarray, dict]:
    """The catalog rows that had premiered by the ratings' date - the latest premiere season of
    any rated anime (``rated_items``: catalog rows) - and what meta.json says of it. Rows with
    no known premiere are kept; with no dated rated anime at all, every row is."""
    order = premiere_order(catalog)  # a year without a season counts as its Winter: kept within it
    rated = order[np.unique(np.asarray(rated_items, np.int64))]
    rated = rated[~np.isnan(rated)]
    if not len(rated):
        return np.arange(len(catalog)), {"as_of": None, "released": int(len(catalog)), "later": 0}
    as_of = float(rated.max())
    later = order > as_of  # NaN compares False: an undated anime stays
    info = {"as_of": f"{SEASONS[int(as_of) % 4]} {int(as_of) // 4}", "released": int((~later).sum()),
            "later": int(later.sum())}
    return np.flatnonzero(~later), info


# --------------------------------------------------------------------------- cold anime


def cold_anime_ids(ratings: pd.DataFrame, catalog_ids, fraction: float = 0.15, seed: int = 42) -> np.ndarray:
    """The seeded cold-start anime: ``fraction`` of the catalog anime that have any rating.

    Depends only on (ratings' anime ids, catalog ids, fraction, seed), so `anirec cold-anime`
    can write the list before `anirec pairs` and the same list comes back here.
    """
    if not 0.0 < fraction < 1.0:
        raise AnirecError(f"cold fraction {fraction}: must be between 0 and 1 (e.g. 0.15).")
    rated = np.intersect1d(np.unique(ratings["anime_id"].to_numpy(np.int64)), np.asarray(catalog_ids, np.int64))
    if len(rated) < 2:
        raise AnirecError(f"only {len(rated)} catalog anime have ratings: too few for a cold-start view.")
    n_cold = min(max(1, int(np.floor(fraction * len(rated) + 0.5))), len(rated) - 1)
    return np.sort(rated[seeded_rng(seed, STREAM_COLD).permutation(len(rated))[:n_cold]])


def check_pairs_exclude(pair_files: list[str], cold_ids: np.ndarray) -> dict:
    """How many pairs of each training pairs file contain a cold anime (0 = a clean cold start).

    Fine-tuning sees an anime only through pairs that contain it, so this is the check that the
    fine-tuned models never learnt from a cold anime; a non-zero count is warned about.
    """
    counts = {}
    for f in pair_files:
        if not Path(f).exists():
            raise AnirecError(f"{f}: pairs file not found (listed under `pairs`, the files the fine-tuned models learnt from).")
        check_pairs_split(f)
        frame = pd.read_parquet(f, columns=["anime_a", "anime_b"])
        n = int(len(frame) - len(drop_anime(frame, cold_ids)))
        counts[str(f)] = n
        if n:
            warn(f"{f}: {n:,} pairs contain a cold-start anime, so models fine-tuned on it have seen them. "
                 "Make the pairs with `anirec pairs --exclude-anime cold_anime.txt` for a clean cold-start view.")
    return counts


def drop_anime(frame: pd.DataFrame, anime_ids) -> pd.DataFrame:
    """Rows of a ratings/split frame (``anime_id``) or pairs frame (``anime_a``/``anime_b``) that
    touch none of ``anime_ids``: how the pairs stage keeps cold anime out of pair labels."""
    ids = np.asarray(anime_ids, np.int64)
    cols = [c for c in ("anime_id", "anime_a", "anime_b") if c in frame.columns]
    if not cols:
        raise AnirecError("drop_anime: frame has no anime_id or anime_a/anime_b column.")
    touch = np.zeros(len(frame), bool)
    for c in cols:
        touch |= np.isin(frame[c].to_numpy(np.int64), ids)
    return frame[~touch].reset_index(drop=True)


# --------------------------------------------------------------------------- protocols


@dataclass
class Task:
    """One protocol's users and what each method may see (all matrices are users x catalog items)."""

    protocol: str
    ks: tuple[int, ...]
    users: np.ndarray  # user_id of each row
    promoted: sp.csr_matrix  # the pooled input
    seen: sp.csr_matrix  # never recommended
    rated: sp.csr_matrix  # ratings a found recommendation is scored against (value = opinion)
    relevant: sp.csr_matrix | None  # targets (None: the reference protocol has no targets)
    fit: sp.csr_matrix  # (fitting users x items) +1/-1: all that CF and popularity may learn from
    candidates: np.ndarray | None = None  # items that may be recommended (None: all)
    new_items: np.ndarray | None = None  # mixed protocol: the anime with no fitting ratings
    info: dict = field(default_factory=dict)
    item_ratings: np.ndarray | None = None  # ratings of each item in the protocol's data (popularity-bias metrics)

    @property
    def n_items(self) -> int:
        return self.promoted.shape[1]

    @property
    def n_candidates(self) -> int:
        return self.n_items if self.candidates is None else len(self.candidates)


def reference_task(split: pd.DataFrame, n_items: int, k: int = 10) -> Task:
    """The reference protocol on a split (columns user_id, item, opinion, split)."""
    is_train = (split["split"].astype(str) == "train").to_numpy()
    train, test = split[is_train], split[~is_train]
    train_prom = train[train["opinion"].to_numpy() > 0]
    users = np.intersect1d(test["user_id"].unique(), train_prom["user_id"].unique())
    promoted = user_rows_matrix(train_prom, users, n_items)
    rated = user_rows_matrix(test, users, n_items, test["opinion"].to_numpy(np.float32))
    info = {"users": int(len(users)), "test_users": int(test["user_id"].nunique()),
            "train_rows": int(len(train)), "test_rows": int(len(test)),
            "test_rows_of_users": int(rated.nnz), "k": int(k)}
    # Faithful: the reference excludes only the user's promoted anime from the pooled list.
    return Task("reference", (int(k),), users, promoted, promoted, rated, None, fit_matrix(train, n_items), info=info,
                item_ratings=np.bincount(split["item"].to_numpy(np.int64), minlength=n_items))


def holdout_mask(user_id: np.ndarray, opinion: np.ndarray, fraction: float = 0.2, min_promoted: int = 2,
                 seed: int = 42, protected: np.ndarray | None = None) -> np.ndarray:
    """Which ratings are held out: per user with >= ``min_promoted`` promoters, round(fraction x n)
    of their promoters (at least 1, at most all but 1) and round(fraction x n) of their other
    ratings, chosen at random (seeded). Rows must come in a fixed order (the caller sorts).

    ``protected`` rows are never held out: the rows pair labels were mined from (the split's
    train rows), so that no held-out rating ever reached a fine-tuned model. Users without an
    unprotected promoter are not evaluated; quotas are capped by the unprotected rows."""
    if not 0.0 < fraction < 1.0:
        raise AnirecError(f"holdout fraction {fraction}: must be between 0 and 1 (e.g. 0.2).")
    if min_promoted < 2:
        raise AnirecError(f"min_promoted {min_promoted}: must be at least 2 (one to hold out, one to recommend from).")
    codes, _ = pd.factorize(np.asarray(user_id), sort=True)
    prom = np.asarray(opinion) > 0
    free = np.ones(len(prom), bool) if protected is None else ~np.asarray(protected, bool)
    n_users = int(codes.max(initial=-1)) + 1
    n_prom = np.bincount(codes[prom], minlength=n_users)
    n_other = np.bincount(codes[~prom], minlength=n_users)
    n_prom_free = np.bincount(codes[prom & free], minlength=n_users)
    n_other_free = np.bincount(codes[~prom & free], minlength=n_users)
    eligible = (n_prom >= min_promoted) & (n_prom_free >= 1)
    quota_prom = np.where(eligible, np.clip(np.floor(fraction * n_prom + 0.5), 1, np.minimum(n_prom - 1, n_prom_free)), 0)
    quota_other = np.where(eligible, np.minimum(np.floor(fraction * n_other + 0.5), n_other_free), 0)
    # rank of each row among its (user, promoter?) group, in a random order; protected rows last
    group = codes.astype(np.int64) * 2 + prom
    key = seeded_rng(seed, STREAM_HOLDOUT).random(len(group)) + (~free) * 2.0
    order = np.lexsort((key, group))
    g = group[order]
    rank = np.empty(len(g), np.int64)
    rank[order] = np.arange(len(g)) - np.searchsorted(g, g, side="left")
    quota = np.where(prom, quota_prom[codes], quota_other[codes])
    return (rank < quota) & free


def _sorted_opinions(opinions: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray | None]:
    ops = opinions.sort_values(["user_id", "item"], kind="stable").reset_index(drop=True)
    return ops, (ops["protected"].to_numpy(bool) if "protected" in ops else None)


def _task(protocol: str, ks, users: np.ndarray, kept: pd.DataFrame, scored: pd.DataFrame, n_items: int,
          info: dict, **extra) -> Task:
    """A task whose users give their ``kept`` ratings as input (9-10s liked, all never recommended)
    and are scored on their ``scored`` ratings (9-10s are the targets); CF and popularity fit on
    every user's ``kept`` ratings."""
    targets = scored[scored["opinion"].to_numpy() > 0]
    task = Task(
        protocol, tuple(int(k) for k in ks), users,
        promoted=user_rows_matrix(kept[kept["opinion"].to_numpy() > 0], users, n_items),
        seen=user_rows_matrix(kept, users, n_items),
        rated=user_rows_matrix(scored, users, n_items, scored["opinion"].to_numpy(np.float32)),
        relevant=user_rows_matrix(targets, users, n_items),
        fit=fit_matrix(kept, n_items), info={"users": int(len(users)), **info}, **extra,
        item_ratings=np.bincount(np.r_[kept["item"].to_numpy(np.int64), scored["item"].to_numpy(np.int64)],
                                 minlength=n_items),
    )
    task.info["targets"] = int(task.relevant.nnz)
    return task


def _users_with_targets_and_input(kept: pd.DataFrame, scored: pd.DataFrame) -> np.ndarray:
    liked = kept[kept["opinion"].to_numpy() > 0]["user_id"].unique()
    return np.intersect1d(scored[scored["opinion"].to_numpy() > 0]["user_id"].unique(), liked)


def holdout_task(opinions: pd.DataFrame, n_items: int, ks=(5, 10, 20), fraction: float = 0.2,
                 min_promoted: int = 2, seed: int = 42, candidates: np.ndarray | None = None) -> Task:
    """The leakage-free protocol on opinions (columns user_id, item, opinion; passives kept);
    ``candidates``: the items that may be recommended (None: all)."""
    ops, protected = _sorted_opinions(opinions)
    held = holdout_mask(ops["user_id"].to_numpy(), ops["opinion"].to_numpy(), fraction, min_promoted, seed, protected)
    kept, out = ops[~held], ops[held]
    users = np.unique(out[out["opinion"].to_numpy() > 0]["user_id"].to_numpy())
    info = {"held_out_ratings": int(held.sum()), "protected_ratings": int(protected.sum()) if protected is not None else 0,
            "fit_ratings": int(len(kept)), "fraction": fraction, "min_promoted": int(min_promoted)}
    return _task("holdout", ks, users, kept, out, n_items, info, candidates=candidates)


def coldstart_task(opinions: pd.DataFrame, n_items: int, cold_items: np.ndarray, ks=(5, 10, 20)) -> Task:
    """The cold-start view (see the module docstring): only cold anime are recommended and scored."""
    cold_items = np.unique(np.asarray(cold_items, np.int64))
    is_cold = np.isin(opinions["item"].to_numpy(), cold_items)
    warm, cold = opinions[~is_cold], opinions[is_cold]
    users = _users_with_targets_and_input(warm, cold)
    info = {"cold_anime": int(len(cold_items)), "cold_ratings_removed": int(len(cold)), "fit_ratings": int(len(warm))}
    # fit on warm rows only: not one rating of a cold anime
    return _task("coldstart", ks, users, warm, cold, n_items, info, candidates=cold_items)


def mixed_task(opinions: pd.DataFrame, n_items: int, cold_items: np.ndarray, ks=(5, 10, 20), fraction: float = 0.2,
               min_promoted: int = 2, seed: int = 42, candidates: np.ndarray | None = None) -> Task:
    """New and known anime together (see the module docstring): the cold anime have no fitting
    ratings, every anime in ``candidates`` (None: every anime) may be recommended, targets =
    held-out warm promoters + promoted cold anime."""
    cold_items = np.unique(np.asarray(cold_items, np.int64))
    ops, protected = _sorted_opinions(opinions)
    is_cold = np.isin(ops["item"].to_numpy(), cold_items)
    warm = ops[~is_cold]
    warm_protected = protected[~is_cold] if protected is not None else None
    held = holdout_mask(warm["user_id"].to_numpy(), warm["opinion"].to_numpy(), fraction, min_promoted, seed, warm_protected)
    kept = warm[~held]
    out = pd.concat([warm[held], ops[is_cold]], ignore_index=True)  # what is scored: held-out + every cold rating
    users = _users_with_targets_and_input(kept, out)
    info = {"cold_anime": int(len(cold_items)), "fit_ratings": int(len(kept)), "fraction": fraction,
            "min_promoted": int(min_promoted)}
    # fit on kept rows: no rating of a cold anime, no held-out rating
    task = _task("mixed", ks, users, kept, out, n_items, info, new_items=cold_items, candidates=candidates)
    n_new = int(np.isin(task.relevant.indices, cold_items).sum())
    task.info.update(targets_new=n_new, targets_known=task.info["targets"] - n_new)
    return task


def cold_anime_of(cfg, catalog_ids: np.ndarray, opinions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The cold anime of an evaluation config (its list, or drawn from the opinions): MAL_IDs and
    their catalog rows."""
    if cfg.cold_anime:
        cold_ids = read_anime_ids(cfg.cold_anime)
    else:
        cold_ids = cold_anime_ids(opinions, catalog_ids, cfg.cold_fraction, cfg.seed)
    cold_items = rows_of_ids(catalog_ids, cold_ids)
    cold_items = cold_items[cold_items >= 0]
    if len(cold_items) == 0:
        raise AnirecError(f"{cfg.cold_anime or 'cold anime'}: none of the cold anime is in the catalog.")
    return cold_ids, cold_items


def build_tasks(cfg, protocols: list[str], catalog_ids: np.ndarray, split: pd.DataFrame | None,
                opinions: pd.DataFrame | None, meta: dict, released: np.ndarray | None = None) -> tuple[list[Task], np.ndarray | None]:
    """The protocols' tasks (and the cold anime ids when there is a cold-start or mixed view);
    what meta.json should say about the cold anime goes into ``meta``. ``released``: the
    holdout's and mixed protocol's candidates (see the module docstring; None: every anime)."""
    n_items = len(catalog_ids)
    tasks, cold_ids = [], None
    if "reference" in protocols:
        tasks.append(reference_task(split, n_items, cfg.k))
    if "holdout" in protocols:
        tasks.append(holdout_task(opinions, n_items, cfg.ks, cfg.holdout_fraction, cfg.min_promoted, cfg.seed, released))
    if "coldstart" in protocols or "mixed" in protocols:
        cold_ids, cold_items = cold_anime_of(cfg, catalog_ids, opinions)
        if "coldstart" in protocols:
            tasks.append(coldstart_task(opinions, n_items, cold_items, cfg.ks))
        if "mixed" in protocols:
            tasks.append(mixed_task(opinions, n_items, cold_items, cfg.ks, cfg.holdout_fraction, cfg.min_promoted, cfg.seed,
                                    released))
        meta["cold_anime"] = {
            "count": int(len(cold_ids)), "in_catalog": int(len(cold_items)), "hash": hash_strings(cold_ids),
            "file": cfg.cold_anime, "fraction": None if cfg.cold_anime else cfg.cold_fraction,
            "pairs_with_cold_anime": check_pairs_exclude(cfg.pairs, cold_ids),
        }
    for task in tasks:
        if len(task.users) == 0:
            raise AnirecError(f"{task.protocol} protocol: no user qualifies ({json.dumps(task.info)}). "
                              "Pass more ratings or lower min_promoted.")
    return tasks, cold_ids
