"""Who calls the API: a bearer token (scripts, CI, model loaders) or the browser's session.

A request with an ``Authorization`` header is judged by its token alone: a wrong, revoked,
expired or malformed token is a 401 even when a session cookie came along, and a read-only token
gets 403 for any method but a safe one, on every route, whatever its user's groups. Without the
header the session counts, and then unsafe methods need the CSRF token, as every form of the site
does.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest
from ninja.errors import AuthenticationError, AuthorizationError
from ninja.security import HttpBearer
from ninja.utils import check_csrf

from aegis_catalog.web.permissions import user_in_group
from api.actions import TokenNotAccepted, authenticate_token
from api.models import ApiToken

SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}


class TokenOrSession(HttpBearer):
    """``Authorization: Bearer <token>``, else the signed-in session (with CSRF on writes)."""

    def __call__(self, request: HttpRequest) -> Any:
        header = request.headers.get(self.header)
        if header is not None:
            scheme, _, secret = header.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise AuthenticationError(
                    message="Send the token as 'Authorization: Bearer <token>'."
                )
            token = self.authenticate(request, secret.strip())
            if token.read_only and request.method not in SAFE_METHODS:
                raise AuthorizationError(
                    message=f"The API token {token.prefix}… is read-only: it cannot "
                    f"{request.method} here. Use a read-write token."
                )
            request.user = token.user
            return token.user
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_active:
            raise AuthenticationError(
                message="Sign in, or send an API token as 'Authorization: Bearer <token>'."
            )
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise AuthorizationError(
                message="CSRF check failed: a signed-in browser must send the CSRF token."
            )
        return user

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken:
        try:
            return authenticate_token(token)
        except TokenNotAccepted as error:
            raise AuthenticationError(message=str(error)) from None


def require(request: HttpRequest, groups: tuple[str, ...], what: str) -> None:
    """403 unless the caller is in one of ``groups`` (superusers pass), as the pages check."""
    user: AbstractBaseUser | AnonymousUser = request.auth  # type: ignore[attr-defined]
    if not user_in_group(user, *groups):
        raise AuthorizationError(
            message=f"You need to be in the {' or '.join(groups)} group to {what}."
        )
