"""Answers every app's views give the same way."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def is_htmx(request: HttpRequest) -> bool:
    """True for a request htmx made (django-htmx's middleware sets ``request.htmx``)."""
    return bool(getattr(request, "htmx", False))


def error_page(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    """A page (or, for htmx, a fragment) that says what went wrong in words."""
    template = "error.html#message" if is_htmx(request) else "error.html"
    return render(
        request, template, {"title": title, "message": message, "status": status}, status=status
    )
