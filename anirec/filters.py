"""Query filters: which catalog anime may be recommended, decided before the top-k.

A filter is a mask over the catalog's rows handed to a method's ``recommend`` as its
``candidates``, so a filtered list still has k items when k candidates pass (the methods
rank only candidates; filtering a finished top-k would leave holes). What the filters read:

* type (TV, Movie, OVA...), premiere year range and season, genres to require (every one)
  and to exclude (any one), a minimum MAL score: the catalog's own columns, parsed by
  :mod:`anirec.anime_fields`. An anime whose value is unknown fails a filter on it.
* age rating: R+ and Rx (and the Erotica/Hentai genres) are left out unless ``include_adult``.
* ``new_only``: anime with no rating in the data the recommender was fitted on.
* franchises (:mod:`anirec.franchises`): none of a liked anime's franchise unless
  ``liked_franchises``; no sequel of a franchise the user has not started unless
  ``unstarted_sequels``; at most one entry per franchise (``one_per_franchise``, the one
  ranked best) - this last one depends on the ranking, so the serving path applies it
  (:meth:`anirec.franchises.Franchises.best_of_each`) to a ranked list asked for with
  room to spare.

Values a user typed (a type or genre the catalog does not know, a season name, reversed
years) are one-line :class:`AnirecError` messages naming the option and the choices.
"""

from __future__ import annotations

from dataclasses import dataclass, fields as dataclass_fields, replace

import numpy as np

from .anime_fields import SEASONS, AnimeFields
from .errors import AnirecError
from .franchises import Franchises


@dataclass(frozen=True)
class Filters:
    """What a query allows; the defaults allow everything but adult titles, a liked anime's
    franchise and a second entry of one franchise."""

    types: tuple[str, ...] = ()  # e.g. ("TV", "Movie"); empty = any
    year_min: int | None = None  # premiere year range, inclusive
    year_max: int | None = None
    seasons: tuple[str, ...] = ()  # Winter / Spring / Summer / Fall
    genres: tuple[str, ...] = ()  # the anime has every one of these
    exclude_genres: tuple[str, ...] = ()  # ... and none of these
    min_score: float | None = None  # MAL score at least this (0-10)
    new_only: bool = False  # only anime nobody rated in the fitted data
    include_adult: bool = False  # allow R+ and Rx
    one_per_franchise: bool = True  # at most one entry per franchise, the best ranked
    liked_franchises: bool = False  # allow anime of a liked anime's franchise
    unstarted_sequels: bool = True  # allow sequels of franchises the user has not started

    def __post_init__(self):
        for name in ("types", "seasons", "genres", "exclude_genres"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise AnirecError(f"{name}: expected a list of names, got {value!r}.")
            object.__setattr__(self, name, tuple(v.strip() for v in value if v.strip()))
        if self.seasons:
            bad = [s for s in self.seasons if s.capitalize() not in SEASONS]
            if bad:
                raise AnirecError(f"seasons: {bad[0]!r} is not a season; use {', '.join(SEASONS)}.")
            object.__setattr__(self, "seasons", tuple(s.capitalize() for s in self.seasons))
        if self.year_min is not None and self.year_max is not None and self.year_min > self.year_max:
            raise AnirecError(f"year_min {self.year_min} is after year_max {self.year_max}; swap them.")
        if self.min_score is not None and not 0 <= self.min_score <= 10:
            raise AnirecError(f"min_score {self.min_score}: a MAL score is between 0 and 10.")

    @classmethod
    def none(cls) -> "Filters":
        """Nothing filtered: every anime may come back, as in the list `anirec evaluate` scores."""
        return cls(include_adult=True, one_per_franchise=False, liked_franchises=True)

    def to_dict(self) -> dict:
        # (not dataclasses.asdict: its deep copy of every value cost more than the filters themselves)
        values = ((f.name, getattr(self, f.name)) for f in dataclass_fields(self))
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values}

    def but(self, **changes) -> "Filters":
        return replace(self, **changes)


def _check_names(asked, known, option: str) -> None:
    """Every name in ``asked`` is one of ``known`` (case-insensitive), else one line with the choices."""
    folded = {k.casefold() for k in known}
    for name in asked:
        if name.casefold() not in folded:
            from rapidfuzz import process

            near = [m[0] for m in process.extract(name, sorted(known), limit=5)]
            raise AnirecError(f"{option}: {name!r} is not in the catalog; closest: {', '.join(near) or 'none'}.")


def candidate_mask(fields: AnimeFields, filters: Filters, franchises: Franchises | None = None,
                   liked=(), started=(), n_ratings: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask over the catalog rows: True where an anime passes every filter.

    ``liked``: rows the user liked (their franchises are left out unless ``liked_franchises``);
    ``started``: rows the user has seen in any way (a franchise with one is "started");
    ``n_ratings``: ratings per row in the fitted data (``new_only`` needs it); ``franchises``
    is needed by the two franchise filters only."""
    f = filters
    n = len(fields.year)
    mask = np.ones(n, bool)
    if f.types:
        _check_names(f.types, fields.all_types(), "types")
        mask &= fields.type_mask(f.types)
    if f.year_min is not None:
        mask &= fields.year >= f.year_min  # NaN (unknown year) compares False: left out
    if f.year_max is not None:
        mask &= fields.year <= f.year_max
    if f.seasons:
        mask &= np.isin(fields.season, list(f.seasons))
    if f.genres or f.exclude_genres:
        _check_names(f.genres + f.exclude_genres, fields.all_genres(), "genres")
    if f.genres:
        mask &= fields.genre_mask(f.genres, every=True)
    if f.exclude_genres:
        mask &= ~fields.genre_mask(f.exclude_genres, every=False)
    if f.min_score is not None:
        mask &= fields.mal_score >= f.min_score
    if not f.include_adult:
        mask &= ~fields.adult
    if f.new_only:
        if n_ratings is None:
            raise AnirecError("new_only: this recommender records no ratings to tell new anime by; "
                              "use a folder from `anirec fit` (refit older folders).")
        mask &= np.asarray(n_ratings) == 0
    liked, started = np.asarray(liked, np.int64), np.asarray(started, np.int64)
    if (not f.liked_franchises and len(liked)) or not f.unstarted_sequels:
        if franchises is None:
            raise AnirecError("franchise filters need the catalog's franchises (internal: pass franchises=).")
        if not f.liked_franchises and len(liked):
            mask[franchises.rows_of(liked)] = False
        if not f.unstarted_sequels:
            started_keys = franchises.key[np.union1d(liked, started)]
            mask &= franchises.first | np.isin(franchises.key, started_keys)
    return mask
