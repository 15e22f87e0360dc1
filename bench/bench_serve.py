"""Benchmark for issue 18 (not a test): `anirec serve` under a bounded load, and the CLI's start-up.

1. Fit the method on the 2016 ratings (or serve a given folder; or, with --full-size, on
   generated data with the full Kaggle catalog's size: 17,562 anime, of which 8,000 rated).
2. Start `anirec serve` on loopback in its own process: seconds from the command to the first
   answered GET /health (imports, loading and checking the folder, building franchises and
   the title index included).
3. A bounded load: N mixed requests at concurrency C from C threads with keep-alive
   connections (POST /recommend with 1-5 liked MAL_IDs, a third of them with filters and,
   when the method reads text, one in ten with a free-text query; GET /anime?q= title
   prefixes; GET /anime/{id}/similar; GET /anime/{id}). Per kind: p50 / p95 / p99 latency
   as the client sees it; errors (anything but a 2xx, or no answer); the server's RSS after
   a warm-up of 200 requests and at the end.
4. `anirec recommend --recommender DIR --likes TITLE --json` as a whole process (median of 5),
   and the heaviest imports of that process (`python -X importtime`).

The client runs on the same machine (2 shared cores here): its threads compete with the
server, so the latencies are an upper bound of what a remote client would see.

    python bench/bench_serve.py --catalog-data ../shared/data/mal --ratings ../shared/data/mal-2016 \\
        --out eval/bench_serve.txt
    python bench/bench_serve.py --full-size --out eval/bench_serve_full.txt
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchlog import save, say  # noqa: E402  (first: sets the offline environment)

GENERATED_WORDS = ["sword", "school", "magic", "robot", "love", "detective", "space", "demon", "idol", "sports", "war",
                   "cooking", "music", "ghost", "time", "island", "dragon", "city", "train", "summer"]
GENERATED_QUERIES = ["magic school", "space robot war", "detective ghost city", "summer island love"]
QUERIES = ["dark psychological thriller", "time travel romance", "sports team high school", "space opera war",
           "cozy slice of life with cats", "magic school", "detective mystery", "cooking competition"]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path) -> tuple[subprocess.Popen, int, float]:
    port = _free_port()
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "anirec", "serve", "--recommender", str(folder), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"anirec serve exited {proc.returncode}:\n{proc.stdout.read()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc, port, time.perf_counter() - t
        except OSError:
            time.sleep(0.05)


def make_requests(n: int, ids: np.ndarray, names: list[str], popular: np.ndarray, genres: list[str],
                  text: bool, seed: int = 0, queries: list[str] = QUERIES) -> list[tuple[str, str, str, bytes | None]]:
    """(kind, method, path, body) for n requests of the mix in the module doc."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        u = rng.random()
        if u < 0.6:
            likes = [int(x) for x in rng.choice(popular, size=int(rng.integers(1, 6)), replace=False)]
            body: dict = {"likes": likes, "k": 10}
            if rng.random() < 1 / 3:
                body["filters"] = {"year_min": int(rng.integers(2006, 2016)), "genres": [str(rng.choice(genres))],
                                   "min_score": 6.5}
            kind = "recommend"
            if text and rng.random() < 0.1:
                body["query"] = str(rng.choice(queries))
                kind = "recommend+query"
            out.append((kind, "POST", "/recommend", json.dumps(body).encode()))
        elif u < 0.8:
            name = names[int(rng.integers(len(names)))]
            q = name[: int(rng.integers(3, 8))]
            out.append(("search", "GET", "/anime?" + _qs(q=q, limit=8), None))
        elif u < 0.9:
            out.append(("similar", "GET", f"/anime/{int(rng.choice(popular))}/similar?k=10", None))
        else:
            out.append(("anime", "GET", f"/anime/{int(rng.choice(ids))}", None))
    return out


def _qs(**kw) -> str:
    from urllib.parse import urlencode

    return urlencode(kw)


def run_load(port: int, requests: list, concurrency: int) -> tuple[dict[str, list[float]], list[str], float]:
    work: queue.Queue = queue.Queue()
    for i, r in enumerate(requests):
        work.put((i, r))
    latencies: dict[str, list[float]] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            try:
                _, (kind, method, path, body) = work.get_nowait()
            except queue.Empty:
                return
            headers = {"Content-Type": "application/json"} if body else {}
            t = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                ok = 200 <= resp.status < 300
            except (OSError, http.client.HTTPException) as exc:
                ok, payload = False, str(exc).encode()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            dt = time.perf_counter() - t
            with lock:
                latencies.setdefault(kind, []).append(dt)
                if not ok:
                    errors.append(f"{method} {path}: {payload[:200]!r}")

    t = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return latencies, errors, time.perf_counter() - t


