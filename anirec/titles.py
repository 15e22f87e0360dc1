"""Title matching: what a user typed -> a catalog row, and the rows of the same franchise.

* :class:`TitleIndex` matches Name and English name: exact, then case-insensitive, then fuzzy
  (rapidfuzz WRatio >= ``FUZZY_MIN``). Where one title fits several anime, the most popular
  (Members) wins. An unknown title raises AnirecError listing the closest titles.
* :func:`franchise_rows`: anime whose title starts with a query's base title (sequels,
  movies, spin-offs), for ``--exclude-franchise``.

Matching is the query's edge, apart from any recommender: every method is asked about rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from .errors import AnirecError

FUZZY_MIN = 86  # rapidfuzz WRatio (0-100) a fuzzy title match must reach
UNKNOWN = {"", "unknown", "nan", "none"}

# Where a franchise's base title ends: "Title: Subtitle", "Title (TV)", "Title Season 2", "Title 2nd Season"...
_FRANCHISE_END = re.compile(
    r"\s*(?::|\(|\s-\s|\bseason\b|\bthe movie\b|\bmovie\b|\bpart\b|\bfinal\b|\bova\b|\bspecials?\b"
    r"|\b\d+(?:st|nd|rd|th)\b|\s\d+\s*$|\s[ivx]+\s*$)",
    re.IGNORECASE,
)


def _fold(title: str) -> str:
    return " ".join(str(title).casefold().split())


def franchise_stem(title: str) -> str:
    """The base title a sequel/spin-off shares: 'Shingeki no Kyojin Season 3' -> 'shingeki no kyojin'."""
    folded = _fold(title)
    m = _FRANCHISE_END.search(folded)
    return (folded[: m.start()] if m and m.start() > 0 else folded).strip(" :-")


def franchise_rows(catalog: pd.DataFrame, rows: Iterable[int]) -> np.ndarray:
    """Catalog rows whose Name or English name starts with the base title of any of ``rows``."""
    stems = set()
    for r in rows:
        for col in ("Name", "English name"):
            stem = franchise_stem(catalog[col].iat[r])
            if len(stem) >= 3 and stem not in UNKNOWN:
                stems.add(stem)
    if not stems:
        return np.empty(0, np.int64)
    hit = np.zeros(len(catalog), bool)
    for col in ("Name", "English name"):
        folded = catalog[col].astype(str).str.casefold()
        hit |= folded.str.startswith(tuple(sorted(stems))).to_numpy()
    return np.flatnonzero(hit)


@dataclass
class TitleMatch:
    query: str
    row: int
    title: str  # the catalog title it matched (Name or English name)
    how: str  # 'exact' | 'case' | 'fuzzy' | 'id'
    score: float = 100.0


class TitleIndex:
    """Name / English name lookup. Where one title fits several anime, the most popular wins."""

    def __init__(self, catalog: pd.DataFrame):
        n = len(catalog)
        members = pd.to_numeric(catalog.get("Members", pd.Series(np.zeros(n))), errors="coerce").fillna(0).to_numpy()
        order = np.argsort(-members, kind="stable")  # popular first: first hit wins ties
        names = catalog["Name"].astype(str).to_numpy()
        english = catalog["English name"].astype(str).to_numpy()
        self.exact: dict[str, int] = {}
        self.folded: dict[str, tuple[int, str]] = {}
        self.choices: list[str] = []
        self.choice_rows: list[int] = []
        self.choice_titles: list[str] = []
        for row in order:
            for title in (names[row], english[row]):
                if title.strip().casefold() in UNKNOWN:
                    continue
                self.exact.setdefault(title, int(row))
                key = _fold(title)
                if key not in self.folded:
                    self.folded[key] = (int(row), title)
                    self.choices.append(key)
                    self.choice_rows.append(int(row))
                    self.choice_titles.append(title)

    def closest(self, query: str, n: int = 5) -> list[tuple[str, int, float]]:
        """The ``n`` best fuzzy candidates as (title, row, score), one per anime."""
        from rapidfuzz import fuzz, process

        out, seen = [], set()
        for _, score, i in process.extract(_fold(query), self.choices, scorer=fuzz.WRatio, processor=None, limit=4 * n):
            row = self.choice_rows[i]
            if row not in seen:
                seen.add(row)
                out.append((self.choice_titles[i], row, float(score)))
            if len(out) == n:
                break
        return out

    def match(self, query: str) -> TitleMatch:
        if query in self.exact:
            return TitleMatch(query, self.exact[query], query, "exact")
        key = _fold(query)
        if key in self.folded:
            row, title = self.folded[key]
            return TitleMatch(query, row, title, "case")
        best = self.closest(query, n=5)
        if best and best[0][2] >= FUZZY_MIN:
            title, row, score = best[0]
            return TitleMatch(query, row, title, "fuzzy", score)
        near = "; ".join(f"'{t}'" for t, _, _ in best) or "none"
        raise AnirecError(f"title '{query}' is not in the catalog. Closest: {near}. Pass one of them (quoted) or --id MAL_ID.")
