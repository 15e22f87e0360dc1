"""Loading and validating MyAnimeList data: the catalog (anime + synopses) and the ratings.

Sources understood everywhere a ``--data``/``--ratings`` argument is taken:

* a folder in the Kaggle "Anime Recommendation Database 2020" layout
  (``anime.csv`` + ``anime_with_synopsis.csv`` joined on MAL_ID, ``rating_complete.csv``);
* one pre-merged CSV or parquet file (catalog: with a ``synopsis`` column; ratings:
  ``user_id, anime_id, rating``);
* a Hugging Face dataset, as ``hf:OWNER/NAME``, or a bare ``OWNER/NAME`` when nothing local
  could be meant (e.g. ``profoz/anime_rating_complete``): a value whose first folder exists
  here, or that ends in .csv/.parquet/.gz, is a local path, and a mistyped one is "not found",
  never a stranger's data set. ``hf:/local/folder`` loads a local dataset folder through the
  same ``datasets.load_dataset`` code path.

Ratings CSVs are read as people save them: with a UTF-8 byte-order mark (Excel's "CSV UTF-8"),
spaces after the commas, gzip-compressed (``.csv.gz``), with huge fields in extra columns.
CSV, parquet and Hugging Face ratings pass one rule (ids integers in 0..2^31-1, ratings
integers 1-10; ``9.0`` is 9), and a file that breaks it is refused naming its first bad row.

Every problem raises :class:`AnirecError` with one line naming the file, column or row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import AnirecError, warn

ANIME_FILE = "anime.csv"
SYNOPSIS_FILE = "anime_with_synopsis.csv"
RATINGS_FILE = "rating_complete.csv"

# Columns the description template needs; the rest of the Kaggle layout is kept when present.
CATALOG_REQUIRED = ["MAL_ID", "Name", "Type", "Genres", "Premiered", "Producers", "Studios", "Source"]
RATING_COLUMNS = ["user_id", "anime_id", "rating"]
RATING_DTYPES = {"user_id": np.int32, "anime_id": np.int32, "rating": np.int8}


@dataclass
class CatalogLoad:
    """A raw catalog (one row per MAL_ID, ``synopsis`` column) and what loading it found."""

    frame: pd.DataFrame
    source: str
    rows_read: int
    duplicates_dropped: int = 0
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- sources


LOCAL_SUFFIXES = (".csv", ".parquet", ".gz")


def _is_hf_spec(source: str) -> bool:
    """``hf:...``, or a bare OWNER/NAME that cannot be a local path (what real users type)."""
    if source.startswith("hf:"):
        return True
    parts = source.split("/")
    if len(parts) != 2 or not all(parts) or source.startswith((".", "~")) or source.lower().endswith(LOCAL_SUFFIXES):
        return False
    return not Path(source).exists() and not Path(parts[0]).exists()


def input_files(source, kind: str) -> list[Path]:
    """The local files (and folder) a ``--data``/``--catalog`` (``kind="catalog"``) or
    ``--ratings`` (``kind="ratings"``) value reads: what no output of the same command may be."""
    if source is None:
        return []
    if not isinstance(source, (str, Path)):
        return [p for s in source for p in input_files(s, kind)]
    text = str(source)
    if _is_hf_spec(text) and not Path(text.removeprefix("hf:")).exists():
        return []
    path = Path(text.removeprefix("hf:")).expanduser()
    if path.is_dir():
        names = [ANIME_FILE, SYNOPSIS_FILE] if kind == "catalog" else [RATINGS_FILE]
        return [path, *(path / n for n in names)]
    return [path]


def source_inputs(option: str, source, kind: str) -> list[tuple[str, Path]]:
    """``(option, path)`` for each file :func:`input_files` finds: the inputs side of
    :func:`anirec.io.check_outputs_not_inputs`."""
    return [(option, p) for p in input_files(source, kind)]


def _load_hf(spec: str, what: str) -> pd.DataFrame:
    """Load a Hugging Face dataset (hub id or local dataset folder) into one DataFrame."""
    name = spec[3:] if spec.startswith("hf:") else spec
    try:
        import datasets

        if Path(name).is_dir() and (Path(name) / "dataset_info.json").exists():
            ds = datasets.load_from_disk(name)
        else:
            ds = datasets.load_dataset(name)
    except Exception as exc:  # datasets raises many types; all mean "could not load"
        raise AnirecError(
            f"{what} '{name}': could not load it as a Hugging Face dataset ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Check the id, your network, or pass a local folder/file."
        ) from None
    if hasattr(ds, "keys"):  # DatasetDict: use 'train' (or the only split)
        split = "train" if "train" in ds else next(iter(ds.keys()))
        ds = ds[split]
    return ds.to_pandas()


def _first_undecodable_line(path: Path) -> int:
    with open(path, "rb") as f:
        for no, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return no
    return 0


def _read_csv_strings(path: Path, bad_bytes: str = "warn", **kwargs) -> pd.DataFrame:
    """pandas.read_csv with every column as text; a malformed file is one AnirecError line.

    Bytes that are not UTF-8 are replaced by U+FFFD: with ``bad_bytes="warn"`` (text files such
    as the catalog, where a title keeps the rest of its letters) with a warning naming the line;
    with ``"quiet"`` when the caller names the row itself (a U+FFFD id is "not an integer").
    """
    kwargs = {"dtype": str, **kwargs}
    try:
        try:
            return pd.read_csv(path, **kwargs)
        except UnicodeDecodeError:
            if bad_bytes == "warn":
                warn(f"{path}, line {_first_undecodable_line(path)}: not valid UTF-8; undecodable bytes were "
                     "replaced by U+FFFD. Save the file as UTF-8 to keep those characters.")
            return pd.read_csv(path, encoding_errors="replace", **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error, OSError) as exc:
        # pandas' tokenizer messages end in a newline and name the line: keep them, on one line.
        detail = _short(" ".join(str(exc).split()), 300)
        raise AnirecError(f"{path}: cannot be read as CSV ({detail}). Fix that line or export the file again.") from None


def _read_csv_text(path: Path) -> pd.DataFrame:
    """Read a CSV with every column as text ('' = missing), so ids can be validated per row."""
    if not path.exists():
        raise AnirecError(f"{path}: file not found. Pass the folder holding the Kaggle files or a CSV/parquet file.")
    if path.stat().st_size == 0:
        raise AnirecError(f"{path}: file is empty. Download it again or pass another file.")
    if path.suffix == ".parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as exc:
            raise AnirecError(f"{path}: cannot be read as parquet ({' '.join(str(exc).split())}).") from None
    else:
        df = _read_csv_strings(path, keep_default_na=False, na_values=[""])
        df.columns = [_clean_name(c) for c in df.columns]
    if len(df) == 0:
        raise AnirecError(f"{path}: file has a header but no rows. Pass a file with data.")
    return df


def _require_columns(df: pd.DataFrame, columns: list[str], where: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AnirecError(
            f"{where}: missing column {', '.join(repr(c) for c in missing)} "
            f"(found: {', '.join(_short(str(c)) for c in df.columns[:12])}). "
            "Use the Kaggle 2020 layout or rename the column."
        )


def _short(text: str, limit: int = 40) -> str:
    """Text from a data file for an error line: a 100,000-character field must not become the message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _shown(value) -> str:
    return _short(repr(value))


