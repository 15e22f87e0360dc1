"""Benchmark for issue 17 (not a test): cEASE fitted at the full data's size, and served from its folder.

Generates a catalog of 17,562 anime (descriptions drawn from 60 topics over a 6,000-word
vocabulary, genres and studios) and ratings shaped like the full Kaggle data (310k users,
~58 ratings each, a Zipf-like popularity skew, MAL-like opinions), then:

1. `anirec fit --method cease` (F = 256-d TruncatedSVD of TF-IDF, the default) in a child
   process: wall seconds, the fit's own seconds, and peak RSS (os.wait4's ru_maxrss);
2. from the folder: load once, then single-user queries one at a time (a user's ratings ->
   recommend -> result table): p50/p95;
3. one batch recommend() for 10,000 users.

Goals (issue 17): fit < 3 min and < 8 GB on 2 cores; p50 per user < 20 ms; 10,000 users < 30 s.

    python bench/bench_cease.py --out eval/bench_cease.txt            # full size
    python bench/bench_cease.py --users 20000 --items 3000             # quick
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchlog import save, say  # first: sets the offline environment

from anirec.fitted import load_fitted  # noqa: E402
from anirec.interactions import opinions_on_catalog, user_items  # noqa: E402
from anirec.serving import Query, Served, answer, user_query  # noqa: E402
from bench_recommend_fitted import timed_fit  # noqa: E402  (`anirec fit` in a child: seconds, peak RSS)


def generate_catalog(n_items: int, seed: int = 0) -> pd.DataFrame:
    """Descriptions that share words within topics (what TF-IDF and its SVD pick up)."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(6000)])
    topics = rng.integers(0, len(vocab), (60, 80))
    main = rng.integers(0, 60, (n_items, 2))
    texts = []
    for i in range(n_items):
        words = np.concatenate([rng.choice(topics[main[i, 0]], 60), rng.choice(topics[main[i, 1]], 30),
                                rng.choice(vocab, 40)])
        texts.append(f"Anime {i} is a TV Show. Synopsis: " + " ".join(words))
    genres = np.array(["Action", "Comedy", "Drama", "Romance", "Sci-Fi", "Fantasy", "Slice of Life", "Mystery"])
    return pd.DataFrame({
        "MAL_ID": np.arange(1, n_items + 1), "Name": [f"Anime {i}" for i in range(n_items)],
        "English name": "", "Type": "TV", "Genres": [", ".join(genres[main[i] % len(genres)]) for i in range(n_items)],
        "Premiered": "Spring 2010", "Score": 7.0, "Members": 1000, "Studios": [f"Studio {i % 300}" for i in range(n_items)],
        "Source": "Manga", "description": texts,
    })


def generate_ratings(n_users: int, n_items: int, mean_ratings: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    per_user = np.maximum(1, rng.geometric(1.0 / mean_ratings, n_users))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity /= popularity.sum()
    users = np.repeat(np.arange(1, n_users + 1, dtype=np.int64), per_user)
    items = rng.choice(n_items, len(users), p=popularity)
    frame = pd.DataFrame({"user_id": users, "anime_id": items + 1}).drop_duplicates(["user_id", "anime_id"])
    # MAL-like: ~40% 9-10 (promoters), ~40% 7-8 (passives), ~20% 1-6 (detractors)
    frame["rating"] = rng.choice(np.array([10, 9, 8, 7, 5], np.int8), len(frame), p=[0.2, 0.2, 0.2, 0.2, 0.2])
    return frame.reset_index(drop=True)


def bench_serving(folder: Path, ratings: pd.DataFrame, n_single: int, n_batch: int) -> None:
    t = time.perf_counter()
    fitted = load_fitted(folder)
    served = Served(fitted.catalog, fitted.recommender)
    say(f"  load folder            {time.perf_counter() - t:8.2f} s (sha256 of every file, then the arrays)")
    rng = np.random.default_rng(1)
    promoters = ratings.loc[ratings["rating"] >= 9, "user_id"].unique()  # a user with nothing liked is refused
    users = rng.choice(promoters, n_single + 1, replace=False)
    by_user = {u: g for u, g in ratings[ratings["user_id"].isin(users)].groupby("user_id")}
    ms = []
    for u in users:
        t = time.perf_counter()
        answer(served, user_query(by_user[u], int(u), served.ids, 10))
        ms.append(1000 * (time.perf_counter() - t))
    p50, p95 = np.percentile(ms[1:], [50, 95])
    t = time.perf_counter()
    answer(served, Query(titles=("Anime 1", "Anime 2"), k=10, as_user=True))
    likes_ms = 1000 * (time.perf_counter() - t)
    say(f"  single-user query      p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  (first {ms[0]:.1f} ms; {n_single} users, "
        f"one at a time, ratings -> table)  {'OK' if p50 < 20 else 'OVER'} (p50 < 20 ms)")
    say(f"  --likes (2 titles)     {likes_ms:8.1f} ms")
    ops, _ = opinions_on_catalog(ratings, fitted.ids)
    batch_users = np.sort(rng.choice(ops["user_id"].unique(), n_batch, replace=False))
    ui = user_items(ops[ops["user_id"].isin(batch_users)], len(fitted.ids), users=batch_users)
    t = time.perf_counter()
    recs, _ = fitted.recommender.recommend(ui.liked, 10, exclude=ui.rated)
    secs = time.perf_counter() - t
    say(f"  batch recommend()      {n_batch:,} users in {secs:6.2f} s ({1000 * secs / n_batch:.2f} ms/user)  "
        f"{'OK' if secs < 30 else 'OVER'} (< 30 s); users with a full list: {(recs >= 0).all(axis=1).mean():.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=310_000)
    ap.add_argument("--items", type=int, default=17_562)
    ap.add_argument("--mean-ratings", type=int, default=58)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the generated data and folder here")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    load = os.getloadavg()[0]
    say(f"# cEASE at full size (issue 17): {a.users:,} users x {a.items:,} anime")
    say(f"machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs (load average at start "
        f"{load:.1f}: timings are upper bounds), Python {platform.python_version()}, numpy {np.__version__}")
    say(f"command: python bench/bench_cease.py {' '.join(sys.argv[1:])}")
    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench-cease-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    catalog = generate_catalog(a.items)
    catalog.to_parquet(work / "catalog.parquet", index=False)
    ratings = generate_ratings(a.users, a.items, a.mean_ratings)
    ratings.to_parquet(work / "ratings.parquet", index=False)
    say(f"generated {len(ratings):,} ratings ({(ratings['rating'] >= 9).mean():.0%} promoters) and the catalog "
        f"in {time.perf_counter() - t:.0f} s")
    folder = work / "cease"
    wall, rss, out = timed_fit(["--method", "cease", "--ratings", str(work / "ratings.parquet"),
                                "--catalog", str(work / "catalog.parquet"), "--out", str(folder)])
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / (1 << 20)
    say(f"## cease (alpha, lam, F: the defaults; F = 256-d TruncatedSVD of TF-IDF)")
    say(f"  anirec fit             {wall:8.1f} s wall (process start, loading, fit, save), peak RSS "
        f"{rss / 1024:5.2f} GiB, folder {size:,.0f} MiB  {'OK' if wall < 180 and rss < 8192 else 'OVER'} (< 3 min, < 8 GB)")
    for line in out.strip().splitlines():
        say(f"  {line}")
    bench_serving(folder, ratings, 300, a.batch)
    if a.out:
        save(a.out)


if __name__ == "__main__":
    main()
