"""Issue 19, inputs: ratings files as people save them are read, one rule judges every format,
paths stay paths, the catalog keeps numbers as numbers, and every usage error is one line.

Bugs 7, 8, 9, 10, 11, 21, 22, 23 and typer's usage-error box, numbered as in the issue; each
test failed before its fix.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anirec.data import load_ratings
from anirec.errors import AnirecError

from helpers import expect_user_error, run_cli
from test_reliability import one_error_line, tiny  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ 7, 9, 21, 22: ratings files as people save them


def _with_bom(plain: bytes, path: Path) -> Path:
    path.write_bytes(b"\xef\xbb\xbf" + plain)  # Excel's "CSV UTF-8"
    return path


def _spaced(plain: bytes, path: Path) -> Path:
    path.write_bytes(plain.replace(b",", b", "))  # `user_id, anime_id, rating` and `1, 2, 9`
    return path


def _gzipped(plain: bytes, path: Path) -> Path:
    path = path.with_name(path.name + ".gz")
    path.write_bytes(gzip.compress(plain))
    return path


def _huge_extra_field(plain: bytes, path: Path) -> Path:
    lines = plain.rstrip(b"\n").split(b"\n")
    rows = [lines[0] + b",review"] + [line + b",ok" for line in lines[1:]]
    rows[len(rows) // 2] = rows[len(rows) // 2][:-2] + b"x" * 3_000_000  # one 3 MB review mid-file
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


def _quoted_line_break(plain: bytes, path: Path) -> Path:
    lines = plain.rstrip(b"\n").split(b"\n")
    rows = [lines[0] + b",review"] + [line + b',"fine"' for line in lines[1:]]
    rows[5] = rows[5][:-6] + b'"two\nlines"'
    path.write_bytes(b"\r\n".join(rows) + b"\r\n")
    return path


@pytest.mark.parametrize("dress", [_with_bom, _spaced, _gzipped, _huge_extra_field, _quoted_line_break],
                         ids=["bom", "spaced-header", "gzip", "huge-extra-field", "quoted-line-break-crlf"])
def test_ratings_saved_in_common_ways_are_read(tiny, tmp_path, capsys, dress):
    plain = tiny / "rating_complete.csv"
    expected = load_ratings(plain)
    path = dress(plain.read_bytes(), tmp_path / "ratings.csv")
    pd.testing.assert_frame_equal(load_ratings(path), expected)
    code, out, err = run_cli(capsys, "build", "--data", tiny, "--out", tmp_path / "c.parquet", "--ratings", path)
    assert code == 0, err
    assert f"ratings  {len(expected):>7,}" in out


def test_a_bad_row_in_a_gzipped_file_is_named_like_in_a_plain_one(tiny, tmp_path, capsys):
    lines = (tiny / "rating_complete.csv").read_bytes().split(b"\n")
    lines[9] = b"1,abc,9"
    path = tmp_path / "ratings.csv.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines)))
    line = one_error_line(expect_user_error(capsys, "build", "--data", tiny, "--out", tmp_path / "c.parquet",
                                            "--ratings", path))
    assert f"{path}, row 10" in line and "anime_id 'abc' is not an integer" in line, line
    assert "\\x" not in line and "\ufffd" not in line  # no compressed bytes in the message


# ------------------------------------------------------------------ 8: one rule for CSV and parquet


def _save(frame: pd.DataFrame, fmt: str, tmp_path: Path) -> Path:
    path = tmp_path / f"ratings.{fmt}"
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_one_rule_for_csv_and_parquet_ratings(tmp_path, fmt):
    good = pd.DataFrame({"user_id": [1, 2, 3, 4], "anime_id": [5, 6, 7, 8], "rating": [9, 10, 1, 7]})
    expected = good.astype({"user_id": np.int32, "anime_id": np.int32, "rating": np.int8})
    # whole numbers written as floats (9.0, what a spreadsheet saves) are ratings in both formats
    floats = good.astype({"rating": float, "anime_id": float})
    pd.testing.assert_frame_equal(load_ratings(_save(floats, fmt, tmp_path)), expected)
    row = 3 if fmt == "csv" else 2  # CSV: the file's line (header = 1); parquet: the row, from 1
    for column, value, says in [("user_id", -4, "user_id -4 is out of range"), ("anime_id", -1, "anime_id -1 is out of range"),
                                ("anime_id", 2**31, f"anime_id {2**31} is out of range"),
                                ("rating", 11, "rating 11 is outside 1-10"), ("rating", 0, "rating 0 is outside 1-10"),
                                ("rating", 9.5, "9.5")]:
        bad = good.astype({column: type(value)}) if isinstance(value, float) else good.astype({column: np.int64})
        bad.loc[1, column] = value
        path = _save(bad, fmt, tmp_path)
        with pytest.raises(AnirecError) as exc:
            load_ratings(path)
        message = str(exc.value)
        assert message.startswith(f"{path}, row {row}") and says in message, message
        assert value != 9.5 or "is not an integer" in message


# ------------------------------------------------------------------ 10: a path is a path


def test_a_mistyped_local_path_is_not_taken_for_a_hub_id(tiny, tmp_path, monkeypatch, capsys):
    import anirec.data

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()

    def no_hub(spec, what):
        raise AssertionError(f"{spec!r} was looked up on the Hugging Face hub")

    monkeypatch.setattr(anirec.data, "_load_hf", no_hub)
    for value in ("sub/ratngs.csv", "sub/ratings", "elsewhere/ratings.parquet", "elsewhere/ratings.csv.gz"):
        with pytest.raises(AnirecError, match=f"^{value}: ratings file not found"):
            load_ratings(value)
    line = one_error_line(expect_user_error(capsys, "build", "--data", tiny, "--out", tmp_path / "c.parquet",
                                            "--ratings", "sub/ratngs.csv"))
    assert "sub/ratngs.csv: ratings file not found" in line
    with pytest.raises(AnirecError, match="^sub/catalog: no such file or folder"):
        anirec.data.load_catalog("sub/catalog")

    # What can only be a hub id still goes to the hub: hf:..., or OWNER/NAME with nothing local of that name.
    asked = []
    frame = pd.DataFrame({"user_id": [1], "anime_id": [2], "rating": [9]})
    monkeypatch.setattr(anirec.data, "_load_hf", lambda spec, what: asked.append(spec) or frame)
    load_ratings("owner/dataset")
    load_ratings("hf:sub/dataset")
    assert asked == ["owner/dataset", "hf:sub/dataset"]


# ------------------------------------------------------------------ 11: numbers stay numbers


def test_the_catalog_stores_score_members_and_popularity_as_numbers(tiny, tmp_path, capsys):
    from anirec.build import build_catalog
    from anirec.serving import result_frame

    anime = pd.read_csv(tiny / "anime.csv", dtype=str, keep_default_na=False)
    anime["Score"] = ["8.78", "Unknown", "6.3", "10.0", "7.1", "9.05", "5", "Unknown"]
    anime["Members"] = ["1251960", "25", "300", "7", "Unknown", "99999", "100", "2"]
    anime["Popularity"] = ["1", "900", "20", "3000", "45", "2", "700", "Unknown"]
    anime.to_csv(tiny / "anime.csv", index=False)
    build_catalog(tiny, out := tmp_path / "c.parquet")
    stored = pd.read_parquet(out)
    for column in ("Score", "Members", "Popularity"):
        assert stored[column].dtype == np.float64, (column, stored[column].dtype)
    assert stored["Score"].iloc[0] == 8.78 and np.isnan(stored["Score"].iloc[1]) and np.isnan(stored["Members"].iloc[4])
    assert stored.sort_values("Members")["MAL_ID"].tolist()[:3] == [8, 4, 2]  # 2 < 7 < 25 members, not "100" < "2"
    assert stored.sort_values("Score", ascending=False)["MAL_ID"].tolist()[:2] == [4, 6]  # 10.0 before 9.05

    # What recommend shows is unchanged: the same table as from a catalog that kept them as text.
    as_text = stored.assign(**{c: anime[c].to_numpy() for c in ("Score", "Members", "Popularity")})
    rows = np.arange(len(stored))
    pd.testing.assert_frame_equal(result_frame(stored, rows), result_frame(as_text, rows))


def test_the_shared_catalog_descriptions_are_unchanged(mal_catalog):
    """Numbers as numbers must not touch one description: the committed results' hash still holds."""
    from anirec.io import hash_strings

    catalog, _ = mal_catalog
    for results in ("mal-shared", "mal-2016"):
        meta = json.loads((ROOT / "eval" / "results" / results / "meta.json").read_text())
        assert hash_strings(catalog["description"].astype(str).tolist()) == meta["data"]["catalog"]["description_hash"]
    assert catalog["Score"].dtype == np.float64 and catalog["Members"].max() > 1_000_000


