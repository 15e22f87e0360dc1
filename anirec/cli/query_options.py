"""The query options of `anirec recommend` (filters, free text, a MAL list), defined once.

Typer reads options from a command's parameters, so each option is a constant here that the
command names as a parameter default, and :func:`filters_from_options` turns the values into
the :class:`~anirec.filters.Filters` the HTTP API builds from its JSON: one meaning for both.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..filters import Filters

TYPE = typer.Option(None, "--type", help="Only this type: TV, Movie, OVA, ONA, Special, Music (repeatable).")
YEAR_MIN = typer.Option(None, "--year-min", help="Premiered in this year or later.")
YEAR_MAX = typer.Option(None, "--year-max", help="Premiered in this year or earlier.")
SEASON = typer.Option(None, "--season", help="Premiered in this season: Winter, Spring, Summer, Fall (repeatable).")
GENRE = typer.Option(None, "--genre", help="Has this genre (repeatable: every one).")
EXCLUDE_GENRE = typer.Option(None, "--exclude-genre", help="Has none of these genres (repeatable).")
MIN_SCORE = typer.Option(None, "--min-score", help="MAL score at least this (0-10).")
NEW_ONLY = typer.Option(False, "--new-only", help="Only anime nobody rated in the data the recommender was fitted on.")
ADULT = typer.Option(False, "--adult", help="Allow R+ and Rx titles (left out by default).")
ONE_PER_FRANCHISE = typer.Option(True, "--one-per-franchise/--any-per-franchise",
                                 help="At most one entry per franchise (the best ranked).")
LIKED_FRANCHISES = typer.Option(False, "--liked-franchises",
                                help="Allow anime of a liked anime's own franchise (its sequels, films, spin-offs).")
NO_UNSTARTED_SEQUELS = typer.Option(False, "--no-unstarted-sequels",
                                    help="No sequel of a franchise you have not started (only its first entry).")
UNFILTERED = typer.Option(False, "--unfiltered", help="No query filter at all, not even the defaults (R+/Rx left out, "
                          "one per franchise, none of a liked franchise): the method's own list, as `anirec evaluate` scores it.")
QUERY = typer.Option(None, "--query", help='Free text, e.g. "dark psychological thriller": ranked by the fitted '
                     "text part, combined with likes when both are given.")
MAL_LIST = typer.Option(None, "--mal-list", help="Your MyAnimeList export (animelist_*.xml or .xml.gz): 9-10 scores "
                        "are likes, every listed anime is never recommended.")


def filters_from_options(types: Optional[List[str]], year_min: Optional[int], year_max: Optional[int],
                         seasons: Optional[List[str]], genres: Optional[List[str]],
                         exclude_genres: Optional[List[str]], min_score: Optional[float], new_only: bool,
                         adult: bool, one_per_franchise: bool, liked_franchises: bool,
                         no_unstarted_sequels: bool, unfiltered: bool = False) -> Filters:
    if unfiltered:
        given = [name for name, on in (("--type", types), ("--year-min", year_min is not None),
                                       ("--year-max", year_max is not None), ("--season", seasons), ("--genre", genres),
                                       ("--exclude-genre", exclude_genres), ("--min-score", min_score is not None),
                                       ("--new-only", new_only), ("--no-unstarted-sequels", no_unstarted_sequels)) if on]
        if given:
            from ..errors import AnirecError

            raise AnirecError(f"--unfiltered and {given[0]}: --unfiltered turns every filter off; drop one of them.")
        return Filters.none()
    return Filters(types=tuple(types or ()), year_min=year_min, year_max=year_max, seasons=tuple(seasons or ()),
                   genres=tuple(genres or ()), exclude_genres=tuple(exclude_genres or ()), min_score=min_score,
                   new_only=new_only, include_adult=adult, one_per_franchise=one_per_franchise,
                   liked_franchises=liked_franchises, unstarted_sequels=not no_unstarted_sequels)


def read_mal_list_text(path: Optional[Path]) -> tuple[Optional[str], str]:
    """The XML of ``--mal-list`` (gzip inflated, size-capped) and the name errors call it."""
    if path is None:
        return None, "--mal-list"
    from ..mal_list import read_xml_text

    return read_xml_text(path), f"--mal-list {path}"
