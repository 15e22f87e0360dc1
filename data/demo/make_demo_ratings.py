"""Generate the SYNTHETIC demo ratings file data/demo/rating_complete.csv.

The ratings are invented: they describe no real MyAnimeList user. Each of the 40 fake users
gets one or two favourite genres; anime carrying a favourite genre are more likely to be
picked and are rated 8-10, everything else 3-7, with a little noise and a small nudge from the
anime's catalog Score. Deterministic (fixed seed, standard library only):

    python data/demo/make_demo_ratings.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240501
N_USERS = 40
MIN_RATINGS, MAX_RATINGS = 8, 25
# Genres a fake user can pick as favourites (all occur several times in the demo catalog).
TASTE_GENRES = [
    "Action", "Adventure", "Comedy", "Drama", "Romance", "Sports", "Sci-Fi", "Slice of Life",
    "Mecha", "Horror", "Mystery", "Psychological", "Supernatural", "Fantasy", "Music", "School",
]


def load_catalog() -> list[tuple[int, set[str], float]]:
    with open(HERE / "anime.csv", newline="", encoding="utf-8") as f:
        return [
            (int(row["MAL_ID"]), {g.strip() for g in row["Genres"].split(",")}, float(row["Score"]))
            for row in csv.DictReader(f)
        ]


def main() -> None:
    rng = random.Random(SEED)
    catalog = load_catalog()
    rows = []
    for user_id in range(1, N_USERS + 1):
        favourites = set(rng.sample(TASTE_GENRES, rng.choice([1, 2])))
        n = rng.randint(MIN_RATINGS, MAX_RATINGS)
        # Weighted sampling without replacement: favourite-genre anime are 4x as likely.
        pool = [(mal_id, genres, score, 4.0 if genres & favourites else 1.0) for mal_id, genres, score in catalog]
        picked = []
        for _ in range(min(n, len(pool))):
            i = rng.choices(range(len(pool)), weights=[p[3] for p in pool])[0]
            picked.append(pool.pop(i))
        for mal_id, genres, score, _ in picked:
            if genres & favourites:
                rating = rng.randint(8, 10)
            else:
                rating = rng.randint(3, 7)
            rating += round((score - 8.4) + rng.gauss(0, 0.6))  # quality nudge + noise
            rows.append((user_id, mal_id, max(1, min(10, rating))))
    with open(HERE / "rating_complete.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "anime_id", "rating"])
        w.writerows(rows)
    print(f"wrote {len(rows)} ratings by {N_USERS} users to {HERE / 'rating_complete.csv'}")


if __name__ == "__main__":
    main()
