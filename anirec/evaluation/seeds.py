"""One seed drives several independent random choices; each gets its own stream."""

from __future__ import annotations

import numpy as np

STREAM_HOLDOUT, STREAM_COLD, STREAM_BOOT, STREAM_VALIDATION = 1, 2, 3, 4


def seeded_rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream])