def _row(pos: int, first_row: int) -> str:
    """How a message names the row at position ``pos``: a CSV's file line (``first_row=2``, the
    header is line 1) or a table's row counted from 1 (parquet, datasets)."""
    n = pos + first_row
    return f"row {n} (line {n} counting the header)" if first_row == 2 else f"row {n}"


def _integer_ids(values: pd.Series, column: str, where: str, first_row: int = 2) -> np.ndarray:
    """Parse a column of ids as int64; name the first bad row (see :func:`_row`)."""
    if pd.api.types.is_integer_dtype(values) and not values.hasnans:
        return values.to_numpy(np.int64)
    num = pd.to_numeric(values, errors="coerce")
    if not isinstance(num.dtype, np.dtype):
        num = num.astype("float64")  # a nullable column: missing values become NaN, refused below
    # Beyond +-2^53 a float no longer holds every integer, and far beyond it int64 cannot: refused too.
    bad = num.isna() | (num != np.floor(num)) | (num.abs() > 2.0**53)
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise AnirecError(
            f"{where}, {_row(pos, first_row)}: {column} {_shown(values.iloc[pos])} "
            f"is not an integer{' in range' if pd.notna(num.iloc[pos]) else ''}. Fix or delete that row."
        )
    return num.to_numpy().astype(np.int64)


# --------------------------------------------------------------------------- catalog


