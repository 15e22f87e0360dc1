"""One typed loader for every setting a user writes: TOML files, ``--param key=value`` and flags.

A config is a dataclass and its annotations are the schema. :func:`from_table` checks a
TOML table's keys by name (an unknown key names the known ones) and every value against its
field's type, so ``k = "10"`` is one line naming the file, the line and what was expected,
never a TypeError deep inside a run; :func:`override` puts the command line's flags on top
with the same checks. Three rules hold for every setting, wherever it is read:

* numbers are finite: ``nan`` and ``inf`` are TOML floats, and a ``lam = nan`` EASE
  recommends nothing while looking fitted;
* a seed (:data:`Seed`) is in 0..2^32-1, the range numpy, pandas and torch all accept, so
  a bad seed fails before any work instead of halfway through a run;
* ``max_seq_length`` (:data:`Tokens`) means one thing: absent, or 0, is the model's own
  setting (stored as None), anything else a number of tokens.

Used by :mod:`anirec.evaluation.config` (eval/*.toml), :mod:`anirec.fitting` (``fit
--config``'s [method] table and ``--param``), the recommenders' ``Params`` and the
fine-tuning config. It imports nothing of anirec's but the error type: every loader sits
above it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Callable, Union

from .errors import AnirecError

SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class Range:
    """``Annotated`` metadata: the value (when not None) must lie in [lo, hi]."""

    lo: float | None = None
    hi: float | None = None
    what: str = ""  # how the message names an allowed value

    def apply(self, value, label: str):
        if value is None or (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi):
            return value
        raise AnirecError(_bad(label, value, f"expected {self.what}"))


@dataclass(frozen=True)
class ZeroIsNone:
    """``Annotated`` metadata: 0 is stored as None ("not set")."""

    def apply(self, value, label: str):
        return None if value == 0 else value


@dataclass(frozen=True)
class OneOrMany:
    """``Annotated`` metadata on a ``list[str]``: a lone string is a list of one."""

    def before(self, value):
        return [value] if isinstance(value, str) else value


Seed = Annotated[int, Range(0, SEED_MAX, f"a seed between 0 and {SEED_MAX} (2^32 - 1)")]
Tokens = Annotated[int | None, Range(0, None, "a number of tokens (0 or absent: the model's own)"), ZeroIsNone()]
Paths = Annotated[list[str], OneOrMany()]


# --------------------------------------------------------------------------- one value


def _bad(label: str, value, problem: str) -> str:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    # a flag reads "--seed -1: ...", a config key "x.toml line 3: seed = -1: ..."
    flag = label.startswith("-") and ": " not in label
    return f"{label} {shown}: {problem}." if flag else f"{label} = {shown}: {problem}."


def describe(hint) -> str:
    """What a value of type ``hint`` looks like, for messages: "a whole number", "a list of strings"."""
    hint, marks = _unwrap(hint)
    if any(isinstance(m, OneOrMany) for m in marks):
        return "a string or a list of strings"
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        parts = [describe(a) for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(parts)
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        inner = describe(item)
        return "a list" if inner == "anything" else "a list of " + _plural(inner)
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    return "anything" if hint is Any else f"a {getattr(hint, '__name__', hint)}"


def _plural(what: str) -> str:
    return {"true or false": "true/false values", "a whole number": "whole numbers", "a number": "numbers",
            "a string": "strings"}.get(what, what)


def _unwrap(hint) -> tuple[Any, tuple]:
    if typing.get_origin(hint) is Annotated:
        return hint.__origin__, tuple(hint.__metadata__)
    return hint, ()


def coerce(value, hint, label: str):
    """``value`` checked against the type ``hint`` (ints are fine where a float is expected and
    become floats); raise a one-line AnirecError starting with ``label`` otherwise."""
    base, marks = _unwrap(hint)
    for m in marks:
        if hasattr(m, "before"):
            value = m.before(value)
    try:
        value = _check(value, base, label)
    except AnirecError:
        if not marks:
            raise
        raise AnirecError(_bad(label, value, f"expected {describe(hint)}")) from None
    for m in marks:
        if hasattr(m, "apply"):
            value = m.apply(value, label)
    return value


def _check(value, hint, label: str):
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        members = typing.get_args(hint)
        if value is None and type(None) in members:
            return None
        errors = []
        for member in members:
            if member is type(None):
                continue
            try:
                return coerce(value, member, label)
            except AnirecError as exc:
                errors.append(exc)
        if len(errors) == 1:  # X | None: X's own message ("not nan or inf", a range)
            raise errors[0]
        raise AnirecError(_bad(label, value, f"expected {describe(hint)}"))
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        if not isinstance(value, list):
            raise AnirecError(_bad(label, value, f"expected {describe(hint)}"))
        try:
            return [coerce(v, item, label) for v in value]
        except AnirecError:
            raise AnirecError(_bad(label, value, f"expected {describe(hint)}")) from None
    if hint is Any:
        return value
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise AnirecError(_bad(label, value, "expected a finite number (not nan or inf)"))
        value = float(value) if ok else value
    elif isinstance(hint, type):
        ok = isinstance(value, hint)
    else:
        return value
    if not ok:
        raise AnirecError(_bad(label, value, f"expected {describe(hint)}"))
    return value


# --------------------------------------------------------------------------- a table


@cache
def field_types(cls) -> dict[str, Any]:
    """The settable fields of dataclass ``cls`` and their (resolved) type hints."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


