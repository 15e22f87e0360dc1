"""A MyAnimeList list export (``animelist_*.xml`` or ``.xml.gz``) -> what a recommender reads.

MAL users keep their lists on the site; its "Export" gives one ``<anime>`` element per list
entry with the MAL id (the catalog's ``MAL_ID``), the user's score (1-10, 0 = not scored) and
a status. Read on a catalog, an export becomes

* ``liked``: scored 9-10 (the promoter threshold every method was fitted and evaluated with),
* ``rated``: every scored entry with its score (what a ratings file would hold),
* ``seen``: every listed anime, whatever its status (plan-to-watch too): never recommended,
* ``off_catalog``: entries on anime the catalog lacks, counted (normal: an export covers more
  than a catalog of TV anime).

The file comes from a user's upload, so it is parsed with defusedxml with DTDs, entity
declarations and external references all forbidden (no billion-laughs expansion, no file or
network access through an entity), and read at most :data:`MAX_LIST_BYTES` of XML, also out of
a gzip stream (a small ``.gz`` cannot inflate into gigabytes). Anything broken, foreign or too
large is one :class:`AnirecError` line naming the file and what to do.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import AnirecError
from .interactions import rows_of_ids
from .opinions import PROMOTER_MIN

MAX_LIST_BYTES = 5 * 1024 * 1024  # of XML: ~5,500 entries of MAL's ~900-byte <anime> element
_GZIP_MAGIC = b"\x1f\x8b"
_EXPORT_HINT = "export your anime list again from MyAnimeList (Profile > Export) and pass that file"


@dataclass
class MalList:
    """The entries of one export, in file order (plain arrays, one per field)."""

    where: str  # the file name, or what the caller calls an uploaded text
    user_name: str
    anime_id: np.ndarray  # int64 MAL ids
    score: np.ndarray  # int64 1-10, 0 = not scored
    status: list[str]
    title: list[str]

    def __len__(self) -> int:
        return len(self.anime_id)

    def ratings(self) -> pd.DataFrame:
        """The scored entries as a one-user ratings frame (``user_id`` 0, ``anime_id``, ``rating``)."""
        scored = self.score > 0
        return pd.DataFrame({"user_id": np.zeros(int(scored.sum()), np.int32),
                             "anime_id": self.anime_id[scored].astype(np.int32),
                             "rating": self.score[scored].astype(np.int8)})


@dataclass
class ListOnCatalog:
    """An export read on one catalog: item rows (sorted, unique) and what fell outside it."""

    liked: np.ndarray  # rows scored 9-10
    rated: np.ndarray  # rows with a score
    rated_scores: np.ndarray  # their scores (aligned with ``rated``)
    seen: np.ndarray  # every listed row
    off_catalog: int  # entries on anime the catalog lacks
    entries: int

    def summary(self) -> dict:
        return {"entries": self.entries, "liked": len(self.liked), "rated": len(self.rated),
                "seen": len(self.seen), "off_catalog": self.off_catalog}


def on_catalog(mal_list: MalList, catalog_ids) -> ListOnCatalog:
    """Map an export onto catalog rows. A list entry repeated in the file counts once (its last score)."""
    rows = rows_of_ids(np.asarray(catalog_ids, np.int64), mal_list.anime_id)
    ok = rows >= 0
    last = pd.Series(mal_list.score[ok], index=rows[ok])
    last = last[~last.index.duplicated(keep="last")].sort_index()
    scores = last.to_numpy(np.int64)
    seen = last.index.to_numpy(np.int64)
    rated = seen[scores > 0]
    return ListOnCatalog(liked=seen[scores >= PROMOTER_MIN], rated=rated, rated_scores=scores[scores > 0],
                         seen=seen, off_catalog=int((~ok).sum()), entries=len(mal_list))


def read_mal_list(path: str | Path) -> MalList:
    """Read an export file (plain XML or gzipped, told apart by its first bytes, not its name)."""
    return parse_mal_list(_read_xml(Path(path).expanduser()), str(Path(path).expanduser()))


def read_xml_text(path: str | Path) -> str:
    """An export file's XML as text (what the HTTP API takes as ``mal_list``), checked like
    :func:`read_mal_list` reads it; the entries are parsed later, with the query."""
    path = Path(path).expanduser()
    data = _read_xml(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnirecError(f"--mal-list {path}: not UTF-8 text (byte {exc.start}); {_EXPORT_HINT}.") from None


def _read_xml(path: Path) -> bytes:
    """At most MAX_LIST_BYTES + 1 bytes of XML: the file itself, or what its gzip stream inflates to."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            stream = gzip.GzipFile(fileobj=f) if head == _GZIP_MAGIC else f
            return stream.read(MAX_LIST_BYTES + 1)
    except FileNotFoundError:
        raise AnirecError(f"--mal-list {path}: file not found; {_EXPORT_HINT}.") from None
    except IsADirectoryError:
        raise AnirecError(f"--mal-list {path}: is a folder; pass the animelist_*.xml(.gz) file itself.") from None
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        reason = getattr(exc, "strerror", None) or " ".join(str(exc).split()) or type(exc).__name__
        raise AnirecError(f"--mal-list {path}: cannot be read ({reason}); {_EXPORT_HINT}.") from None


