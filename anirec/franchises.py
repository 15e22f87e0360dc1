"""Franchises: which catalog anime are seasons, sequels, films or spin-offs of one another.

The catalog has no "related anime" links, so a franchise is read from the titles. Each title
(Name and English name) gives a *stem*: the folded title cut where a sequel or side-story
marker starts (": subtitle", "(TV)", "Season 2", "2nd Season", "Second Season", "The Movie",
"OVA", "Specials", "Part 2", "Final", a trailing number or roman numeral; a leading "Zoku"
means "continued"). Two anime are one franchise when

* a stem of one equals a stem of the other ("Shingeki no Kyojin Season 3" and
  "Shingeki no Kyojin: The Final Season" both stem to "shingeki no kyojin"), or
* a title of one starts with a stem of the other at a word boundary ("Natsume Yuujinchou San"
  with "natsume yuujinchou", "Gintama'" with "gintama"), for stems of at least two words or
  :data:`MIN_PREFIX_STEM` characters, so that "Air" does not swallow "Air Gear";

and the franchise is the connected group (union-find), so the Japanese and the English title
each add links ("Zoku Natsume Yuujinchou" joins through "Natsume's Book of Friends Season 2").
A franchise's *first* entry is its earliest premiere (ties: lower catalog row); every other
entry is a sequel. Rows are the catalog's; keys are small integers, one per franchise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .anime_fields import MISSING, premiere_order
from .titles import fold

MIN_PREFIX_STEM = 6  # characters a one-word stem needs before it links titles that merely start with it
_CUT_AT = (":", "(", "[", " - ", " ~ ")  # a subtitle or a note starts here
_STEM_STRIP = " :-~.,'!?"  # punctuation a stem and a title prefix both lose at their ends
_MARKER_WORDS = frozenset({
    "season", "movie", "movies", "gekijouban", "part", "cour", "final", "ova", "ovas", "ona", "onas",
    "special", "specials", "recap", "recaps",
    "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"})
_LEADING_WORDS = frozenset({"zoku", "gekijouban"})
_ORDINAL = re.compile(r"^\d+(?:st|nd|rd|th)$")
_NUMERAL = re.compile(r"^(?:\d+|[ivx]+)$")

def title_stem(title: str, folded: bool = False) -> str:
    """The base title a sequel or spin-off shares: 'Shingeki no Kyojin Season 3' -> 'shingeki no kyojin'.

    Word by word rather than one big regex: an alternation of twenty markers tried at every
    position costs ~25 us a title, too much for a 17k-anime catalog at every start."""
    folded = title if folded else fold(title)
    words = folded.split(" ")
    if len(words) > 1 and words[0] in _LEADING_WORDS:
        words = words[1:]
    text = " ".join(words)
    cut = min([i for i in (text.find(c) for c in _CUT_AT) if i > 0], default=len(text))
    words = text[:cut].split(" ")
    for j, word in enumerate(words[1:], 1):
        core = word.strip("!?.,'\"")
        if core in _MARKER_WORDS or _ORDINAL.match(core):
            words = words[:j]
            break
    if len(words) > 1 and _NUMERAL.match(words[-1]):
        words = words[:-1]
    if len(words) > 1 and words[-1] == "the":  # "X the Movie"
        words = words[:-1]
    # the same characters a title prefix loses before it is looked up (franchise_keys): "Haikyuu!!"
    # must stem to what "Haikyuu!! To the Top" starts with
    stem = " ".join(words).strip(_STEM_STRIP)
    return stem if len(stem) >= 3 else folded  # "Re:Zero" must not stem to "re", nor "K: Return of Kings" to "k"


def _titles(catalog: pd.DataFrame) -> list[list[str]]:
    cols = [catalog[c].astype(object).tolist() for c in ("Name", "English name") if c in catalog.columns]
    out = []
    for row in zip(*cols):
        folded = [fold(t) for t in row if t is not None and t == t]
        out.append([t for i, t in enumerate(folded) if t not in MISSING and t not in folded[:i]])
    return out


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


_BOUNDARY = re.compile(r"(?<=[^ ])[^\w]")  # where a title can be cut: the next character is no letter or digit


def _prefix_ends(title: str) -> list[int]:
    return [m.start() for m in _BOUNDARY.finditer(title)]


def _linkable(stem: str) -> bool:
    return len(stem) >= 3 and (" " in stem or len(stem) >= MIN_PREFIX_STEM)


def franchise_keys(catalog: pd.DataFrame) -> np.ndarray:
    """One int64 key per catalog row; rows of one franchise share it (the key is its lowest row)."""
    titles = _titles(catalog)
    uf = _UnionFind(len(titles))
    owner: dict[str, int] = {}
    for row, ts in enumerate(titles):
        for t in ts:
            stem = title_stem(t, folded=True)
            if len(stem) < 3:
                continue
            if stem in owner:
                uf.union(row, owner[stem])
            else:
                owner[stem] = row
    for row, ts in enumerate(titles):
        for t in ts:
            for end in _prefix_ends(t):
                prefix = t[:end].rstrip(_STEM_STRIP)
                other = owner.get(prefix)
                if other is not None and other != row and _linkable(prefix):
                    uf.union(row, other)
    return np.fromiter((uf.find(r) for r in range(len(titles))), np.int64, len(titles))


@dataclass
class Franchises:
    """Franchise keys of every catalog row and which rows are a franchise's first entry."""

    key: np.ndarray  # int64 per row
    first: np.ndarray  # bool per row: the franchise's earliest entry
    _by_key: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, catalog: pd.DataFrame) -> "Franchises":
        key = franchise_keys(catalog)
        when = premiere_order(catalog, unknown_season=3.5)  # an unknown season after the year's Fall
        when = np.where(np.isnan(when), np.inf, when)
        order = np.lexsort((np.arange(len(key)), when, key))  # by franchise, then premiere, then row
        first = np.zeros(len(key), bool)
        first[order[np.r_[True, key[order][1:] != key[order][:-1]]]] = True
        return cls(key, first)

    def rows_of(self, rows) -> np.ndarray:
        """Every row in the franchises of ``rows``, ascending."""
        if self._by_key is None:  # rows grouped by franchise, once: a query then reads only its groups
            order = np.argsort(self.key, kind="stable")
            self._by_key = (order, self.key[order])
        order, keys = self._by_key
        wanted = np.unique(self.key[np.asarray(rows, np.int64)])
        lo, hi = np.searchsorted(keys, wanted, "left"), np.searchsorted(keys, wanted, "right")
        return np.sort(np.concatenate([order[a:b] for a, b in zip(lo.tolist(), hi.tolist())] or [order[:0]]))

    def best_of_each(self, ranked: np.ndarray) -> np.ndarray:
        """Positions in ``ranked`` (catalog rows, best first) of the best-ranked entry of each franchise."""
        _, first = np.unique(self.key[np.asarray(ranked, np.int64)], return_index=True)
        return np.sort(first)
