"""One descriptive text per anime. Two templates, one pure function each:

``reference`` (the default), exactly as the reference method (METHOD.md section 1):

    {Name} is a {Type, "TV" -> "TV Show"}.
    Synopsis: {synopsis}
    It was produced by {Producers} and it is from {Studios} Studio.
    Its source is {Source}.
    It premiered in {Premiered}.
    Its genres are {Genres}

``fields-first`` (issue 10): the short fields first, so that truncation at max_seq_length cuts
the end of the synopsis instead of the genres (at 256 tokens the reference template loses its
last sentence, the genres, on 44% of the shared catalog); producers, often a long list, last:

    {Name} is a {Type} from {Studios} Studio. Its genres are {Genres}.
    Its source is {Source}. It premiered in {Premiered}.
    Synopsis: {synopsis}
    It was produced by {Producers}.

Cleaning: non-printable characters are dropped, then every run of whitespace becomes one
space (so the six template lines join into one line; the tokenizer sees the same words).
"Non-printable" is Python's Unicode notion (``str.isprintable``), so titles such as
"Madoka★Magica" keep their letters.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

UNKNOWN = "Unknown"
# Kaggle's stand-in texts for "no synopsis": such rows are dropped like empty ones.
SYNOPSIS_PLACEHOLDERS = ("no synopsis has been added", "no synopsis information has been added")

_WHITESPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Drop non-printable characters (whitespace kept) and collapse whitespace runs to one space."""
    text = "".join(ch for ch in text if ch.isprintable() or ch.isspace())
    return _WHITESPACE.sub(" ", text).strip()


def _known(value) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    s = str(value).strip()
    return bool(s) and s != UNKNOWN and s.lower() != "nan"


def describe(row, skip_unknown: bool = False) -> str:
    """The description of one catalog row (a mapping with the Kaggle column names + ``synopsis``).

    With ``skip_unknown`` a sentence whose field is "Unknown"/missing is left out instead of
    being written as e.g. "It premiered in Unknown."; the reference writes every sentence.
    """
    name, kind = row["Name"], row["Type"]
    kind = "TV Show" if kind == "TV" else kind
    if not skip_unknown:
        text = (
            f"{name} is a {kind}.\n"
            f"Synopsis: {row['synopsis']}\n"
            f"It was produced by {row['Producers']} and it is from {row['Studios']} Studio.\n"
            f"Its source is {row['Source']}.\n"
            f"It premiered in {row['Premiered']}.\n"
            f"Its genres are {row['Genres']}\n"
        )
        return clean_text(text)
    parts = [f"{name} is a {kind}." if _known(row["Type"]) else f"{name}."]
    parts.append(f"Synopsis: {row['synopsis']}")
    producers, studios = _known(row["Producers"]), _known(row["Studios"])
    if producers and studios:
        parts.append(f"It was produced by {row['Producers']} and it is from {row['Studios']} Studio.")
    elif producers:
        parts.append(f"It was produced by {row['Producers']}.")
    elif studios:
        parts.append(f"It is from {row['Studios']} Studio.")
    parts += _sentences(row, _known, ("Source", "Its source is {}."), ("Premiered", "It premiered in {}."),
                        ("Genres", "Its genres are {}"))
    return clean_text("\n".join(parts))


def clean_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Every text field through :func:`clean_text`: text from data files is data, so no control
    character (a terminal escape, a carriage return in a title) survives into the catalog."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(lambda v: clean_text(v) if isinstance(v, str) else v)
    return out


def _text(values: pd.Series) -> pd.Series:
    """Stripped text with '' for missing values, whatever the column's dtype (a column that a broken
    CSV row left all-missing comes back as float)."""
    return pd.Series([v.strip() if isinstance(v, str) else ("" if pd.isna(v) else str(v).strip()) for v in values],
                     index=values.index, dtype=object)


def _sentences(row, has, *templates: tuple[str, str]) -> list[str]:
    """The sentences (field, format) whose field ``has`` accepts, in order."""
    return [text.format(row[field]) for field, text in templates if has(row[field])]


