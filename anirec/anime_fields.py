"""Typed per-anime fields parsed from the catalog's text columns, for query filters and franchises.

The Kaggle layout stores everything as text with "Unknown" for missing ("7.27", "Winter 2006",
"R+ - Mild Nudity", "Jan 7, 2006 to Jun 17, 2006"), and a catalog may come from a fitted
folder that keeps only its display columns. Each field is therefore parsed defensively, a
whole column at once, and a missing column or value becomes NaN / "" rather than an error:
a filter on a field the catalog does not have is refused by :mod:`anirec.filters`, which
knows what was asked.

* ``year``: the year in ``Premiered`` ("Winter 2006"), else the first year in ``Aired`` (films
  and OVAs have no premiere season), else NaN.
* ``season``: Winter / Spring / Summer / Fall from ``Premiered``, else from the month ``Aired``
  starts in (MAL's own rule: Jan-Mar Winter, Apr-Jun Spring, Jul-Sep Summer, Oct-Dec Fall).
* ``mal_score``: ``Score`` as a number (NaN for "Unknown").
* ``adult``: MAL age rating R+ (mild nudity) or Rx (hentai), or an Erotica/Hentai genre.
* ``genres``: the set of ``Genres`` entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

SEASONS = ("Winter", "Spring", "Summer", "Fall")
_MONTH_SEASON = {m: SEASONS[(i // 3)] for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
ADULT_RATINGS = ("R+", "Rx")
ADULT_GENRES = frozenset({"Erotica", "Hentai"})
MISSING = frozenset({"", "unknown", "nan", "none", "<na>"})
_YEAR = re.compile(r"\b(1[89]|20)\d\d\b")


def _text(catalog: pd.DataFrame, column: str) -> list[str]:
    """A column as stripped text, '' where missing (all '' when the column is absent). Plain
    Python over the values: pandas' string methods cost ~10x more on a few thousand short strings."""
    if column not in catalog.columns:
        return [""] * len(catalog)
    out = []
    for v in catalog[column].tolist():
        t = "" if v is None or v != v else str(v).strip()  # v != v: NaN / NA
        out.append("" if t.casefold() in MISSING else t)
    return out


def numeric(catalog: pd.DataFrame, column: str) -> np.ndarray:
    """A numeric column parsed leniently (text "7.27", "1,234", "Unknown"): float64, NaN where missing."""
    if column not in catalog.columns:
        return np.full(len(catalog), np.nan)
    col = catalog[column]
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(np.float64, na_value=np.nan)
    return np.array([_number(t) for t in _text(catalog, column)], np.float64)


def _number(text: str) -> float:
    try:
        return float(text.replace(",", "")) if text else np.nan
    except ValueError:
        return np.nan


def _first_year(text: str) -> float:
    m = _YEAR.search(text)
    return float(m.group(0)) if m else np.nan


def premiere_year(catalog: pd.DataFrame) -> np.ndarray:
    years = [_first_year(p) for p in _text(catalog, "Premiered")]
    aired = _text(catalog, "Aired")
    return np.array([y if y == y else _first_year(a) for y, a in zip(years, aired)], np.float64)


def premiere_season(catalog: pd.DataFrame) -> np.ndarray:
    out = []
    for p, a in zip(_text(catalog, "Premiered"), _text(catalog, "Aired")):
        word = p.split(" ", 1)[0].capitalize() if p else ""
        out.append(word if word in SEASONS else _MONTH_SEASON.get(a[:3].casefold(), ""))
    return np.array(out, object)


def premiere_order(catalog: pd.DataFrame, unknown_season: float = 0.0) -> np.ndarray:
    """Each anime's premiere as one sortable number: year x 4 + season (Winter 0 .. Fall 3); a
    year whose season is unknown counts ``unknown_season`` into it (0: as its Winter, 3.5: after
    its Fall); NaN where there is no year."""
    season = np.array([SEASONS.index(s) if s in SEASONS else unknown_season for s in premiere_season(catalog)],
                      np.float64)
    return premiere_year(catalog) * 4 + season


def adult(catalog: pd.DataFrame, genres: list[frozenset] | None = None) -> np.ndarray:
    genres = genre_sets(catalog) if genres is None else genres
    return np.array([r.startswith(ADULT_RATINGS) or bool(g & ADULT_GENRES)
                     for r, g in zip(_text(catalog, "Rating"), genres)], bool)


def genre_sets(catalog: pd.DataFrame) -> list[frozenset]:
    return [frozenset(g for g in (x.strip() for x in s.split(",")) if g and g.casefold() not in MISSING)
            for s in _text(catalog, "Genres")]


@dataclass
class AnimeFields:
    """The parsed fields of every catalog row (arrays aligned with the catalog's rows)."""

    type: np.ndarray  # str, '' when unknown
    year: np.ndarray  # float64, NaN when unknown
    season: np.ndarray  # str, '' when unknown
    mal_score: np.ndarray  # float64, NaN when unknown
    adult: np.ndarray  # bool
    genres: list[frozenset]
    has: frozenset  # which source columns the catalog has (a filter on a missing one is refused)
    # Built on first use, then kept: a query reads them, and parsing a whole catalog's column
    # per query costs more than the method's own scoring.
    _rows_of_genre: dict[str, np.ndarray] | None = None  # casefolded genre -> bool mask
    _rows_of_type: dict[str, np.ndarray] | None = None  # casefolded type -> bool mask
    _all_genres: list[str] | None = None
    _all_types: list[str] | None = None

    @classmethod
    def of(cls, catalog: pd.DataFrame) -> "AnimeFields":
        genres = genre_sets(catalog)
        return cls(type=np.array(_text(catalog, "Type"), object), year=premiere_year(catalog),
                   season=premiere_season(catalog), mal_score=numeric(catalog, "Score"),
                   adult=adult(catalog, genres), genres=genres, has=frozenset(catalog.columns))

    def _masks(self, values_per_row) -> dict[str, np.ndarray]:
        """casefolded value -> bool mask of the rows that have it (``values_per_row``: one
        iterable of values per row)."""
        rows: dict[str, list[int]] = {}
        for row, values in enumerate(values_per_row):
            for v in values:
                rows.setdefault(v.casefold(), []).append(row)
        masks = {}
        for v, r in rows.items():
            masks[v] = np.zeros(len(self.year), bool)
            masks[v][r] = True
        return masks

    def genre_mask(self, names, every: bool) -> np.ndarray:
        """Rows having every one (``every``) or any one of the genres ``names`` (case does not matter)."""
        if self._rows_of_genre is None:
            self._rows_of_genre = self._masks(self.genres)
        wanted = {n.casefold() for n in names}
        none = np.zeros(len(self.year), bool)
        masks = [self._rows_of_genre.get(g, none) for g in wanted]
        if every:
            return np.logical_and.reduce(masks) if masks else ~none
        return np.logical_or.reduce(masks) if masks else none

    def type_mask(self, names) -> np.ndarray:
        """Rows whose type is one of ``names`` (case does not matter)."""
        if self._rows_of_type is None:
            self._rows_of_type = self._masks([t] if t else [] for t in self.type)
        none = np.zeros(len(self.year), bool)
        return np.logical_or.reduce([self._rows_of_type.get(t.casefold(), none) for t in set(names)] or [none])

    def all_genres(self) -> list[str]:
        if self._all_genres is None:
            self._all_genres = sorted(set().union(*self.genres)) if self.genres else []
        return list(self._all_genres)

    def all_types(self) -> list[str]:
        if self._all_types is None:
            self._all_types = sorted(set(self.type) - {""})
        return list(self._all_types)
