"""Table rows of the busiest list pages, written by string formatting instead of template loops.

``html_rows`` escapes every value as Django's ``escape`` does (``html.escape``, quotes too),
except values already marked safe (built with ``format_html``): the same output as
``format_html_join`` for a fraction of its cost per cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from django.utils.safestring import SafeData, SafeString, mark_safe


def _cell(value: Any) -> str:
    return str(value) if isinstance(value, SafeData) else escape(str(value))


def html_rows(template: str, rows: Iterable[Sequence[Any]]) -> SafeString:
    """``template`` (``{}`` per value) for each row, joined by newlines, escaped."""
    return mark_safe(  # noqa: S308 - every value is escaped or was already safe
        "\n".join(template.format(*(_cell(value) for value in row)) for row in rows)
    )
