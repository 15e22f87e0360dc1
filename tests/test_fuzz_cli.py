"""Property-based: build, pairs, evaluate and fit fed malformed CSVs (random blanks, bad bytes, wrong
types, duplicate keys, huge fields, broken rows) exit 0, or exit 2 with one `anirec: error:`
line; never a traceback, and never a partial output.

Runs in-process (tests/helpers.run_cli) on the tiny Kaggle-layout data; the examples are
derandomised so the suite is stable. Explore further with ANIREC_FUZZ_EXAMPLES=200.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from helpers import TINY_PAIRS_OPTIONS, run_cli, write_tiny_mal

SCALE = int(os.environ.get("ANIREC_FUZZ_EXAMPLES", "0")) or None


def fuzz_settings(examples: int):
    return settings(max_examples=SCALE or examples, deadline=None, derandomize=SCALE is None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ------------------------------------------------------------------ malformed CSVs

CELL_DAMAGE = st.one_of(
    st.just(""),  # a blank field
    st.sampled_from(["abc", "1.5", "-3", "1e10", "NaN", "99999999999999999999", "0x1F", " 7 ", "None", "∞"]),  # wrong types
    st.sampled_from([b"\xff", b"\xe9t\xe9", b"\x00", b"\xc3", b"\x1b[31m"]),  # bytes that are not UTF-8 (or are controls)
    st.sampled_from(['"', '"unterminated', "a,b", "x\ny", "[/]", "\r"]),  # quoting, delimiters, line breaks, markup
    st.integers(10_000, 200_000).map(lambda n: "9" * n),  # a huge field
)


@st.composite
def damage(draw, n_rows: int, n_cols: int):
    """One edit to a CSV held as rows of cells (row 0 is the header)."""
    kind = draw(st.sampled_from(["cell", "cell", "cell", "duplicate row", "drop cell", "extra cell", "drop row", "truncate"]))
    row = draw(st.integers(0, n_rows - 1))
    col = draw(st.integers(0, n_cols - 1))
    return kind, row, col, draw(CELL_DAMAGE) if kind == "cell" else None


def apply_damage(path: Path, edits) -> None:
    rows = [line.split(b",") for line in path.read_bytes().rstrip(b"\n").split(b"\n")]
    truncate = None
    for kind, row, col, payload in edits:
        row %= len(rows)
        cells = rows[row]
        col %= max(len(cells), 1)
        if kind == "cell" and cells:
            cells[col] = payload if isinstance(payload, bytes) else payload.encode()
        elif kind == "duplicate row":
            rows.insert(row, list(cells))
        elif kind == "drop cell" and cells:
            del cells[col]
        elif kind == "extra cell":
            cells.insert(col, b"extra")
        elif kind == "drop row" and len(rows) > 1:
            del rows[row]
        elif kind == "truncate":
            truncate = row
    data = b"\n".join(b",".join(cells) for cells in rows) + b"\n"
    if truncate is not None:  # a download cut short, possibly inside a row
        data = data[: int(len(data) * truncate / max(len(rows), 1))]
    path.write_bytes(data)


def edits(n_rows: int, n_cols: int):
    return st.lists(damage(n_rows, n_cols), min_size=0, max_size=4)  # [] = the clean data: exit 0


# ------------------------------------------------------------------ checks


def check_outcome(code: int, out: str, err: str, outputs: list[Path]) -> None:
    """Exit 0 with every output complete, or exit 2 with one error line and no output at all."""
    event(f"exit {code}")  # --hypothesis-show-statistics: both outcomes should be exercised
    assert "Traceback" not in err, err
    assert code in (0, 2), f"exit {code}\n{err}"
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("anirec: error:")]
    if code == 2:
        assert len(errors) == 1, err
        assert len(errors[0]) < 1000, f"an error line of {len(errors[0]):,} characters"  # a huge field quoted whole
        assert errors[0] == lines[-1], err  # nothing after the error
        assert not any(p.exists() for p in outputs), f"partial output after an error: {outputs}"
    else:
        assert not errors, err
        assert all(p.exists() for p in outputs), outputs
    for folder in {p.parent for p in outputs}:
        if folder.exists():
            assert not [f for f in os.listdir(folder) if f.endswith(".tmp")], os.listdir(folder)


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory):
    """The undamaged tiny data and its catalog, copied into each example's own folder."""
    from anirec.build import build_catalog

    root = tmp_path_factory.mktemp("fuzz")
    mal = write_tiny_mal(root / "mal", n_anime=6, n_users=40)
    build_catalog(mal, root / "catalog.parquet")
    return mal, root / "catalog.parquet"


def example_folder(clean_data) -> tuple[tempfile.TemporaryDirectory, Path, Path]:
    mal, catalog = clean_data
    tmp = tempfile.TemporaryDirectory(prefix="anirec-fuzz-")
    work = Path(tmp.name)
    shutil.copytree(mal, work / "mal")
    return tmp, work / "mal", catalog


