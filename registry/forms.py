"""Forms of the registry and audit pages. GET parameters are validated like any other input."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from aegis_catalog.web.forms import MAX_PAGE, MAX_QUERY_LENGTH, per_page_field
from registry.audit import Action
from registry.models import AuditEvent, RegisteredModel

AUDIT_PAGE_SIZES = (25, 50, 100, 200)
AUDIT_DEFAULT_PAGE_SIZE = 50
AUDIT_FORMATS = ("html", "csv", "json")
# Far enough apart for any audit trail, near enough that a day's bounds never overflow.
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(9998, 12, 31)


def _no_control_characters(value: str, what: str) -> str:
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise forms.ValidationError(f"The {what} cannot contain control characters.")
    return value


class AuditFilterForm(forms.Form):
    """The audit page's filters (GET): exact actor, action, model name, and a date range.

    Dates are whole days in the site's time zone (``TIME_ZONE``), both ends included.
    """

    actor = forms.CharField(label="Actor", required=False, max_length=300)
    action = forms.ChoiceField(
        label="Action", required=False, choices=[("", "any action"), *Action.choices]
    )
    model = forms.CharField(label="Model", required=False, max_length=100)
    page = forms.IntegerField(label="Page", required=False, min_value=1, max_value=MAX_PAGE)
    per_page = per_page_field(AUDIT_PAGE_SIZES)
    format = forms.ChoiceField(
        label="Format",
        required=False,
        choices=[(name, name) for name in AUDIT_FORMATS],
    )

    FIELDS = {"actor", "action", "model", "from", "to", "page", "per_page", "format"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # "from" is a Python keyword, so the date fields are added here rather than declared.
        for name, label in (("from", "From"), ("to", "To")):
            self.fields[name] = forms.DateField(
                label=label,
                required=False,
                input_formats=["%Y-%m-%d"],
                widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
            )

    def clean_actor(self) -> str:
        return _no_control_characters(self.cleaned_data["actor"].strip(), "actor")

    def clean_model(self) -> str:
        return _no_control_characters(self.cleaned_data["model"].strip(), "model name")

    def clean_format(self) -> str:
        return self.cleaned_data["format"] or "html"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("from", "to"):
            value = data.get(name)
            if value is not None and not EARLIEST_DATE <= value <= LATEST_DATE:
                self.add_error(
                    name, f"Use a date between {EARLIEST_DATE:%Y-%m-%d} and {LATEST_DATE:%Y-%m-%d}."
                )
        start, end = data.get("from"), data.get("to")
        if start and end and start > end:
            self.add_error("to", "The end date is before the start date.")
        return data

    @property
    def page_number(self) -> int:
        return self.cleaned_data["page"] or 1

    @property
    def page_size(self) -> int:
        return self.cleaned_data["per_page"] or AUDIT_DEFAULT_PAGE_SIZE

    @property
    def export_format(self) -> str:
        return str(self.cleaned_data["format"])

    def time_range(self) -> tuple[datetime | None, datetime | None]:
        """``[start, end)`` in the site's time zone: from midnight of ``from`` to the midnight
        after ``to``."""
        zone = timezone.get_current_timezone()
        start, end = self.cleaned_data.get("from"), self.cleaned_data.get("to")
        return (
            datetime.combine(start, time.min, tzinfo=zone) if start else None,
            datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone) if end else None,
        )

    def active_filters(self) -> dict[str, str]:
        """The filters in use, as given (for the export's header and the page's summary)."""
        data = self.cleaned_data
        shown = {name: data[name] for name in ("actor", "action", "model") if data.get(name)}
        for name in ("from", "to"):
            if data.get(name):
                shown[name] = data[name].isoformat()
        return shown

    def events(self) -> QuerySet[AuditEvent]:
        """The matching events, newest first.

        Every filter is an equality or a range on an indexed column, each index ending in the
        sequence, so both the count and the page read an index
        (see tests/registry/views/test_audit_scale.py).
        """
        data = self.cleaned_data
        queryset = AuditEvent.objects.all()
        if data["actor"]:
            queryset = queryset.filter(actor=data["actor"])
        if data["action"]:
            queryset = queryset.filter(action=data["action"])
        if data["model"]:
            queryset = queryset.filter(model_name=data["model"])
        start, end = self.time_range()
        if start is not None:
            queryset = queryset.filter(created_at__gte=start)
        if end is not None:
            queryset = queryset.filter(created_at__lt=end)
        return queryset.order_by("-sequence")


_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/-]{0,99}")


def _registry_choices(values: list[str], empty: str) -> list[tuple[str, str]]:
    return [("", empty), *((value, value) for value in values)]


class RegistryFilterForm(forms.Form):
    """Search and filters of the registry list (GET); filter values must exist in the registry."""

    q = forms.CharField(label="Search", required=False, max_length=MAX_QUERY_LENGTH)
    license = forms.ChoiceField(label="License", required=False)
    task = forms.ChoiceField(label="Task", required=False)
    author = forms.ChoiceField(label="Author", required=False)
    tag = forms.CharField(label="Tag", required=False, max_length=100)
    page = forms.IntegerField(label="Page", required=False, min_value=1, max_value=MAX_PAGE)
    per_page = per_page_field()

    FIELDS = {"q", "license", "task", "author", "tag", "page", "per_page"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One query for the three lists (the combinations are at most one per model), which
        # counts the models too: an unfiltered page needs no count query of its own.
        combinations = (
            RegisteredModel.objects.order_by()
            .values_list("license", "pipeline_tag", "author")
            .annotate(models=Count("pk"))
        )
        columns: tuple[set[str], set[str], set[str]] = (set(), set(), set())
        self.model_count = 0
        for *row, count in combinations:
            self.model_count += count
            for values, value in zip(columns, row, strict=True):
                values.add(value)
        for field, values, empty in zip(
            ("license", "task", "author"), columns, ("any license", "any task", "any author"),
            strict=True,
        ):  # fmt: skip
            choices = _registry_choices(sorted(values - {""}), empty)
            self.fields[field].choices = choices  # type: ignore[attr-defined]

    def clean_q(self) -> str:
        value: str = self.cleaned_data["q"]
        if any(ord(char) < 32 for char in value):
            raise forms.ValidationError("The search text cannot contain control characters.")
        return " ".join(value.split())

    def clean_tag(self) -> str:
        value: str = self.cleaned_data["tag"].strip()
        if value and not _TAG.fullmatch(value):
            raise forms.ValidationError(
                "A tag uses letters, digits and . _ : + / - only, starting with a letter or digit."
            )
        return value

    @property
    def filtered(self) -> bool:
        return any(self.cleaned_data[name] for name in ("q", "license", "task", "author", "tag"))

    def filter(self, queryset: QuerySet[RegisteredModel]) -> QuerySet[RegisteredModel]:
        data = self.cleaned_data
        if data["q"]:
            queryset = queryset.filter(
                Q(name__icontains=data["q"]) | Q(source_repo__icontains=data["q"])
            )
        if data["license"]:
            queryset = queryset.filter(license=data["license"])
        if data["task"]:
            queryset = queryset.filter(pipeline_tag=data["task"])
        if data["author"]:
            queryset = queryset.filter(author=data["author"])
        if data["tag"]:
            # JSON text search works on PostgreSQL and SQLite alike; the tag pattern needs no
            # JSON escaping, and the quotes make it match a whole tag.
            queryset = queryset.filter(tags__icontains=f'"{data["tag"]}"')
        return queryset


class PolicyOverrideForm(forms.Form):
    """A registry admin's reason to let one blocked import past its policy rule once."""

    reason = forms.CharField(
        min_length=3,
        max_length=1000,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why this import may break the rule; kept in the audit trail.",
    )

    def clean_reason(self) -> str:
        return _no_control_characters(
            str(self.cleaned_data["reason"]).replace("\r\n", "\n").replace("\n", " "), "reason"
        )
