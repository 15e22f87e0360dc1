"""Benchmark `anirec pairs` on generated ratings shaped like the full MAL data (not a test).

    python bench/bench_pairs.py                      # full size: 310k users, ~57M ratings, ~1,700 popular anime
    python bench/bench_pairs.py --scale 0.05         # a quick run (users and ratings scaled, anime kept)
    python bench/bench_pairs.py --out eval/bench_pairs.txt

Full data (Kaggle 2020): 310k users, 57.6M ratings on 17.5k anime; 29.7M non-passive; the 0.90
quantile keeps 1,685 anime and 22.2M rows (20M train); per-anime train counts 3.7k-111k, median
7.7k; per-user train counts mean 65, max 1.4k. The generator draws anime by a shifted Zipf law
(weight (rank + 200)^-1.5), users by a log-normal activity, ratings from a low-rank taste model
(so that co-raters agree and disagree in structured ways), and drops repeated (user, anime) draws.

The stage runs in a child process (fresh interpreter) so its peak memory (ru_maxrss) is its own;
the child then times the reference's one-pandas-filter-per-pair scan on a few hundred pairs of the
same train table and checks that it gives the same labels.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

FULL_USERS = 310_000
FULL_RATINGS = 57_600_000
N_ANIME = 17_500


def generate(path: Path, scale: float, seed: int) -> dict:
    """Write generated ratings (user_id, anime_id, rating) to ``path`` as parquet, sorted by user."""
    rng = np.random.default_rng(seed)
    n_users, n_draws = int(FULL_USERS * scale), int(FULL_RATINGS * scale * 1.08)  # +8%: repeats are dropped
    user_ids = np.sort(rng.choice(int(n_users * 1.14), n_users, replace=False)).astype(np.int32)  # ids with gaps
    anime_ids = np.sort(rng.choice(48_500, N_ANIME, replace=False) + 1).astype(np.int32)
    popularity = (np.arange(1, N_ANIME + 1) + 200.0) ** -1.5
    per_anime = np.round(popularity / popularity.sum() * n_draws).astype(np.int64)
    activity = rng.lognormal(0.0, 0.85, n_users)
    activity_cdf = np.cumsum(activity / activity.sum())
    anime_rank = rng.permutation(N_ANIME)  # popularity is unrelated to the id

    keys = []
    bounds = np.searchsorted(np.cumsum(per_anime), np.arange(0, per_anime.sum(), 4_000_000))
    for lo, hi in zip(bounds, list(bounds[1:]) + [N_ANIME]):  # chunks of anime: dedupe inside each
        a = np.repeat(np.arange(lo, hi, dtype=np.int64), per_anime[lo:hi])
        u = np.searchsorted(activity_cdf, rng.random(len(a)), side="right").clip(0, n_users - 1)
        keys.append(np.unique(u * N_ANIME + anime_rank[a]))
    key = np.sort(np.concatenate(keys))  # sorted by user, then anime, like rating_complete.csv
    del keys
    u, a = key // N_ANIME, key % N_ANIME
    del key

    # Taste: score = anime bias + user bias + <user taste, anime profile> + noise; cut into NPS bands.
    d = 8
    taste = rng.normal(0, 1, (n_users, d)).astype(np.float32)
    profile = rng.normal(0, 0.6, (N_ANIME, d)).astype(np.float32)
    anime_bias = rng.normal(0, 0.7, N_ANIME).astype(np.float32)
    user_bias = rng.normal(0, 0.5, n_users).astype(np.float32)
    rating = np.empty(len(u), np.int8)
    cuts = None
    for s in range(0, len(u), 4_000_000):
        uu, aa = u[s : s + 4_000_000], a[s : s + 4_000_000]
        score = anime_bias[aa] + user_bias[uu] + np.einsum("ij,ij->i", taste[uu], profile[aa]) + rng.normal(0, 0.8, len(uu))
        if cuts is None:  # MAL-like shares: ~20% detractors (1-6), ~49% passives (7-8), ~31% promoters (9-10)
            cuts = np.quantile(score, [0.20, 0.445, 0.69, 0.86])
        band = np.searchsorted(cuts, score)  # 0: 1-6, 1: 7, 2: 8, 3: 9, 4: 10
        low = rng.choice(np.arange(1, 7), len(uu), p=[0.05, 0.05, 0.1, 0.15, 0.25, 0.4])
        rating[s : s + 4_000_000] = np.where(band == 0, low, band + 6)
    df = pd.DataFrame({"user_id": user_ids[u], "anime_id": anime_ids[a], "rating": rating})
    df.to_parquet(path, index=False)
    return {"users": int(df["user_id"].nunique()), "ratings": len(df), "anime": int(df["anime_id"].nunique())}


# --------------------------------------------------------------------------- child: the measured run


def reference_pair(train: pd.DataFrame, a1: int, a2: int):
    """The reference's anime_pair_scores (METHOD.md section 3): one pandas filter over train per pair."""
    a = train[train["anime_id"].isin([a1, a2])]
    a = a[a["opinion"] != 0]
    if a.shape[0] < 50:
        return None
    a = a[a.duplicated(subset=["user_id"], keep=False)].sort_values("user_id")
    per_user = a.groupby("user_id", group_keys=True)["opinion"].apply(lambda s: ",".join(map(str, sorted(s))))
    two = per_user[per_user.isin(["-1,1", "1,1"])].value_counts(normalize=True)
    if len(two) != 2:
        return None
    disagree, agree = two.sort_index().tolist()
    return agree if agree > disagree else -1 * disagree


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(ratings_path: Path, ref_pairs: int, seed: int) -> None:
    from anirec import labels
    from anirec.co_ratings import pair_counts
    from anirec.data import load_ratings
    from anirec.split import make_split, save_split, train_rows

    times = {}
    t0 = t = time.perf_counter()

    def lap(name):
        nonlocal t
        now = time.perf_counter()
        times[name] = round(now - t, 2)
        t = now

    ratings = load_ratings(ratings_path)
    lap("load ratings")
    rng = np.random.default_rng(seed)
    all_anime = np.unique(ratings["anime_id"].to_numpy())
    catalog_ids = np.sort(rng.choice(all_anime, int(len(all_anime) * 0.92), replace=False))  # 8% lack a description
    split = make_split(ratings)
    lap("opinions + filter + split + fingerprint")
    train = train_rows(split)
    counts = pair_counts(train)
    lap("pair counts (sparse products)")
    result = labels.label_pairs(counts, catalog_ids)
    lap("labels (all pairs)")
    with tempfile.TemporaryDirectory() as tmp:
        save_split(split.frame, Path(tmp) / "pairs.split.parquet", split.meta)
        result.pairs.to_parquet(Path(tmp) / "pairs.parquet")
    lap("write split + pairs")
    total = time.perf_counter() - t0
    peak = peak_mb()
    f = result.funnel
    n_pairs = f["all_pairs"]

    # The reference, one pair at a time, on the same train table.
    cat = np.flatnonzero(np.isin(counts.anime_ids, catalog_ids))
    pick = rng.choice(len(cat) * (len(cat) - 1) // 2, ref_pairs, replace=False)
    i, j = labels.unrank_pairs(np.sort(pick), len(cat))
    ids_a, ids_b = counts.anime_ids[cat[i]], counts.anime_ids[cat[j]]
    score = labels.agreement_scores(counts)
    eligible = (counts.support() >= 50) & (counts.both_promote > 0) & (counts.disagree > 0)
    t = time.perf_counter()
    ref = [reference_pair(train, int(a), int(b)) for a, b in zip(ids_a, ids_b)]
    ref_time = time.perf_counter() - t
    mismatches = sum(
        (r is None) != (not eligible[cat[x], cat[y]]) or (r is not None and r != score[cat[x], cat[y]])
        for r, x, y in zip(ref, i, j)
    )
    vec_time = times["pair counts (sparse products)"] + times["labels (all pairs)"]
    print(json.dumps({
        "times_s": times, "total_s": round(total, 2), "peak_rss_mb": round(peak),
        "shape": {**split.meta["counts"], "anime_in_catalog": f["anime_in_catalog"], "all_pairs": n_pairs,
                  "candidate_pairs": f["candidate_pairs"], "labelled": f["labelled"],
                  "positives": f["positives"], "negatives": f["negatives"],
                  "users_in_train": int(train["user_id"].nunique())},
        "reference": {"pairs": ref_pairs, "seconds": round(ref_time, 2), "per_pair_ms": round(1000 * ref_time / ref_pairs, 2),
                      "labelled": sum(r is not None for r in ref), "mismatches": int(mismatches)},
        "vectorised_per_pair_us": round(1e6 * vec_time / n_pairs, 3),
        "vectorised_per_pair_us_end_to_end": round(1e6 * total / n_pairs, 3),
    }))


# --------------------------------------------------------------------------- parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="users and ratings relative to the full data (anime count kept)")
    ap.add_argument("--ref-pairs", type=int, default=300, help="pairs to time with the reference's per-pair scan")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "anirec-bench-pairs")
    ap.add_argument("--out", type=Path, help="also write the report here (e.g. eval/bench_pairs.txt)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.ref_pairs, args.seed)

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / f"ratings_scale{args.scale:g}_seed{args.seed}.parquet"
    t = time.perf_counter()
    if not data.exists():
        print(f"generating {data} ...", flush=True)
        tmp = data.with_suffix(".tmp")
        generate(tmp, args.scale, args.seed)
        os.replace(tmp, data)
    gen_s = time.perf_counter() - t
    cmd = [sys.executable, __file__, "--child", str(data), "--ref-pairs", str(args.ref_pairs), "--seed", str(args.seed)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"child failed:\n{proc.stderr}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    s, ref = r["shape"], r["reference"]
    speedup = 1000 * ref["per_pair_ms"] / r["vectorised_per_pair_us"]
    lines = [
        f"command: python bench/bench_pairs.py --scale {args.scale:g} --ref-pairs {args.ref_pairs} --seed {args.seed}",
        f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}; numpy {np.__version__}; pandas {pd.__version__}",
        f"data: {s['ratings']:,} ratings -> {s['non_passive']:,} non-passive -> {s['anime_kept']:,} anime with >= "
        f"{s['min_ratings_per_anime']:g} ratings ({s['rows_kept']:,} rows) -> train {s['train']:,} rows, "
        f"{s['users_in_train']:,} users (generated in {gen_s:.0f} s, cached in {args.workdir})",
        f"pairs: {s['all_pairs']:,} pairs of popular anime; {s['candidate_pairs']:,} with both in the catalog "
        f"({s['anime_in_catalog']:,} anime); {s['labelled']:,} labelled; {s['positives']:,} positive, {s['negatives']:,} negative",
        "stage times (s): " + ", ".join(f"{k} {v}" for k, v in r["times_s"].items()),
        f"anirec pairs, end to end: {r['total_s']} s wall, peak memory {r['peak_rss_mb']:,} MB (ru_maxrss of the child "
        f"before the reference timing); child process wall incl. interpreter start and reference timing: {wall:.0f} s",
        f"all-pairs labelling (pair counts + labels): {r['vectorised_per_pair_us']} us per pair "
        f"({r['vectorised_per_pair_us_end_to_end']} us per pair end to end)",
        f"reference (one pandas filter over the {s['train']:,}-row train table per pair): {ref['pairs']} pairs in "
        f"{ref['seconds']} s = {ref['per_pair_ms']} ms per pair; {ref['labelled']} labelled; "
        f"{ref['mismatches']} label mismatches vs the vectorised result",
        f"speed-up per pair: {speedup:,.0f}x (reference per pair / all-pairs labelling per pair); "
        f"the reference would take {ref['per_pair_ms'] * s['all_pairs'] / 3.6e6:,.1f} h for all pairs",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
