"""The rows of the imports list, worked out once in Python: the template only prints them (the
list is the page people keep open, so each request should cost little)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from aegis_catalog.web.html import html_rows
from imports.models import ImportRequest, Stage


@dataclass(frozen=True)
class ImportRow:
    pk: int
    url: str
    repo_id: str
    at: str  # the commit's first 7 characters, else the revision asked for
    into: str  # "<model> <version>"
    into_url: str  # the version's provenance page, once registered
    status: str
    status_label: str
    stage_label: str
    actor: str
    created_iso: str
    created_label: str
    duration: str


ROW_HTML = (
    '<tr><td><a href="{}">#{}</a></td><td>{}<span class="muted">@{}</span></td><td>{}</td>'
    '<td><span class="status status-{}">{}</span></td><td>{}</td><td>{}</td>'
    '<td><time datetime="{}">{}</time></td><td class="num">{}</td></tr>'
)


def rows_html(rows: Iterable[ImportRow]) -> SafeString:
    """The table's rows (escaped): string formatting, not a template loop."""
    return html_rows(
        ROW_HTML,
        (
            (
                row.url, row.pk, row.repo_id, row.at,
                format_html('<a href="{}">{}</a>', row.into_url, row.into)
                if row.into_url else row.into,
                row.status, row.status_label, row.stage_label, row.actor, row.created_iso,
                row.created_label, row.duration,
            )
            for row in rows
        ),
    )  # fmt: skip


# The columns the list reads (ImportRequest.objects.values(*LIST_COLUMNS)).
LIST_COLUMNS = (
    "id", "repo_id", "revision", "commit", "model_name", "version", "status", "stage", "actor",
    "created_at", "started_at", "finished_at", "model_version__version",
    "model_version__model__name",
)  # fmt: skip
STATUS_LABELS = dict(ImportRequest.Status.choices)
STAGE_LABELS = dict(Stage.choices)


def duration_of(item: Mapping[str, Any], now: datetime) -> float | None:
    if item["started_at"] is None:
        return None
    end = item["finished_at"] or now
    return max(0.0, (end - item["started_at"]).total_seconds())


def import_rows(items: Iterable[Mapping[str, Any]]) -> list[ImportRow]:
    """One row per import (``LIST_COLUMNS`` values): links, labels and times as they are shown
    (the site's time zone)."""
    detail = reverse("imports:detail", args=[0]).removesuffix("0/")
    registry = reverse("registry:list")
    zone = timezone.get_current_timezone()
    now = timezone.now()
    rows = []
    for item in items:
        name, version = item["model_version__model__name"], item["model_version__version"]
        registered = name is not None and version is not None
        created = timezone.localtime(item["created_at"], zone)
        seconds = duration_of(item, now)
        rows.append(
            ImportRow(
                pk=item["id"],
                url=f"{detail}{item['id']}/",
                repo_id=item["repo_id"],
                at=item["commit"][:7] if item["commit"] else item["revision"],
                into=f"{name} {version}"
                if registered
                else f"{item['model_name']} {item['version']}",
                into_url=f"{registry}{quote(name)}/{quote(version, safe='+')}/"
                if registered
                else "",
                status=item["status"],
                status_label=STATUS_LABELS.get(item["status"], item["status"]),
                stage_label=STAGE_LABELS.get(item["stage"], item["stage"]) or "—",
                actor=item["actor"],
                created_iso=created.isoformat(),
                created_label=created.strftime("%Y-%m-%d %H:%M"),
                duration=f"{seconds:.1f} s" if seconds is not None else "—",
            )
        )
    return rows
