"""The pages' forms, bound to API input: the API validates and filters exactly as they do."""

from __future__ import annotations

from typing import Any

from django import forms

from api import schemas
from imports.forms import ImportForm
from registry.forms import EARLIEST_DATE, LATEST_DATE, AuditFilterForm, RegistryFilterForm


class ApiModelFilterForm(RegistryFilterForm):
    """The registry page's filters; an API caller may name a license, task or author that no
    model has (the answer is then empty) instead of picking from the page's lists."""

    license = forms.CharField(label="License", required=False, max_length=100)  # type: ignore[assignment]
    task = forms.CharField(label="Task", required=False, max_length=100)  # type: ignore[assignment]
    author = forms.CharField(label="Author", required=False, max_length=100)  # type: ignore[assignment]

    FILTERS = ("q", "license", "task", "author", "tag")  # paging is the API's own

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Skip the page's queries for its choice lists: free text needs none.
        forms.Form.__init__(self, *args, **kwargs)


def bound_import_form(payload: schemas.ImportIn) -> ImportForm:
    """The import form, filled in as a person would (one pattern per line)."""
    return ImportForm(
        {
            "model_name": payload.model_name,
            "version": payload.version,
            "revision": payload.revision,
            "include": "\n".join(payload.include),
            "exclude": "\n".join(payload.exclude),
            "upload_s3": "true" if payload.upload_s3 else "false",
            "register": "true" if payload.register_version else "false",
        }
    )


def bound_audit_form(filters: schemas.AuditQuery) -> AuditFilterForm | None:
    """The audit page's filter form, or None when the dates leave no day to match.

    The page refuses dates outside 1970-9998 and an end before the start; for the API such a
    range simply matches nothing, and dates beyond those bounds are clamped to them.
    """
    start, end = filters.date_from, filters.date_to
    if (start and start > LATEST_DATE) or (end and end < EARLIEST_DATE):
        return None
    if start and start < EARLIEST_DATE:
        start = EARLIEST_DATE
    if end and end > LATEST_DATE:
        end = LATEST_DATE
    if start and end and start > end:
        return None
    return AuditFilterForm(
        {
            "actor": filters.actor,
            "action": filters.action or "",
            "model": filters.model,
            "from": start.isoformat() if start else "",
            "to": end.isoformat() if end else "",
        }
    )
