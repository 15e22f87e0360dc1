"""MAL ratings as opinions (METHOD.md section 2), and the reference's popularity cut over them.

* Opinions: 9-10 promoter (+1), 7-8 passive (0), 1-6 detractor (-1); passives are dropped
  unless asked for (the recommenders keep them: a passive rating still says "seen").
* Popularity: count the remaining (non-passive) ratings of every anime, take the q-th quantile
  of those counts (linear interpolation, as pandas' quantile in the reference; q = 0.90) and
  keep anime with count >= it. The counts include anime the catalog lacks, as in the reference.

Every reader of ratings goes through ``to_opinions`` (the pair labels' split, the recommenders'
matrices in ``anirec.interactions``, the evaluation's protocols), so a rating means the same
everywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import AnirecError

PROMOTER_MIN = 9  # MAL ratings 9-10 are promoters, 7-8 passives, 1-6 detractors (METHOD.md section 2)
PASSIVE_MIN = 7


def to_opinions(ratings: pd.DataFrame, promoter_min: int = PROMOTER_MIN, passive_min: int = PASSIVE_MIN, keep_passives: bool = False) -> pd.DataFrame:
    """Add ``opinion`` (+1 promoter, 0 passive, -1 detractor) and drop passives unless asked not to."""
    if not 1 <= passive_min <= promoter_min <= 10:
        raise AnirecError(
            f"opinion thresholds: need 1 <= passive_min ({passive_min}) <= promoter_min ({promoter_min}) <= 10."
        )
    rating = ratings["rating"].to_numpy()
    opinion = np.where(rating >= promoter_min, 1, np.where(rating >= passive_min, 0, -1)).astype(np.int8)
    keep = slice(None) if keep_passives else opinion != 0
    return pd.DataFrame(
        {
            "user_id": ratings["user_id"].to_numpy(np.int32)[keep],
            "anime_id": ratings["anime_id"].to_numpy(np.int32)[keep],
            "rating": rating.astype(np.int8)[keep],
            "opinion": opinion[keep],
        }
    )


def _counts_per_anime(anime_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct anime ids, rows per anime), without a Python loop."""
    if len(anime_id) and anime_id.min() >= 0 and anime_id.max() < 4 * len(anime_id) + 1_000_000:
        counts = np.bincount(anime_id)
        ids = np.flatnonzero(counts)
        return ids, counts[ids]
    return np.unique(anime_id, return_counts=True)


def popularity_threshold(opinions: pd.DataFrame, quantile: float | None = 0.9, min_count: int | None = None) -> float:
    """The minimum ratings per anime: the ``quantile`` of per-anime counts, raised to ``min_count``."""
    if quantile is not None and not 0.0 <= quantile <= 1.0:
        raise AnirecError(f"--quantile {quantile}: must be between 0 and 1 (the reference uses 0.9).")
    _, counts = _counts_per_anime(opinions["anime_id"].to_numpy())
    threshold = float(np.quantile(counts, quantile)) if quantile and len(counts) else 0.0
    return max(threshold, float(min_count or 0))


def filter_popular(opinions: pd.DataFrame, quantile: float | None = 0.9, min_count: int | None = None) -> pd.DataFrame:
    """Keep the rows of anime with at least the ``quantile`` of per-anime rating counts (and ``min_count``)."""
    threshold = popularity_threshold(opinions, quantile, min_count)
    ids, counts = _counts_per_anime(opinions["anime_id"].to_numpy())
    popular = ids[counts >= threshold]
    keep = opinions["anime_id"].isin(popular).to_numpy()
    return opinions[keep].reset_index(drop=True)
