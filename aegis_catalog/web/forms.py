"""Query-string forms every list page shares: unknown or repeated parameters refused, errors in
words, one page number field, and a page past the end as a 404 that says how many there are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from django import forms
from django.core.paginator import EmptyPage, Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from aegis_catalog.web.responses import error_page

MAX_QUERY_LENGTH = 200
MAX_PAGE = 10_000
PAGE_SIZES = (10, 25, 50, 100)


@dataclass(frozen=True)
class Select:
    """A choice field of a list page's filter form, written as a ``<select>`` by ``html``:
    string formatting costs a fraction of Django's widget templates (one template per
    option), which the busiest pages would render on every request."""

    name: str
    label: str
    options: tuple[tuple[str, str, bool], ...]  # value, text, selected

    @property
    def html(self) -> SafeString:
        """``<select name id>`` with its options, the chosen one selected (escaped)."""
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            ((value, " selected" if chosen else "", text) for value, text, chosen in self.options),
        )
        return format_html(
            '<select name="{}" id="id_{}">{}</select>', self.name, self.name, options
        )


def select_of(form: forms.Form, name: str) -> Select:
    field = form.fields[name]
    chosen = form[name].value()
    chosen = "" if chosen is None else str(chosen)
    options = tuple(
        (str(value), str(text), str(value) == chosen)
        for value, text in field.choices  # type: ignore[attr-defined]
    )
    return Select(name, str(field.label or name), options)


class UnknownParameters(ValueError):
    """The query string has parameters this page does not know."""


def reject_unknown_parameters(query: QueryDict, allowed: set[str]) -> None:
    """Raise UnknownParameters for a parameter name the page does not take, or a repeated one."""
    unknown = sorted(name for name in query if name not in allowed)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise UnknownParameters(
            f"Unknown query parameter {shown}; this page takes "
            f"{', '.join(sorted(allowed)) or 'none'}."
        )
    repeated = sorted(name for name in query if len(query.getlist(name)) > 1)
    if repeated:
        raise UnknownParameters(f"Query parameter {repeated[0][:40]!r} is given more than once.")


def form_errors_text(form: forms.Form) -> str:
    """All errors of a form in one sentence-like line, for a 400 page."""
    parts = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else None
        parts.append(f"{label or name}: {' '.join(str(error) for error in errors)}")
    return "; ".join(parts)


def per_page_field(sizes: tuple[int, ...] = PAGE_SIZES) -> forms.TypedChoiceField:
    """The optional ``per_page`` of a list page: one of ``sizes``, as an int (None: default)."""
    return forms.TypedChoiceField(
        label="Per page",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[(str(size), str(size)) for size in sizes],
    )


class PageForm(forms.Form):
    page = forms.IntegerField(label="Page", required=False, min_value=1, max_value=MAX_PAGE)

    FIELDS = {"page"}


def page_or_404(paginator: Paginator, number: int) -> Page:
    """One page of a list; a page past the end is a 404 that says how many there are."""
    try:
        return paginator.page(number)
    except EmptyPage:
        raise Http404(
            f"There is no page {number}: there are {paginator.num_pages} page(s)."
        ) from None


FormT = TypeVar("FormT", bound=forms.Form)


def query_form(request: HttpRequest, form_class: type[FormT]) -> FormT | HttpResponse:
    """The page's GET parameters bound to ``form_class`` and valid, or the 400 page saying
    which parameter is unknown, repeated or invalid. ``form_class.FIELDS`` names the allowed
    parameters."""
    try:
        reject_unknown_parameters(request.GET, form_class.FIELDS)  # type: ignore[attr-defined]
    except UnknownParameters as error:
        return error_page(request, 400, "Invalid request", str(error))
    form = form_class(request.GET)
    if not form.is_valid():
        return error_page(request, 400, "Invalid request", form_errors_text(form))
    return form
