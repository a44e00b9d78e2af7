"""The API token page: a signed-in user creates and revokes their own tokens."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from aegis_catalog.web.responses import error_page
from api.actions import (
    EXPIRY_DAYS,
    MAX_ACTIVE_TOKENS,
    CreatedToken,
    TokenRefused,
    create_token,
    revoke_token,
)
from api.models import ApiToken


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        help_text="What the token is for, e.g. “CI of ml-serving”.",
    )
    scope = forms.ChoiceField(
        label="Scope",
        choices=ApiToken.Scope.choices,
        initial=ApiToken.Scope.READ_ONLY,
        help_text="A read-only token can read what you can read and change nothing.",
    )
    expires = forms.TypedChoiceField(
        label="Expires",
        choices=[(str(days), f"in {days} days") for days in EXPIRY_DAYS if days is not None]
        + [("never", "never")],
        coerce=lambda value: None if value == "never" else int(value),
        initial="90",
        help_text="An expired token is refused; create a new one.",
    )

    def clean_name(self) -> str:
        value: str = self.cleaned_data["name"]
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise forms.ValidationError("The name cannot contain control characters.")
        return value


def _page(
    request: HttpRequest, form: TokenForm, created: CreatedToken | None = None, status: int = 200
) -> HttpResponse:
    # Active tokens first (a NULL revoked_at), newest first, on every database.
    tokens = ApiToken.objects.filter(user=cast(User, request.user)).order_by(
        F("revoked_at").desc(nulls_first=True), "-created_at", "-pk"
    )
    context: dict[str, Any] = {
        "form": form,
        "tokens": tokens,
        "created": created,
        "max_active": MAX_ACTIVE_TOKENS,
        "api_url": request.build_absolute_uri("/api/v1/"),
    }
    return render(request, "api/tokens.html", context, status=status)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """The user's tokens; POST creates one and shows its secret on this answer only."""
    if request.method == "GET":
        if request.GET:
            return error_page(
                request, 400, "Invalid request", "This page takes no query parameters."
            )
        return _page(request, TokenForm())
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        created = create_token(
            cast(User, request.user),
            form.cleaned_data["name"],
            scope=form.cleaned_data["scope"],
            expires_in_days=form.cleaned_data["expires"],
        )
    except TokenRefused as error:
        form.add_error(None, str(error))
        return _page(request, form, status=400)
    return _page(request, TokenForm(), created=created, status=201)


@require_POST
@login_required
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the user's own tokens (another user's token is a 404)."""
    token = get_object_or_404(ApiToken, pk=pk, user=cast(User, request.user))
    try:
        revoke_token(token, actor=cast(User, request.user))
    except TokenRefused as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"The token {token.prefix}… ({token.name}) is revoked.")
    return redirect("api_tokens:list")
