"""API tokens: created and revoked by their user, each change written to the audit trail."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from api.models import ApiToken
from registry import audit
from registry.audit import Action

TOKEN_PREFIX = "aegis_"  # noqa: S105 - the visible start of every token, not a secret
PREFIX_LENGTH = 14  # "aegis_" and 8 characters of the random part: enough to tell tokens apart
MAX_ACTIVE_TOKENS = 25
# last_used_at is a hint for people, not a log: write it at most once a minute per token.
LAST_USED_RESOLUTION = timedelta(minutes=1)


# What a token's creator may choose: days until it expires (None: never).
EXPIRY_DAYS = (30, 90, 365, None)


class TokenRefused(Exception):
    """The token cannot be created or revoked as asked; the message says why."""


class TokenNotAccepted(Exception):
    """A request's token is unknown, revoked, expired or its user deactivated; says which."""


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    secret: str  # shown to the user once, never stored


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _token_repr(token: ApiToken) -> str:
    return f"API token {token.prefix}… ({token.name})"


def _token_details(token: ApiToken) -> dict[str, str | None]:
    """What the audit trail keeps about a token when it is created or revoked."""
    return {
        "name": token.name,
        "prefix": token.prefix,
        "scope": token.scope,
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
    }


@transaction.atomic
def create_token(
    user: User,
    name: str,
    *,
    scope: str = ApiToken.Scope.READ_WRITE,
    expires_in_days: int | None = None,
) -> CreatedToken:
    """A new token for ``user``: 256 random bits, stored as their sha256; read-only or not,
    expiring after ``expires_in_days`` or never."""
    name = name.strip()
    if not name:
        raise TokenRefused("Give the token a name, so you can tell it apart later.")
    if scope not in ApiToken.Scope.values:
        raise TokenRefused(f"A token's scope is one of {', '.join(ApiToken.Scope.values)}.")
    if expires_in_days not in EXPIRY_DAYS:
        raise TokenRefused("A token expires after 30, 90 or 365 days, or never.")
    # One creation at a time per user, so the limit holds under concurrent requests.
    User.objects.select_for_update().filter(pk=user.pk).first()
    # An expired token cannot be used any more, so it does not count against the limit.
    active = ApiToken.objects.filter(user=user, revoked_at__isnull=True).exclude(
        expires_at__lte=timezone.now()
    )
    if active.count() >= MAX_ACTIVE_TOKENS:
        raise TokenRefused(
            f"You already have {MAX_ACTIVE_TOKENS} active tokens; revoke one you no longer use."
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = (
        timezone.now() + timedelta(days=expires_in_days) if expires_in_days is not None else None
    )
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=secret[:PREFIX_LENGTH],
        token_hash=hash_token(secret),
        scope=scope,
        expires_at=expires_at,
    )
    audit.record(
        Action.API_TOKEN_CREATED,
        actor=user.get_username(),
        user=user,
        object_type="api_token",
        object_id=token.pk,
        object_repr=_token_repr(token),
        details=_token_details(token),
    )
    return CreatedToken(token, secret)


@transaction.atomic
def revoke_token(token: ApiToken, *, actor: User) -> ApiToken:
    """Revoke a token now; requests with it get 401 from then on."""
    if not ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    ):
        raise TokenRefused(f"{_token_repr(token)} is already revoked.")
    token.refresh_from_db()
    audit.record(
        Action.API_TOKEN_REVOKED,
        actor=actor.get_username(),
        user=actor,
        object_type="api_token",
        object_id=token.pk,
        object_repr=_token_repr(token),
        details={**_token_details(token), "owner": token.user.get_username()},
    )
    return token


def authenticate_token(secret: str) -> ApiToken:
    """The token, when it is known, not revoked, not expired and its user active; else
    TokenNotAccepted saying which (an unknown token and a revoked one read the same)."""
    token = None
    if secret.startswith(TOKEN_PREFIX) and len(secret) <= 200:
        token = (
            ApiToken.objects.select_related("user")
            .filter(token_hash=hash_token(secret), revoked_at__isnull=True)
            .first()
        )
    if token is None or not token.user.is_active:
        raise TokenNotAccepted("The API token is not valid or was revoked.")
    if token.is_expired:
        assert token.expires_at is not None
        raise TokenNotAccepted(
            f"The API token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC; create a new one."
        )
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
