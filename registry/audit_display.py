"""Audit events for people: the chain's cached status, each event's details as lines
(an edited field as before -> after), the link to what it is about."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from registry.audit import Action, verify_chain
from registry.models import AuditEvent

CHAIN_CACHE_KEY = "audit:chain-status"
CHAIN_CACHE_SECONDS = 300
DETAIL_VALUE_LIMIT = 500


@dataclass(frozen=True)
class ChainStatus:
    """``verify_chain()``'s answer, as cached for the audit page."""

    ok: bool
    checked: int
    reason: str
    broken_sequence: int | None
    checked_at: datetime


@dataclass(frozen=True)
class DetailLine:
    """One line of an event's details: a field's change, or a plain value."""

    label: str
    value: str = ""
    before: str = ""
    after: str = ""
    is_change: bool = False


@dataclass(frozen=True)
class AuditRow:
    event: AuditEvent
    action_label: str
    object_url: str
    details: tuple[DetailLine, ...]

    @property
    def message(self) -> str:
        """The import timeline's own sentence, when the event has one."""
        details = self.event.details
        value = details.get("message") if isinstance(details, dict) else None
        return value if isinstance(value, str) else ""

    @property
    def changes(self) -> tuple[DetailLine, ...]:
        return tuple(line for line in self.details if line.is_change)

    @property
    def other_details(self) -> tuple[DetailLine, ...]:
        return tuple(
            line for line in self.details if not line.is_change and line.label != "message"
        )


ACTION_LABELS = dict(Action.choices)


def chain_status(*, refresh: bool = False) -> ChainStatus:
    """The chain check, cached for a few minutes (it reads every event)."""
    if not refresh:
        cached = cache.get(CHAIN_CACHE_KEY)
        if isinstance(cached, ChainStatus):
            return cached
    report = verify_chain()
    status = ChainStatus(
        ok=report.ok,
        checked=report.checked,
        reason=report.reason,
        broken_sequence=report.broken.sequence if report.broken is not None else None,
        checked_at=timezone.now(),
    )
    cache.set(CHAIN_CACHE_KEY, status, CHAIN_CACHE_SECONDS)
    return status


def display_value(value: Any) -> str:
    if value is None:
        text = "—"
    elif value == "":
        text = "(empty)"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list) and all(
        isinstance(item, str | int | float) and not isinstance(item, bool) for item in value
    ):
        text = ", ".join(str(item) for item in value) if value else "(none)"
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(text) > DETAIL_VALUE_LIMIT:
        return text[: DETAIL_VALUE_LIMIT - 1] + "…"
    return text


def detail_lines(details: Any) -> tuple[DetailLine, ...]:
    """An event's details for people: each edited field as before → after, then the rest."""
    if not isinstance(details, dict):
        return (DetailLine("details", display_value(details)),) if details else ()
    lines: list[DetailLine] = []
    rest = dict(details)
    changes = rest.pop("changes", None)
    if isinstance(changes, dict) and all(
        isinstance(change, dict) and {"before", "after"} <= change.keys()
        for change in changes.values()
    ):
        for field, change in changes.items():
            lines.append(
                DetailLine(
                    str(field),
                    before=display_value(change["before"]),
                    after=display_value(change["after"]),
                    is_change=True,
                )
            )
    elif changes is not None:
        rest["changes"] = changes
    if "before" in rest and "after" in rest:  # a status change
        lines.append(
            DetailLine(
                "status",
                before=display_value(rest.pop("before")),
                after=display_value(rest.pop("after")),
                is_change=True,
            )
        )
    lines.extend(DetailLine(str(key), display_value(value)) for key, value in rest.items())
    return tuple(lines)


def _object_url(event: AuditEvent) -> str:
    try:
        if event.object_type == "version" and event.object_repr.startswith(f"{event.model_name} "):
            number = event.object_repr[len(event.model_name) + 1 :]
            return reverse("registry:version", args=[event.model_name, number])
        if event.object_type == "model" and event.model_name:
            return reverse("registry:model", args=[event.model_name])
        if event.object_type == "import" and event.object_id.isdigit():
            return reverse("imports:detail", args=[int(event.object_id)])
    except NoReverseMatch:
        pass
    return ""


def audit_row(event: AuditEvent) -> AuditRow:
    return AuditRow(
        event=event,
        action_label=ACTION_LABELS.get(event.action, event.action),
        object_url=_object_url(event),
        details=detail_lines(event.details),
    )