def load_catalog(source: str | Path) -> CatalogLoad:
    """Load the anime catalog with a ``synopsis`` column from any supported source."""
    source = str(source)
    path = Path(source).expanduser()
    if _is_hf_spec(source):
        df = _load_hf(source, "catalog")
        where = f"hf:{source.removeprefix('hf:')}"
        if "synopsis" not in df.columns and "sypnopsis" in df.columns:
            df = df.rename(columns={"sypnopsis": "synopsis"})
        df = df.astype({c: str for c in df.columns if c not in ("synopsis",)})
    elif path.is_dir():
        anime_path, syn_path = path / ANIME_FILE, path / SYNOPSIS_FILE
        anime = _read_csv_text(anime_path)
        _require_columns(anime, CATALOG_REQUIRED, str(anime_path))
        syn = _read_csv_text(syn_path)
        syn_col = "sypnopsis" if "sypnopsis" in syn.columns else "synopsis"
        _require_columns(syn, ["MAL_ID", syn_col], str(syn_path))
        anime["MAL_ID"] = _integer_ids(anime["MAL_ID"], "MAL_ID", str(anime_path))
        syn_ids = _integer_ids(syn["MAL_ID"], "MAL_ID", str(syn_path))
        synopsis = pd.Series(syn[syn_col].to_numpy(), index=syn_ids)
        synopsis = synopsis[~synopsis.index.duplicated(keep="first")]
        df = anime.drop(columns=[c for c in ("synopsis", "sypnopsis") if c in anime.columns])
        df["synopsis"] = df["MAL_ID"].map(synopsis)
        where = str(anime_path)
    elif path.exists():
        df = _read_csv_text(path)
        if "synopsis" not in df.columns and "sypnopsis" in df.columns:
            df = df.rename(columns={"sypnopsis": "synopsis"})
        where = str(path)
    else:
        raise AnirecError(
            f"{source}: no such file or folder. Pass a folder with {ANIME_FILE} and {SYNOPSIS_FILE}, "
            f"a merged CSV/parquet, or a Hugging Face dataset id (hf:OWNER/NAME)."
        )
    if len(df) == 0:
        raise AnirecError(f"{where}: the catalog has no rows.")
    _require_columns(df, CATALOG_REQUIRED + ["synopsis"], where)
    df["MAL_ID"] = _integer_ids(df["MAL_ID"], "MAL_ID", where)
    rows_read = len(df)
    dup = df["MAL_ID"].duplicated(keep="first")
    n_dup = int(dup.sum())
    if n_dup:
        warn(f"{where}: {n_dup} duplicate MAL_ID row(s) dropped (kept the first of each).")
        df = df[~dup]
    df = df.reset_index(drop=True)
    if "English name" not in df.columns:
        df["English name"] = "Unknown"
    return CatalogLoad(frame=df, source=where, rows_read=rows_read, duplicates_dropped=n_dup)


CATALOG_COLUMNS = ["MAL_ID", "Name", "English name", "Type", "Genres", "Premiered", "description"]


def read_catalog(path: str | Path) -> pd.DataFrame:
    """Read a catalog written by ``anirec build`` (parquet), checking it has what later stages need."""
    path = Path(path).expanduser()
    if not path.exists():
        raise AnirecError(f"{path}: catalog not found. Create it with `anirec build --data DIR --out {path}`.")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:
        raise AnirecError(f"{path}: not a parquet catalog ({exc}). Create it with `anirec build`.") from None
    _require_columns(df, CATALOG_COLUMNS, str(path))
    if len(df) == 0:
        raise AnirecError(f"{path}: the catalog has no rows.")
    df = df.reset_index(drop=True)
    df["MAL_ID"] = _integer_ids(df["MAL_ID"], "MAL_ID", str(path))
    dup = df["MAL_ID"].duplicated(keep=False).to_numpy()
    if dup.any():
        # One row per anime is what every id -> row mapping assumes (a duplicate comes back as the
        # query's own best match, and an export would hold two vectors for one id).
        rows = np.flatnonzero(dup & (df["MAL_ID"].to_numpy() == df["MAL_ID"].to_numpy()[dup][0]))
        raise AnirecError(
            f"{path}: MAL_ID {df['MAL_ID'].iat[rows[0]]} is on rows {rows[0]} and {rows[1]} "
            f"({int(df['MAL_ID'].duplicated().sum())} duplicate row(s) in all); a catalog has one row per anime. "
            "Rebuild it with `anirec build` (which keeps the first of each) or drop the duplicates."
        )
    missing_title = df["Name"].isna() | (df["Name"].astype(str).str.strip() == "")
    if missing_title.any():
        # Catalogs written before build dropped nameless anime: keep them usable (by --id).
        warn(f"{path}: {int(missing_title.sum())} anime without a Name (first: MAL_ID {df['MAL_ID'][missing_title].iat[0]}); "
             "shown as Unknown. Rebuild the catalog with `anirec build` to drop them.")
        df["Name"] = df["Name"].where(~missing_title, "Unknown")
    df["English name"] = df["English name"].fillna("Unknown")
    return df


