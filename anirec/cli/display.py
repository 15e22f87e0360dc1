"""Text from data files shown through rich: always as data, never as markup or terminal codes."""

from __future__ import annotations

from ..descriptions import clean_text


def as_rich_text(value) -> str:
    """``value`` for a rich table cell or title: control characters (terminal escape codes) dropped
    and ``[...]`` escaped, so a title like "[bold]X[/bold]" or "[/]" prints as written."""
    from rich.markup import escape

    return escape(clean_text(str(value)))
