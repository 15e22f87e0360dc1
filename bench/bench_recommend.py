"""Benchmark for issue 5 (not a test): recommendation latency and encoder throughput.

1. Generated L2-normalised embeddings at the full catalog size (17,562 x 768), served by the
   text method through the one serving path (what plain `anirec recommend` answers with):
   p50/p99 latency of a single-title query (``similar_items``, then through
   ``serving.answer`` by MAL_ID and by title), a new user's two liked titles (``recommend``
   over the neighbour table, built once), and one recommend() call for 10,000 generated users.
2. Real offline models (MiniLM, mpnet): encode throughput in descriptions/s at
   max_seq_length 256 and 384 on a sample of shared-data descriptions.

    python bench/bench_recommend.py --data ../shared/data/mal --out eval/bench_recommend.txt
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchlog import save, say  # noqa: E402  (first: sets the offline environment)

from anirec.interactions import opinions_on_catalog, user_items  # noqa: E402
from anirec.recommenders import make  # noqa: E402
from anirec.serving import Query, Served, answer  # noqa: E402

N_ITEMS, DIMS = 17_562, 768


def synthetic_catalog(n: int, rng) -> pd.DataFrame:
    ids = np.sort(rng.choice(60_000, n, replace=False)).astype(np.int64) + 1
    return pd.DataFrame({
        "MAL_ID": ids, "Name": [f"Anime {i}" for i in ids], "English name": "Unknown", "Type": "TV",
        "Genres": "Action", "Premiered": "Spring 2010", "description": "-",
        "Score": np.round(rng.uniform(5, 9, n), 2).astype(str), "Members": rng.integers(1, 10**6, n).astype(str),
    })


def synthetic_ratings(n_users: int, per_user: int, n_items: int, ids: np.ndarray, rng) -> pd.DataFrame:
    """Popularity-skewed (Zipf-like) items, ~30% of ratings 9-10 like the MAL data; no Python loop."""
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.8
    picks = rng.choice(n_items, size=(n_users, per_user), p=weights / weights.sum())
    user = np.repeat(np.arange(n_users, dtype=np.int32), per_user)
    rating = rng.choice(np.arange(1, 11), size=user.size, p=[.01, .01, .02, .03, .06, .1, .2, .27, .18, .12])
    df = pd.DataFrame({"user_id": user, "anime_id": ids[picks.ravel()].astype(np.int32), "rating": rating.astype(np.int8)})
    return df.drop_duplicates(["user_id", "anime_id"])


def _latency(label: str, call, queries) -> None:
    call(queries[0])  # warm-up (title index build, BLAS threads)
    times = []
    for r in queries:
        t = time.perf_counter()
        call(r)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    say(f"{label:<62} p50 {np.percentile(ms, 50):6.2f} ms  p99 {np.percentile(ms, 99):6.2f} ms  ({len(queries)} queries)")


def bench_numpy(n_queries: int, n_users: int, per_user: int, n_neighbors: int) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((N_ITEMS, DIMS), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    catalog = synthetic_catalog(N_ITEMS, rng)
    text = make("text", {"n_neighbors": n_neighbors}).restore({"rows": vectors}, catalog)
    served = Served(catalog, text)
    say(f"## the text method on generated embeddings: {N_ITEMS:,} x {DIMS} float32, normalised, "
        f"{n_neighbors} neighbours")

    queries = rng.choice(N_ITEMS, n_queries)
    _latency("single-title query, core: similar_items([row], k=10)", lambda r: text.similar_items([r], 10), queries)
    _latency("single-title query, answer(Query(mal_ids=(ID,))) -> DataFrame",
             lambda r: answer(served, Query(mal_ids=(int(served.ids[r]),))), queries)
    _latency("single-title query, answer(Query(titles=('title',))) -> DataFrame",
             lambda r: answer(served, Query(titles=(catalog["Name"].iat[r],))), queries)
    t = time.perf_counter()
    text.neighbor_table()
    say(f"neighbour table of the catalog (once; saved by `anirec fit`)  {time.perf_counter() - t:6.1f} s")
    pairs = rng.choice(N_ITEMS, (n_queries, 2))
    _latency("two liked titles, answer(Query(mal_ids=(A, B))) -> DataFrame",
             lambda p: answer(served, Query(mal_ids=tuple(int(i) for i in served.ids[p]))), pairs)

    ratings = synthetic_ratings(n_users, per_user, N_ITEMS, served.ids, rng)
    ops, _ = opinions_on_catalog(ratings, served.ids)
    ui = user_items(ops, N_ITEMS)
    say(f"user recommendations: {n_users:,} users, {len(ratings):,} ratings ({ui.liked.nnz:,} promoted), k=10")
    t = time.perf_counter()
    recs, _ = text.recommend(ui.liked, 10, exclude=ui.rated)
    total = time.perf_counter() - t
    say(f"recommend() for {n_users:,} users {total:.1f} s ({total / n_users * 1e3:.2f} ms/user); "
        f"{int((recs[:, 0] >= 0).sum()):,} users got recommendations")


def bench_encode(data: Path, models_dir: Path, n_minilm: int, n_mpnet: int, repeats: int) -> None:
    from anirec.build import build_catalog
    from anirec.embeddings import encode_texts
    from anirec.models import load_model

    catalog = build_catalog(data).catalog
    sample = catalog["description"].sample(n=max(n_minilm, n_mpnet), random_state=0).tolist()
    say(f"\n## encode throughput on shared-data descriptions ({data}), batch 32, CPU torch threads {_torch_threads()}, "
        f"best of {repeats} runs (the machine is shared)")
    for name, n in [("all-MiniLM-L6-v2", n_minilm), ("all-mpnet-base-v2", n_mpnet)]:
        path = models_dir / name
        if not path.exists():
            say(f"{name}: not installed at {path}, skipped")
            continue
        for msl in (256, 384):
            model = load_model(str(path), max_seq_length=msl)
            texts = sample[:n]
            tok = model.tokenizer(texts, truncation=False, verbose=False)["input_ids"]
            truncated = np.mean([len(t) > msl for t in tok])
            encode_texts(model, texts[:8], show_progress=False)  # warm-up
            runs = []
            for _ in range(repeats):
                t = time.perf_counter()
                encode_texts(model, texts, batch_size=32, show_progress=False)
                runs.append(time.perf_counter() - t)
            dt = min(runs)
            say(f"{name:<18} max_seq_length {msl}: {n / dt:7.1f} descriptions/s  ({n} in {dt:.1f} s, best of "
                f"{', '.join(f'{r:.1f}' for r in runs)} s; {truncated:.0%} of them longer than {msl} tokens)")


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "mal")
    ap.add_argument("--models", type=Path, default=Path(os.environ.get("ANIREC_MODELS", "~/.cache/anirec/models")).expanduser())
    ap.add_argument("--out", type=Path, default=Path("eval/bench_recommend.txt"))
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--ratings-per-user", type=int, default=100)
    ap.add_argument("--neighbors", type=int, default=20, help="the text method's n_neighbors (its default: 20)")
    ap.add_argument("--minilm-n", type=int, default=200)
    ap.add_argument("--mpnet-n", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=2, help="encode runs per model/length; the best is reported")
    ap.add_argument("--skip-models", action="store_true", help="only the numpy benchmarks")
    args = ap.parse_args()

    say(f"# bench_recommend  {time.strftime('%Y-%m-%d %H:%M')}  python {platform.python_version()}  "
        f"numpy {np.__version__}  {os.cpu_count()} CPUs  load average at start {os.getloadavg()[0]:.2f}")
    say(f"command: {' '.join([Path(sys.executable).name] + sys.argv)}\n")
    bench_numpy(args.queries, args.users, args.ratings_per_user, args.neighbors)
    if not args.skip_models:
        bench_encode(args.data, args.models, args.minilm_n, args.mpnet_n, args.repeats)
    say(f"\nload average at end {os.getloadavg()[0]:.2f} (the machine is shared: timings are upper bounds)")
    save(args.out)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