Where = Union[str, Callable[[str], str]]


def _where(where: Where, key: str) -> str:
    return where(key) if callable(where) else where


def from_table(cls, raw: dict, where: Where, *, keys=None, noun: str = "key", base=None):
    """A ``cls`` from the TOML table ``raw``: every key known (``keys``, default: every field),
    every value of its field's type. ``where`` names the place in messages: a string, or a
    function of the key (its file and line). Fields not in ``raw`` keep their defaults, or
    ``base``'s values when given (``base`` is updated and returned)."""
    if not isinstance(raw, dict):
        raise AnirecError(f"{_where(where, '')}: expected a table of key = value settings.")
    hints = field_types(cls)
    known = list(keys) if keys is not None else list(hints)
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise AnirecError(f"{_where(where, unknown[0])}: unknown {noun} {unknown[0]!r} "
                          f"(known: {', '.join(known) or 'none'}).")
    values = {k: coerce(v, hints[k], f"{_where(where, k)}: {k}") for k, v in raw.items()}
    if base is None:
        return cls(**values)
    for k, v in values.items():
        setattr(base, k, v)
    return base


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def override(obj, flags: dict, names: dict | None = None):
    """Set the command line's ``flags`` on ``obj`` (None = not given), each checked against its
    field's type; a message names the flag (``names[key]``, else ``--key-name``)."""
    hints = field_types(type(obj))
    for key, value in flags.items():
        if value is not None:
            setattr(obj, key, coerce(value, hints[key], (names or {}).get(key) or flag_name(key)))
    return obj


# --------------------------------------------------------------------------- files


_HEADER = re.compile(r"\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
_KEY = re.compile(r"""\s*([A-Za-z0-9_\-]+|"[^"]*"|'[^']*')\s*=""")


@dataclass
class TomlFile:
    """A parsed TOML file that can say on which line a key was set."""

    path: Path
    table: dict
    text: str
    label: str  # how messages name the file ("eval/x.toml", "--config fit.toml")

    def line(self, key: str, table: str | None = None, index: int = 0) -> int | None:
        """The line of ``key = ...`` at the top (``table`` None), in ``[table]``, or in the
        ``index``-th (0-based) ``[[table]]``; None when it cannot tell."""
        return _key_lines(self.text).get((table, index, key))

    def where(self, key: str = "", table: str | None = None, index: int = 0) -> str:
        no = self.line(key, table, index) if key else None
        return f"{self.label} line {no}" if no else self.label

    def locator(self, table: str | None = None, index: int = 0) -> Callable[[str], str]:
        """``key -> "FILE line N"`` for the keys of one table (for :func:`from_table`)."""
        return lambda key: self.where(key, table, index)


@cache
def _key_lines(text: str) -> dict[tuple, int]:
    """(table, index, key) -> line number, from the file's table headers and ``key =`` lines.

    Best effort (a multi-line string that holds "x = 1" could mislead it): only messages use it."""
    out: dict[tuple, int] = {}
    table, index, seen = None, 0, {}
    for no, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header and not _KEY.match(line):
            table = header.group(2)
            index = seen.get(table, -1) + 1 if header.group(1) == "[[" else 0
            seen[table] = index
            continue
        key = _KEY.match(line)
        if key:
            out.setdefault((table, index, key.group(1).strip("\"'")), no)
    return out


def read_toml(path: str | Path, label: str | None = None, missing: str = "") -> TomlFile:
    """Read a TOML file as one-line errors: not found (``missing`` says what to do), not
    readable, not UTF-8 (the line of the first bad byte), not valid TOML."""
    path = Path(path).expanduser()
    label = label or str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AnirecError(f"{label}: file not found{' (' + missing + ')' if missing else ''}.") from None
    except OSError as exc:
        raise AnirecError(f"{label}: cannot read it ({exc.strerror or exc}).") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise AnirecError(f"{label} line {line}: byte 0x{data[exc.start]:02x} is not UTF-8; "
                          "save the file as UTF-8.") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AnirecError(f"{label}: not valid TOML ({exc}).") from None
    return TomlFile(path, table, text, label)


# --------------------------------------------------------------------------- --param


def parse_param(text: str) -> tuple[str, object]:
    """``key=value`` with a TOML value (``lam=200``, ``tfidf_weight=0.3``, ``x=true``);
    anything that is not a TOML literal is a string (``model=tfidf``). Types are checked
    later, against the method's parameters."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise AnirecError(f"--param {text!r}: expected key=value, e.g. --param lam=200.")
    try:
        return key, tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key, value.strip()
