"""The audit trail exported as CSV or JSON, streamed: every matching event with the hashes,
enough to re-check the chain elsewhere."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import (
    StreamingHttpResponse,
)
from django.utils import timezone
from django.utils.http import content_disposition_header

from registry.downloads import JSON_TYPE
from registry.models import AuditEvent

CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

EXPORT_COLUMNS = (
    "sequence",
    "created_at",
    "actor",
    "actor_user",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "model_name",
    "details",
    "previous_hash",
    "hash",
)
EXPORT_BATCH = 2000


def export_record(event: AuditEvent) -> dict[str, Any]:
    """Everything the hash covers, and the hashes: enough to re-check the chain elsewhere."""
    return {**event.content(), "previous_hash": event.previous_hash, "hash": event.hash}


def _csv_cell(value: Any) -> str:
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    else:
        text = "" if value is None else str(value)
    # A spreadsheet would run a cell starting like a formula; the JSON export is verbatim.
    return "'" + text if text.startswith(CSV_FORMULA_PREFIXES) else text


class _Echo:
    """A file-like object whose write() hands the line back, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def _export_filename(extension: str) -> str:
    return f"aegis-audit-{timezone.now():%Y%m%dT%H%M%SZ}.{extension}"


def csv_export(events: QuerySet[AuditEvent]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(EXPORT_COLUMNS)
        for event in events.iterator(chunk_size=EXPORT_BATCH):
            record = export_record(event)
            yield writer.writerow([_csv_cell(record[column]) for column in EXPORT_COLUMNS])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, _export_filename("csv"))
    return response


def json_export(events: QuerySet[AuditEvent], filters: dict[str, str]) -> StreamingHttpResponse:
    def chunks() -> Iterator[str]:
        yield '{"filters": ' + json.dumps(filters, sort_keys=True) + ', "events": ['
        separator = "\n"
        for event in events.iterator(chunk_size=EXPORT_BATCH):
            yield separator + json.dumps(export_record(event), sort_keys=True, ensure_ascii=False)
            separator = ",\n"
        yield "\n]}\n"

    response = StreamingHttpResponse(chunks(), content_type=JSON_TYPE)
    response["Content-Disposition"] = content_disposition_header(True, _export_filename("json"))
    return response
