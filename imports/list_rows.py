"""The rows of the imports list, worked out once in Python: the template only prints them (the
list is the page people keep open, so each request should cost little)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import quote

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from aegis_catalog.web.html import html_rows
from imports.models import ImportRequest, Stage

ROW_HTML = (
    '<tr><td><a href="{}">#{}</a></td><td>{}<span class="muted">@{}</span></td><td>{}</td>'
    '<td><span class="status status-{}">{}</span></td><td>{}</td><td>{}</td>'
    '<td><time datetime="{}">{}</time></td><td class="num">{}</td></tr>'
)
# The columns the list reads (ImportRequest.objects.values(*LIST_COLUMNS)).
LIST_COLUMNS = (
    "id", "repo_id", "revision", "commit", "model_name", "version", "status", "stage", "actor",
    "created_at", "started_at", "finished_at", "model_version__version",
    "model_version__model__name",
)  # fmt: skip
STATUS_LABELS = dict(ImportRequest.Status.choices)
STAGE_LABELS = dict(Stage.choices)


def duration_of(item: Mapping[str, Any], now: datetime) -> str:
    if item["started_at"] is None:
        return "—"
    end = item["finished_at"] or now
    return f"{max(0.0, (end - item['started_at']).total_seconds()):.1f} s"


def rows_html(items: Iterable[Mapping[str, Any]]) -> SafeString:
    """One table row per import (``LIST_COLUMNS`` values), escaped: links, labels and times as
    they are shown (the site's time zone)."""
    detail = reverse("imports:detail", args=[0]).removesuffix("0/")
    registry = reverse("registry:list")
    zone = timezone.get_current_timezone()
    now = timezone.now()
    return html_rows(ROW_HTML, (_cells(item, detail, registry, zone, now) for item in items))


def _cells(
    item: Mapping[str, Any], detail: str, registry: str, zone: tzinfo, now: datetime
) -> tuple[Any, ...]:
    name, version = item["model_version__model__name"], item["model_version__version"]
    if name is not None and version is not None:
        url = f"{registry}{quote(name)}/{quote(version, safe='+')}/"
        into: Any = format_html('<a href="{}">{} {}</a>', url, name, version)
    else:
        into = f"{item['model_name']} {item['version']}"
    created = timezone.localtime(item["created_at"], zone)
    return (
        f"{detail}{item['id']}/", item["id"], item["repo_id"],
        item["commit"][:7] if item["commit"] else item["revision"], into,
        item["status"], STATUS_LABELS.get(item["status"], item["status"]),
        STAGE_LABELS.get(item["stage"], item["stage"]) or "—", item["actor"],
        created.isoformat(), created.strftime("%Y-%m-%d %H:%M"), duration_of(item, now),
    )  # fmt: skip
