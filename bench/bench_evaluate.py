"""Benchmark for issue 6 (not a test): the holdout protocol at the full data's size.

Generates ratings shaped like the full Kaggle data (310k users, 17,562 anime, ~70 ratings
per user with a Zipf-like popularity skew, MAL-like rating distribution) and times every
step of `anirec evaluate`'s holdout protocol: building the task, each method's
recommendations (random, most popular, item-kNN CF, a 768-d embedder), and scoring with
bootstrap intervals. Reports wall time and this process's CPU time per step (on a shared
machine the wall time includes waiting for the cores; CPU time does not) and peak memory.

    python bench/bench_evaluate.py --out eval/bench_evaluate.txt            # full size
    python bench/bench_evaluate.py --users 30000                            # quick
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchlog import save, say  # first: sets the offline environment

from anirec import evaluation as ev  # noqa: E402
from anirec.recommenders import make  # noqa: E402


def generate(n_users: int, n_items: int, mean_ratings: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    per_user = np.maximum(1, rng.geometric(1.0 / mean_ratings, n_users))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity /= popularity.sum()
    users = np.repeat(np.arange(n_users, dtype=np.int64), per_user)
    items = rng.choice(n_items, len(users), p=popularity)
    frame = pd.DataFrame({"user_id": users, "item": items}).drop_duplicates(["user_id", "item"])
    # MAL-like: ~40% 9-10 (promoters), ~40% 7-8 (passives), ~20% 1-6 (detractors)
    frame["opinion"] = rng.choice(np.array([1, 0, -1], np.int8), len(frame), p=[0.4, 0.4, 0.2])
    frame["anime_id"] = frame["item"]
    return frame.reset_index(drop=True)


def fitted(kind: str, task, vectors: np.ndarray):
    """A registry method fitted as `anirec evaluate` fits it on the holdout task; "embedder" is
    the text method on the given (random) item vectors, restored instead of encoded."""
    if kind == "embedder":
        return make("text").restore({"rows": vectors}, None)
    return make(kind).fit(task.fit, None)


def timed(label: str, fn):
    t, cpu = time.perf_counter(), time.process_time()
    out = fn()
    say(f"{label:<34} {time.perf_counter() - t:8.1f} s   (CPU {time.process_time() - cpu:7.1f} s)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=310_000)
    ap.add_argument("--items", type=int, default=17_562)
    ap.add_argument("--mean-ratings", type=int, default=70)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    say(f"bench_evaluate: {platform.processor() or platform.machine()}, {a.users:,} users x {a.items:,} anime, "
        f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    ops = timed("generate ratings", lambda: generate(a.users, a.items, a.mean_ratings))
    say(f"{len(ops):,} ratings ({(ops['opinion'] > 0).mean():.0%} promoters)")
    task = timed("holdout task (mask, matrices)", lambda: ev.holdout_task(ops, a.items, (5, 10, 20)))
    say(f"{len(task.users):,} users evaluated, {task.relevant.nnz:,} held-out targets")
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((a.items, 768)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for kind in ("random", "popular", "itemknn", "embedder"):
        rec = timed(f"fit: {kind}", lambda: fitted(kind, task, vectors))
        recs = timed(f"recommend: {kind}", lambda: rec.recommend(task.promoted, max(task.ks), exclude=task.seen,
                                                                 candidates=task.candidates)[0])
        timed(f"score + bootstrap: {kind}", lambda: ev.score(task, recs, a.bootstrap))
    say(f"total {time.perf_counter() - t0:.1f} s, peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB, "
        f"load average at end {os.getloadavg()[0]:.1f}")
    if a.out:
        save(a.out)


if __name__ == "__main__":
    main()