# ------------------------------------------------------------------ the properties


@fuzz_settings(25)
@given(which=st.sampled_from(["anime.csv", "anime_with_synopsis.csv", "rating_complete.csv"]), damage=edits(7, 16))
def test_build_survives_malformed_csvs(clean_data, capsys, which, damage):
    tmp, mal, _ = example_folder(clean_data)
    with tmp:
        apply_damage(mal / which, damage)
        out = Path(tmp.name) / "out" / "catalog.parquet"
        code, stdout, err = run_cli(capsys, "build", "--data", mal, "--out", out, "--ratings", mal)
        check_outcome(code, stdout, err, [out])
        if code == 0:
            names = pd.read_parquet(out)["Name"].astype(str)
            assert (names.str.strip() != "").all() and not names.str.contains("\x1b").any()


def run_on_damaged_ratings(clean_data, capsys, damage, args, outputs) -> None:
    """Damage rating_complete.csv, run `anirec ARGS` (``args(ratings, catalog, work folder)``), check
    the outcome against ``outputs(work folder)``."""
    tmp, mal, catalog = example_folder(clean_data)
    with tmp:
        ratings, work = mal / "rating_complete.csv", Path(tmp.name)
        apply_damage(ratings, damage)
        code, stdout, err = run_cli(capsys, *args(ratings, catalog, work))
        check_outcome(code, stdout, err, outputs(work))


@fuzz_settings(20)
@given(damage=edits(40, 3))
def test_pairs_survives_malformed_ratings(clean_data, capsys, damage):
    run_on_damaged_ratings(
        clean_data, capsys, damage,
        lambda ratings, catalog, work: ["pairs", "--ratings", ratings, "--catalog", catalog,
                                        "--out", work / "pairs.parquet", *TINY_PAIRS_OPTIONS],
        lambda work: [work / "pairs.parquet", work / "pairs.split.parquet"])


@fuzz_settings(10)
@given(damage=edits(40, 3))
def test_evaluate_survives_malformed_ratings(clean_data, capsys, damage):
    run_on_damaged_ratings(
        clean_data, capsys, damage,
        lambda ratings, catalog, work: ["evaluate", "--catalog", catalog, "--ratings", ratings, "-b", "random,popular",
                                        "--protocols", "holdout", "--bootstrap", "0", "--out", work / "eval"],
        lambda work: [work / "eval" / "results.csv", work / "eval" / "meta.json"])


@fuzz_settings(10)
@given(damage=edits(40, 3))
def test_fit_survives_malformed_ratings(clean_data, capsys, damage):
    run_on_damaged_ratings(
        clean_data, capsys, damage,
        lambda ratings, catalog, work: ["fit", "--method", "popular", "--ratings", ratings, "--catalog", catalog,
                                        "--out", work / "recommender"],
        lambda work: [work / "recommender"])


# ------------------------------------------------------------------ ratings as people save them (issue 19)


def dress(path: Path, how: str) -> Path:
    """Save ``path`` again the way spreadsheets and shells do: a UTF-8 byte-order mark, spaces after
    the commas, Windows line ends, gzip; ``how`` joins any of them with '+'. Returns the new file."""
    data = path.read_bytes()
    ways = set(how.split("+")) - {"plain"}
    if "spaced" in ways:
        data = data.replace(b",", b", ")
    if "crlf" in ways:
        data = data.replace(b"\n", b"\r\n")
    if "bom" in ways:
        data = b"\xef\xbb\xbf" + data
    if "gzip" in ways:
        import gzip

        path.unlink()
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


DRESS = st.sampled_from(["plain", "bom", "spaced", "crlf", "gzip", "bom+spaced", "bom+gzip", "spaced+crlf+gzip"])


@fuzz_settings(20)
@given(how=DRESS, damage=edits(40, 3))
def test_fit_reads_dressed_ratings_and_refuses_damaged_ones_in_one_line(clean_data, capsys, how, damage):
    from anirec.data import load_ratings

    tmp, mal, catalog = example_folder(clean_data)
    with tmp:
        work = Path(tmp.name)
        plain = load_ratings(mal / "rating_complete.csv")
        ratings = mal / "rating_complete.csv"
        apply_damage(ratings, damage)
        ratings = dress(ratings, how)
        code, stdout, err = run_cli(capsys, "fit", "--method", "popular", "--ratings", ratings, "--catalog", catalog,
                                    "--out", work / "recommender")
        check_outcome(code, stdout, err, [work / "recommender"])
        if not damage:  # the same ratings, however saved: always read, always the same
            assert code == 0, err
            pd.testing.assert_frame_equal(load_ratings(ratings), plain)
