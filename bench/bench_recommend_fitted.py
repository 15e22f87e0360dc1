"""Benchmark for issue 9 (not a test): `anirec fit` and serving from a fitted folder.

1. `anirec fit` for EASE, the hybrid (text part TF-IDF, and MiniLM unless --no-minilm) and
   the MiniLM text method (its neighbour table is saved with the folder) on the 2016 ratings, each in its own process: wall seconds and peak RSS (os.wait4's
   ru_maxrss of that child). The fit's own line says whether MiniLM vectors were cached.
2. From each folder: load once, then single-user queries one at a time through the one
   serving path (a 2016 user's ratings -> ``serving.user_query`` -> ``serving.answer``: the
   method's recommend -> the result table): p50/p95. The first query is reported apart (lazy
   tables are built then).
3. One batch call of recommend() for 10,000 users: the 2016 and 2020 users stacked (their
   ids are disjoint) and drawn with replacement up to 10,000.

    python bench/bench_recommend_fitted.py --catalog-data ../shared/data/mal \\
        --ratings ../shared/data/mal-2016 --extra-ratings ../shared/data/mal --out eval/bench_fitted.txt
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchlog import save, say  # noqa: E402  (first: sets the offline environment)

from anirec.build import build_catalog  # noqa: E402
from anirec.data import load_ratings  # noqa: E402
from anirec.fitted import load_fitted  # noqa: E402
from anirec.interactions import opinions_on_catalog, user_items  # noqa: E402
from anirec.opinions import PROMOTER_MIN  # noqa: E402
from anirec.serving import Query, Served, answer, user_query  # noqa: E402

MINILM = "all-MiniLM-L6-v2"


def timed_fit(args: list[str]) -> tuple[float, float, str]:
    """Run `anirec fit ARGS` in a child process: (wall seconds, peak RSS MiB, its output)."""
    cmd = [sys.executable, "-m", "anirec", "fit", "--no-progress", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"fit failed ({' '.join(cmd)}):\n{out}")
    return wall, usage.ru_maxrss / 1024, out  # Linux reports KiB


def bench_queries(folder: Path, per_user: list, n_users: int) -> None:
    t = time.perf_counter()
    fitted = load_fitted(folder)
    served = Served(fitted.catalog, fitted.recommender)
    say(f"  load folder            {1000 * (time.perf_counter() - t):8.1f} ms")
    t = time.perf_counter()
    uid, frame = per_user[0]
    answer(served, user_query(frame, uid, served.ids, 10))
    say(f"  first user query       {1000 * (time.perf_counter() - t):8.1f} ms (builds lazy tables)")
    ms = []
    for uid, frame in per_user[1:n_users + 1]:
        t = time.perf_counter()
        answer(served, user_query(frame, uid, served.ids, 10))
        ms.append(1000 * (time.perf_counter() - t))
    p50, p95 = np.percentile(ms, [50, 95])
    say(f"  single-user query      p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  max {max(ms):6.1f} ms  "
        f"({len(ms)} users, one at a time, ratings -> table)  {'OK' if p95 < 50 else 'OVER'} (< 50 ms)")
    t = time.perf_counter()
    answer(served, Query(titles=("Shingeki no Kyojin", "Steins;Gate"), k=10, as_user=True))
    say(f"  --likes (2 titles)     {1000 * (time.perf_counter() - t):8.1f} ms")
    t = time.perf_counter()
    answer(served, Query(titles=("Steins;Gate",), k=10))
    say(f"  one title (similar)    {1000 * (time.perf_counter() - t):8.1f} ms")
    return fitted


def bench_batch(fitted, ui, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    pick = np.r_[np.arange(len(ui.users)), rng.integers(0, len(ui.users), max(0, n - len(ui.users)))][:n]
    liked, rated = ui.liked[pick], ui.rated[pick]
    t = time.perf_counter()
    idx, _ = fitted.recommender.recommend(liked, 10, exclude=rated)
    sec = time.perf_counter() - t
    say(f"  batch recommend()      {n:,} users in {sec:6.2f} s ({1000 * sec / n:.2f} ms/user)  "
        f"{'OK' if sec < 30 else 'OVER'} (< 30 s); users with a full list: {(idx[:, -1] >= 0).mean():.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog-data", required=True, help="Kaggle folder the catalog is built from")
    ap.add_argument("--ratings", required=True, help="ratings to fit on (the 2016 set)")
    ap.add_argument("--extra-ratings", help="more users for the 10,000-user batch (the 2020 set)")
    ap.add_argument("--queries", type=int, default=300, help="single-user queries to time")
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--no-minilm", dest="minilm", action="store_false",
                    help="skip the MiniLM hybrid (its fit encodes the catalog unless the vectors are cached)")
    ap.add_argument("--out", default="eval/bench_fitted.txt")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_fitted."))
    catalog_path = work / "catalog.parquet"
    catalog = build_catalog(args.catalog_data, catalog_path).catalog
    say("# anirec fit / recommend --recommender benchmark (issue 9)")
    say(f"machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs (load average at start "
        f"{os.getloadavg()[0]:.1f}: timings are upper bounds), Python {platform.python_version()}, numpy {np.__version__}")
    say(f"catalog: built from {args.catalog_data}, {len(catalog):,} anime; fitted on --ratings {args.ratings}")
    say(f"command: python bench/bench_recommend_fitted.py {' '.join(sys.argv[1:])}")
    say()

    runs = [("ease", ["--method", "ease"]), ("hybrid-tfidf", ["--method", "hybrid", "--model", "tfidf"])]
    if args.minilm:
        runs.append(("hybrid-minilm", ["--method", "hybrid", "--model", MINILM]))
        runs.append(("text-minilm", ["--method", "text", "--model", MINILM]))

    fit_ratings = load_ratings(args.ratings)
    # users who promoted a catalog anime: the others get a one-line error, not recommendations
    on_catalog = fit_ratings[fit_ratings["anime_id"].isin(catalog["MAL_ID"]) & (fit_ratings["rating"] >= PROMOTER_MIN)]
    per_user = [(int(u), f) for u, f in fit_ratings[fit_ratings["user_id"].isin(on_catalog["user_id"])].groupby("user_id")]
    per_user = [per_user[i] for i in np.random.default_rng(1).permutation(len(per_user))]
    sets = [args.ratings] + ([args.extra_ratings] if args.extra_ratings else [])
    ops, _ = opinions_on_catalog(load_ratings(sets), catalog["MAL_ID"].to_numpy())
    ui = user_items(ops, len(catalog))
    say(f"batch users: {len(ui.users):,} users with a rating on a catalog anime in {' + '.join(sets)}, "
        f"drawn with replacement up to {args.batch:,}")
    for name, fit_args in runs:
        folder = work / name
        wall, rss, out = timed_fit([*fit_args, "--ratings", args.ratings, "--catalog", str(catalog_path), "--out", str(folder)])
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
        say()
        say(f"## {name}")
        say(f"  anirec fit             {wall:6.2f} s wall (process start, loading, fit, save), peak RSS {rss:7.1f} MiB, "
            f"folder {size:.1f} MiB")
        for line in out.strip().splitlines():
            if not line.startswith("saved"):
                say("  " + line)
        fitted = bench_queries(folder, per_user, args.queries)
        bench_batch(fitted, ui, args.batch)

    say()
    say(f"load average at end {os.getloadavg()[0]:.1f}")
    save(args.out)
    print(f"wrote {args.out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