def parse_mal_list(data: bytes | str, where: str = "MAL list") -> MalList:
    """Parse the XML of an export (bytes or text, e.g. an HTTP upload); ``where`` names it in errors."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_LIST_BYTES:
        raise AnirecError(f"{where}: more than {MAX_LIST_BYTES // (1024 * 1024)} MB of XML (about 5,500 list "
                          "entries); export a shorter list (e.g. only Completed) or remove entries from it.")
    if not raw.strip():
        raise AnirecError(f"{where}: empty; {_EXPORT_HINT}.")
    try:
        root = fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise AnirecError(f"{where}: refused: the XML declares a DTD, entities or external references "
                          f"({type(exc).__name__}), which a MyAnimeList export never does; {_EXPORT_HINT}.") from None
    except (ParseError, ValueError) as exc:
        raise AnirecError(f"{where}: not well-formed XML ({' '.join(str(exc).split())}); {_EXPORT_HINT}.") from None
    return _entries(root, where)


def _entries(root, where: str) -> MalList:
    if root.tag != "myanimelist":
        raise AnirecError(f"{where}: not a MyAnimeList export (the root element is <{_short(root.tag)}>, "
                          f"not <myanimelist>); {_EXPORT_HINT}.")
    if root.find("anime") is None and root.find("manga") is not None:
        raise AnirecError(f"{where}: a MyAnimeList manga list; anirec recommends anime: export your anime list instead.")
    user = (root.findtext("myinfo/user_name") or "").strip()
    ids, scores, status, titles = [], [], [], []
    for no, entry in enumerate(root.iter("anime"), 1):
        ids.append(_whole(entry, "series_animedb_id", no, where, 1, 2**53))
        scores.append(_whole(entry, "my_score", no, where, 0, 10, default=0))
        status.append((entry.findtext("my_status") or "").strip())
        titles.append((entry.findtext("series_title") or "").strip())
    return MalList(where, user, np.asarray(ids, np.int64), np.asarray(scores, np.int64), status, titles)


def _whole(entry, field: str, no: int, where: str, low: int, high: int, default: int | None = None) -> int:
    """An integer field of the ``no``-th <anime> entry, checked to lie in [low, high]."""
    text = (entry.findtext(field) or "").strip()
    if not text and default is not None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        got = f"{_short(text)!r}" if text else "missing"
        raise AnirecError(f"{where}: <anime> entry {no}: <{field}> is {got}, expected a whole number "
                          f"{low}-{high if high < 2**53 else '...'}; fix that entry or export the list again.")
    return value


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."