def describe_fields_first(row, skip_unknown: bool = False) -> str:
    """The ``fields-first`` description of one catalog row (see the module docstring)."""
    # Without skip_unknown every sentence is written, "Unknown" and all, as the reference does.
    has = _known if skip_unknown else (lambda value: True)
    name, kind = row["Name"], row["Type"]
    kind = "TV Show" if kind == "TV" else kind
    studio = f" from {row['Studios']} Studio" if has(row["Studios"]) else ""
    parts = [f"{name} is a {kind}{studio}." if has(row["Type"]) else f"{name}{' is' + studio if studio else ''}."]
    parts += _sentences(row, has, ("Genres", "Its genres are {}."), ("Source", "Its source is {}."),
                        ("Premiered", "It premiered in {}."))
    parts.append(f"Synopsis: {row['synopsis']}")
    parts += _sentences(row, has, ("Producers", "It was produced by {}."))
    return clean_text("\n".join(parts))


TEMPLATES = {"reference": describe, "fields-first": describe_fields_first}
DEFAULT_TEMPLATE = "reference"
TEMPLATE_COLUMN = "description_template"  # in the catalog: which template wrote each description


def check_template(template: str) -> str:
    if template not in TEMPLATES:
        from .errors import AnirecError

        raise AnirecError(f"--template {template!r}: choose one of {', '.join(TEMPLATES)}.")
    return template


def describe_rows(records: list[dict], template: str = DEFAULT_TEMPLATE, skip_unknown: bool = False) -> list[str]:
    """Descriptions of catalog rows (dicts) in one template."""
    fn = TEMPLATES[check_template(template)]
    # A comprehension over dict rows: the template is per-row string work, ~10x faster than df.apply.
    return [fn(r, skip_unknown) for r in records]


def build_descriptions(frame: pd.DataFrame, skip_unknown: bool = False,
                       template: str = DEFAULT_TEMPLATE) -> tuple[pd.DataFrame, dict]:
    """Add a ``description`` column; rows without a synopsis or a Name are dropped and counted."""
    frame = clean_text_columns(frame)
    s = _text(frame["synopsis"])
    empty = s == ""
    placeholder = ~empty & s.str.lower().str.startswith(SYNOPSIS_PLACEHOLDERS)
    # A blank Name would be written as "nan is a TV Show" and can never be asked for by title.
    no_name = ~(empty | placeholder) & (_text(frame["Name"]) == "")
    kept = frame[~(empty | placeholder | no_name)].copy()
    kept["description"] = describe_rows(kept.to_dict("records"), template, skip_unknown)
    dropped = {"no synopsis": int(empty.sum()), "placeholder synopsis": int(placeholder.sum()), "no name": int(no_name.sum())}
    return kept.reset_index(drop=True), dropped


def length_summary(lengths: np.ndarray) -> dict:
    q = np.percentile(lengths, [50, 90, 99]) if len(lengths) else [0, 0, 0]
    return {
        "min": int(np.min(lengths)) if len(lengths) else 0,
        "p50": int(q[0]),
        "p90": int(q[1]),
        "p99": int(q[2]),
        "max": int(np.max(lengths)) if len(lengths) else 0,
        "mean": float(np.mean(lengths)) if len(lengths) else 0.0,
    }


TRUNCATION_LIMITS = (128, 256, 384, 512)


def token_lengths(descriptions: list[str], tokenizer, batch_size: int = 1000) -> np.ndarray:
    """Token count of each description including special tokens, i.e. what max_seq_length cuts."""
    # Lengths beyond the model limit are the point here: silence the "longer than maximum" warning.
    tokenizer.model_max_length = int(1e9)
    out = []
    for i in range(0, len(descriptions), batch_size):
        enc = tokenizer(descriptions[i : i + batch_size], add_special_tokens=True, truncation=False)
        out.extend(len(ids) for ids in enc["input_ids"])
    return np.asarray(out, dtype=np.int64)


def truncation_table(lengths: np.ndarray, limits=TRUNCATION_LIMITS) -> dict[int, float]:
    """Share of descriptions longer than each max_seq_length (they would be cut)."""
    return {int(k): float(np.mean(lengths > k)) if len(lengths) else 0.0 for k in limits}


def save_length_histogram(lengths: np.ndarray, dest, title: str, limits=TRUNCATION_LIMITS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.hist(lengths, bins=60, color="#4c72b0")
    for k in limits:
        ax.axvline(k, color="#c44e52", ls="--", lw=1)
        ax.text(k, ax.get_ylim()[1] * 0.95, f" {k}: {np.mean(lengths > k):.0%} cut", color="#c44e52", fontsize=8, va="top")
    ax.set_xlabel("tokens per description (incl. special tokens)")
    ax.set_ylabel("anime")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