def report_latencies(latencies: dict[str, list[float]]) -> None:
    say(f"  {'request':<16} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind in sorted(latencies):
        ms = np.asarray(latencies[kind]) * 1000
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        say(f"  {kind:<16} {len(ms):>6} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f} {ms.max():>8.1f}")


def bench_server(folder: Path, n: int, concurrencies: list[int], queries: list[str] = QUERIES) -> None:
    from anirec.fitted import load_fitted
    from anirec.service import Service

    fitted = load_fitted(folder)
    service = Service(fitted)
    members = service.members
    popular = fitted.ids[np.argsort(-members, kind="stable")[: max(50, len(members) // 10)]]
    names = fitted.catalog["Name"].astype(str).tolist()
    genres = service.view.fields.all_genres()
    text = fitted.recommender.uses_text
    ids = fitted.ids
    del service, fitted
    proc, port, startup = start_server(folder)
    say(f"server start-up (command -> first /health): {startup:.2f} s")
    try:
        run_load(port, make_requests(200, ids, names, popular, genres, text, 1, queries), max(concurrencies))
        rss0 = _rss_mib(proc.pid)
        for i, concurrency in enumerate(concurrencies):
            reqs = make_requests(n, ids, names, popular, genres, text, 2 + i, queries)
            latencies, errors, wall = run_load(port, reqs, concurrency)
            say(f"load: {n:,} mixed requests at concurrency {concurrency} in {wall:.1f} s "
                f"({n / wall:.0f} requests/s), {len(errors)} errors")
            for e in errors[:5]:
                say(f"  error: {e}")
            report_latencies(latencies)
        rss1 = _rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    say(f"server RSS after 200 warm-up requests {rss0:.0f} MiB, after the runs {rss1:.0f} MiB "
        f"({100 * (rss1 - rss0) / rss0:+.1f}%)")


def bench_cli(folder: Path, title: str) -> None:
    cmd = [sys.executable, "-m", "anirec", "recommend", "--recommender", str(folder), "--likes", title, "--json"]
    walls = []
    for _ in range(5):
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        if out.returncode != 0:
            raise SystemExit(f"recommend failed: {out.stderr}")
    done = [line for line in out.stderr.splitlines() if line.startswith("done in")]
    say(f"`anirec recommend --recommender DIR --likes {title!r} --json` as a process: median {np.median(walls):.2f} s "
        f"(min {min(walls):.2f}, max {max(walls):.2f}; of the last run, inside the command after its imports: "
        f"{done[-1][8:] if done else '?'}); {len(json.loads(out.stdout)['items'])} items")
    imp = subprocess.run([sys.executable, "-X", "importtime", "-c", "import anirec.cli"], capture_output=True, text=True)
    rows = []
    for line in imp.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    top = [r for r in rows if not r[1].startswith("    ")]  # top-level packages only
    total = max(r[0] for r in rows) if rows else 0
    say(f"  `import anirec.cli`: {total / 1e6:.2f} s cumulative; heaviest top-level imports:")
    for us, name in sorted(top, reverse=True)[:8]:
        say(f"    {us / 1e6:6.2f} s  {name.strip()}")


def fit_folder(method: str, ratings: list[str], catalog: Path, out: Path, params: list[str]) -> float:
    cmd = [sys.executable, "-m", "anirec", "fit", "--method", method, "--catalog", str(catalog), "--out", str(out),
           "--no-progress", *sum((["--ratings", r] for r in ratings), []), *sum((["--param", p] for p in params), [])]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"fit failed: {done.stdout}{done.stderr}")
    for line in done.stdout.splitlines():
        say("  " + line)
    return time.perf_counter() - t


def generated_data(folder: Path, n_items: int, n_users: int, promoted_items: int, seed: int = 0) -> tuple[Path, Path]:
    """A catalog of ``n_items`` made-up anime and ratings where only the ``promoted_items`` most
    popular get ratings (the rest are new: the hybrid maps them from their text)."""
    import pandas as pd

    from anirec.build import build_catalog

    rng = np.random.default_rng(seed)
    words = np.array(GENERATED_WORDS)
    genres = ["Action", "Comedy", "Drama", "Fantasy", "Romance", "Sci-Fi", "Mystery", "Sports", "Horror", "Slice of Life"]
    ids = np.arange(1, n_items + 1)
    anime = pd.DataFrame({
        "MAL_ID": ids, "Name": [f"Generated {' '.join(rng.choice(words, 2))} {i}" for i in ids],
        "Score": np.round(rng.uniform(5, 9, n_items), 2).astype(str), "English name": "Unknown",
        "Genres": [", ".join(rng.choice(genres, 2, replace=False)) for _ in ids], "Type": "TV",
        "Premiered": [f"{rng.choice(['Winter', 'Spring', 'Summer', 'Fall'])} {rng.integers(1990, 2024)}" for _ in ids],
        "Producers": "Unknown", "Studios": "Unknown", "Source": "Original", "Rating": "PG-13 - Teens 13 or older",
        "Members": rng.integers(100, 1_000_000, n_items).astype(str)})
    synopsis = pd.DataFrame({"MAL_ID": ids, "sypnopsis": [" ".join(rng.choice(words, 40)) for _ in ids]})
    data = folder / "data"
    data.mkdir(parents=True)
    anime.to_csv(data / "anime.csv", index=False)
    synopsis.to_csv(data / "anime_with_synopsis.csv", index=False)
    per_user = np.maximum(1, rng.geometric(1 / 70, n_users))
    popularity = 1.0 / np.arange(1, promoted_items + 1) ** 0.9
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.choice(promoted_items, len(users), p=popularity / popularity.sum()) + 1
    ratings = rng.choice([10, 9, 8, 7, 5, 3], len(users), p=[0.2, 0.2, 0.2, 0.2, 0.1, 0.1])
    pd.DataFrame({"user_id": users, "anime_id": items, "rating": ratings}).to_parquet(data / "ratings.parquet")
    build_catalog(data, folder / "catalog.parquet")
    return folder / "catalog.parquet", data / "ratings.parquet"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recommender", type=Path, help="serve this folder instead of fitting one")
    ap.add_argument("--catalog-data", default="../shared/data/mal")
    ap.add_argument("--ratings", action="append", help="ratings to fit on (default ../shared/data/mal-2016)")
    ap.add_argument("--method", default="hybrid")
    ap.add_argument("--param", action="append", default=[])
    ap.add_argument("--full-size", action="store_true", help="generated data: 17,562 anime")
    ap.add_argument("--promoted-items", type=int, default=8_000,
                    help="--full-size: anime with ratings (EASE's fit needs items^2 x 20 bytes: 1.3 GB at 8,000)")
    ap.add_argument("--users", type=int, default=60_000,
                    help="--full-size: users (serving cost depends on the anime, not on how many users were fitted)")
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, action="append", help="repeatable (default: 1, then 16)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep", type=Path, help="copy the fitted folder here (to serve it again)")
    args = ap.parse_args()

    say(f"# bench_serve  {time.strftime('%Y-%m-%d %H:%M')}  python {platform.python_version()}  "
        f"{os.cpu_count()} CPUs  {platform.machine()}  load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp = Path(tmp)
        folder = args.recommender
        title, queries = "Steins;Gate", QUERIES
        if folder is None and args.full_size:
            t = time.perf_counter()
            catalog, ratings = generated_data(tmp, 17_562, args.users, args.promoted_items)
            say(f"generated 17,562 anime and {args.users:,} users' ratings ({args.promoted_items:,} anime rated) "
                f"in {time.perf_counter() - t:.0f} s")
            folder = tmp / "fitted"
            say(f"fit {args.method} ({fit_folder(args.method, [str(ratings)], catalog, folder, args.param):.0f} s):")
            title, queries = "Generated", GENERATED_QUERIES
        elif folder is None:
            from anirec.build import build_catalog

            catalog = tmp / "catalog.parquet"
            build_catalog(args.catalog_data, catalog)
            folder = tmp / "fitted"
            ratings = args.ratings or ["../shared/data/mal-2016"]
            say(f"fit {args.method} on {', '.join(ratings)} "
                f"({fit_folder(args.method, ratings, catalog, folder, args.param):.0f} s):")
        if args.keep:
            shutil.copytree(folder, args.keep, dirs_exist_ok=True)
        bench_server(folder, args.requests, args.concurrency or [1, 16], queries)
        if title != "Generated":
            bench_cli(folder, title)
    if args.out:
        save(args.out)


if __name__ == "__main__":
    main()