# ------------------------------------------------------------------ 23: a corrupt cached fp32 export under onnx-int8


def test_corrupt_cached_export_under_int8_is_one_line(tiny, tiny_model_path, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from anirec import backends as B
    from anirec.build import build_catalog

    catalog = build_catalog(tiny, tmp_path / "c.parquet").out
    folder = B.export_dir(str(tiny_model_path), tmp_path / "cache")
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"not onnx")  # what a full disk or a killed copy leaves
    err = expect_user_error(capsys, "embed", "--model", tiny_model_path, "--catalog", catalog,
                            "--cache-dir", tmp_path / "cache", "--backend", "onnx-int8", "--no-progress")
    *progress, line = err.strip().splitlines()  # ("quantizing to int8 -> ..." comes first)
    assert line.startswith("anirec: error:") and not any("error" in p or "Error" in p for p in progress), err
    assert "--backend onnx-int8" in line and f"delete {folder} to export again" in line, line


# ------------------------------------------------------------------ typer's usage errors


@pytest.mark.parametrize("args, says", [
    (["fit", "--method", "ease"], "Missing option '--ratings'"),
    (["evaluate", "-k", "ten"], "'-k'"),
    (["recommend", "--id", "x1"], "'--id'"),
    (["no-such-command"], "No such command 'no-such-command'"),
    (["build", "--data", "d", "--out", "c.parquet", "--histogram", "h.png"], "--histogram needs --tokenizer"),
    (["build", "--data", "d", "--no-such-flag"], "No such option: --no-such-flag"),
])
def test_usage_errors_are_one_line_and_exit_2(capsys, args, says):
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and not out, (code, out, err)
    line = one_error_line(err)
    assert says in line and "--help" in line, line
    assert not any(ch in err for ch in "╭│╰"), err


def test_help_is_still_help(capsys):
    code, out, err = run_cli(capsys, "--help")
    assert code == 0 and "Usage: anirec" in out and "fit" in out
    code, out, err = run_cli(capsys, "fit", "--help")
    assert code == 0 and "--ratings" in out
    code, out, err = run_cli(capsys)  # no arguments: the overview, as before
    assert code == 2 and "Usage: anirec" in out + err