# --------------------------------------------------------------------------- ratings


def _clean_name(name) -> str:
    """A header cell as meant: without the UTF-8 byte-order mark or the spaces around it."""
    return str(name).lstrip("\ufeff").strip()


def _csv_header(path: Path) -> list[str]:
    """The header row of a plain or gzip-compressed CSV, names cleaned."""
    import gzip
    import io

    try:
        raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
        with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="") as f:
            row = next(csv.reader(f), [])
    except (OSError, EOFError, csv.Error) as exc:  # gzip.BadGzipFile is an OSError
        raise AnirecError(f"{path}: cannot be read ({_short(str(exc), 200)}). Download or export it again.") from None
    return [_clean_name(h) for h in row]


# pyarrow parses in blocks (1 MB by default) that must hold the longest row; a file with a
# larger field is read again with larger blocks (a few MB of reviews in an extra column).
_LARGER_BLOCKS = (1 << 23, 1 << 26, 1 << 29)


def _ratings_csv(path: Path) -> pd.DataFrame:
    """Fast path: pyarrow's multi-threaded CSV reader, only the three columns, compact dtypes
    (57M rows in seconds). Anything it cannot take (a blank or odd value, a line break inside a
    quoted field) goes to pandas, as text, for :func:`_checked_ratings` to judge row by row."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if path.stat().st_size == 0:
        raise AnirecError(f"{path}: file is empty. Download it again or pass another file.")
    header = _csv_header(path)
    _require_columns(pd.DataFrame(columns=header), RATING_COLUMNS, str(path))
    twice = next((c for c in RATING_COLUMNS if header.count(c) > 1), None)
    if twice:
        raise AnirecError(f"{path}: column {twice!r} appears twice in the header. Rename or delete one of them.")
    # Our own names (the header row is skipped): a BOM or spaces in it no longer matter.
    names = [h if h in RATING_COLUMNS else f"_extra_{i}" for i, h in enumerate(header)]
    convert = pacsv.ConvertOptions(include_columns=RATING_COLUMNS,
                                   column_types={c: pa.from_numpy_dtype(t) for c, t in RATING_DTYPES.items()})
    problem = None
    for block in (None, *_LARGER_BLOCKS):
        sizes = {"block_size": block} if block else {}
        try:
            table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, **sizes),
                                   convert_options=convert)
            problem = next((f"blank {c}" for c in RATING_COLUMNS if table.column(c).null_count), None)
            break
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            problem = str(exc) or type(exc).__name__
            if "straddl" not in problem:
                break
    if problem is None:
        return table.to_pandas()
    text = _read_csv_strings(path, bad_bytes="quiet", usecols=lambda c: _clean_name(c) in RATING_COLUMNS,
                             keep_default_na=False)
    text.columns = [_clean_name(c) for c in text.columns]
    return text


def _ratings_parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow.parquet as pq

        names = pq.ParquetFile(path).schema_arrow.names
    except Exception as exc:
        raise AnirecError(f"{path}: not a readable parquet file ({_short(' '.join(str(exc).split()), 200)}).") from None
    _require_columns(pd.DataFrame(columns=names), RATING_COLUMNS, str(path))
    try:
        return pd.read_parquet(path, columns=RATING_COLUMNS)
    except Exception as exc:  # a truncated or damaged file: pyarrow raises several types
        raise AnirecError(f"{path}: cannot be read as parquet ({_short(' '.join(str(exc).split()), 200)}).") from None


ID_MAX = int(np.iinfo(np.int32).max)


def _checked_ratings(df: pd.DataFrame, where: str, first_row: int) -> pd.DataFrame:
    """The one rule every ratings source passes, whatever its format: ``user_id`` and
    ``anime_id`` integers in 0..2^31-1, ``rating`` an integer 1-10 (a whole float such as 9.0
    counts); returned as int32, int32, int8. The first row that breaks it is named."""
    out = {}
    for col in RATING_COLUMNS:
        values = df[col]
        fast = isinstance(values.dtype, np.dtype) and values.dtype.kind in "iu"  # no parsing, no NaN possible
        arr = values.to_numpy() if fast else _integer_ids(values, col, where, first_row)
        low, high = (1, 10) if col == "rating" else (0, ID_MAX)
        bad = (arr < low) | (arr > high)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            if col == "rating":
                raise AnirecError(f"{where}, row {pos + first_row}: rating {int(arr[pos])} is outside 1-10 "
                                  f"({int(bad.sum())} such row(s)). MAL ratings are 1-10; remove or fix them.")
            raise AnirecError(f"{where}, row {pos + first_row}: {col} {int(arr[pos])} is out of range (0..2^31-1). "
                              "Fix or delete that row.")
        out[col] = arr.astype(RATING_DTYPES[col], copy=False)
    return pd.DataFrame(out)


def load_ratings(sources) -> pd.DataFrame:
    """Load ratings as ``user_id`` int32, ``anime_id`` int32, ``rating`` int8 (1-10), no Python row loop.

    ``sources`` is one source (a file, a folder holding rating_complete.csv, a parquet file, an
    HF id) or a list of them (``--ratings`` repeated): the sets are stacked. Their users must
    not overlap, since the same user_id in two sets would silently merge two people.
    """
    if isinstance(sources, (str, Path)):
        return _load_ratings_source(sources)
    sources = [str(s) for s in sources]
    if not sources:
        raise AnirecError("no ratings given: pass --ratings FILE (repeatable).")
    frames = [_load_ratings_source(s) for s in sources]
    if len(frames) == 1:
        return frames[0]
    users = [np.unique(f["user_id"].to_numpy()) for f in frames]
    for i in range(len(frames)):
        for j in range(i + 1, len(frames)):
            both = np.intersect1d(users[i], users[j], assume_unique=True)
            if len(both):
                raise AnirecError(
                    f"--ratings {sources[i]} and {sources[j]} share {len(both):,} user_id(s) (e.g. {int(both[0])}): "
                    "stacking them would merge different people. Renumber one set's users or pass one set.")
    return pd.concat(frames, ignore_index=True)


def ratings_label(sources) -> str:
    """How a ratings source (or list of them) is named in messages and metadata."""
    return str(sources) if isinstance(sources, (str, Path)) else " + ".join(map(str, sources))


def _load_ratings_source(source: str | Path) -> pd.DataFrame:
    source = str(source)
    path = Path(source).expanduser()
    if path.is_dir() and (path / RATINGS_FILE).exists():
        path = path / RATINGS_FILE
    if _is_hf_spec(source) and not path.exists():
        df = _load_hf(source, "ratings")
        where, first_row = f"hf:{source.removeprefix('hf:')}", 1
        _require_columns(df, RATING_COLUMNS, where)
    elif not path.exists():
        raise AnirecError(f"{source}: ratings file not found. Pass {RATINGS_FILE}, a parquet file or a folder holding it "
                          "(a Hugging Face dataset: hf:OWNER/NAME).")
    elif path.is_dir():
        raise AnirecError(f"{path}: folder has no {RATINGS_FILE}. Pass the ratings file itself.")
    elif path.suffix == ".parquet":
        df, where, first_row = _ratings_parquet(path), str(path), 1
    else:
        df, where, first_row = _ratings_csv(path), str(path), 2
    if len(df) == 0:
        raise AnirecError(f"{where}: no ratings in the file. Pass a file with data.")
    return _checked_ratings(df, where, first_row)


def ratings_coverage(ratings: pd.DataFrame, catalog_ids) -> dict:
    """How many ratings (and distinct anime) fall outside the catalog: normal, and reported."""
    in_cat = ratings["anime_id"].isin(np.asarray(catalog_ids))
    return {
        "ratings": int(len(ratings)),
        "users": int(ratings["user_id"].nunique()),
        "ratings_in_catalog": int(in_cat.sum()),
        "ratings_not_in_catalog": int((~in_cat).sum()),
        "anime_not_in_catalog": int(ratings.loc[~in_cat, "anime_id"].nunique()),
    }


# --------------------------------------------------------------------------- anime id lists


def write_anime_ids(ids, path: str | Path, header: str = "") -> Path:
    """One MAL_ID per line (``#`` lines are comments), atomically."""
    from .io import write_text

    lines = [f"# {line}" for line in header.splitlines()] + [str(int(i)) for i in ids]
    return write_text("\n".join(lines) + "\n", path)


def read_anime_ids(path: str | Path) -> np.ndarray:
    """Read a file of MAL_IDs written by :func:`write_anime_ids` (one per line, ``#`` comments)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise AnirecError(f"{path}: anime id list not found. Write it with `anirec cold-anime --out {path}`.")
    ids = []
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not line.isdigit():
            raise AnirecError(f"{path}, line {no}: {line!r} is not a MAL_ID (one integer per line).")
        ids.append(int(line))
    return np.unique(np.asarray(ids, np.int64))
