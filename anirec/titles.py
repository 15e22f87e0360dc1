"""Title matching: what a user typed -> a catalog row.

:class:`TitleIndex` matches Name and English name: exact, then case-insensitive, then fuzzy.
Where one title fits several anime, the most popular (Members) wins. A fuzzy match is taken
only when the whole typed text is close to a whole title (rapidfuzz ``ratio`` over
lowercased alphanumerics >= ``FUZZY_MIN``: a typo, a missing "!!"), never because a title
merely contains it: "time travel" is not "Time Travel Shoujo" (WRatio 90, ratio 76). Anything
weaker raises AnirecError listing the closest titles (ranked by WRatio) and how close each is.
Franchises (sequels, films, spin-offs) are :mod:`anirec.franchises`.

Matching is the query's edge, apart from any recommender: every method is asked about rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import AnirecError

FUZZY_MIN = 86  # rapidfuzz ratio (0-100) of the whole texts a fuzzy title match must reach
UNKNOWN = {"", "unknown", "nan", "none"}

def fold(title: str) -> str:
    """A title as it is compared everywhere (titles, search, franchises): casefolded, runs of
    whitespace one space."""
    return " ".join(str(title).casefold().split())


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
                key = fold(title)
                if key not in self.folded:
                    self.folded[key] = (int(row), title)
                    self.choices.append(key)
                    self.choice_rows.append(int(row))
                    self.choice_titles.append(title)

    def closest(self, query: str, n: int = 5) -> list[tuple[str, int, float]]:
        """The ``n`` best fuzzy candidates as (title, row, score), one per anime."""
        from rapidfuzz import fuzz, process

        out, seen = [], set()
        for _, score, i in process.extract(fold(query), self.choices, scorer=fuzz.WRatio, processor=None, limit=4 * n):
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
        key = fold(query)
        if key in self.folded:
            row, title = self.folded[key]
            return TitleMatch(query, row, title, "case")
        best = self.closest(query, n=5)
        if best:
            title, row, _ = best[0]
            closeness = _whole_text_ratio(query, title)
            if closeness >= FUZZY_MIN:
                return TitleMatch(query, row, title, "fuzzy", closeness)
        near = "; ".join(f"'{t}' ({_whole_text_ratio(query, t):.0f}/100)" for t, _, _ in best) or "none"
        raise AnirecError(f"title '{query}' is not in the catalog (no title is close enough to take it for). "
                          f"Closest: {near}. Pass one of them (quoted) or --id MAL_ID; to describe what to watch "
                          "instead, use --query.")


def _whole_text_ratio(query: str, title: str) -> float:
    from rapidfuzz import fuzz, utils

    return float(fuzz.ratio(query, title, processor=utils.default_process))
