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


class TokenRefused(Exception):
    """The token cannot be created or revoked as asked; the message says why."""


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    secret: str  # shown to the user once, never stored


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _token_repr(token: ApiToken) -> str:
    return f"API token {token.prefix}… ({token.name})"


@transaction.atomic
def create_token(user: User, name: str) -> CreatedToken:
    """A new token for ``user``: 256 random bits, stored as their sha256."""
    name = name.strip()
    if not name:
        raise TokenRefused("Give the token a name, so you can tell it apart later.")
    # One creation at a time per user, so the limit holds under concurrent requests.
    User.objects.select_for_update().filter(pk=user.pk).first()
    if ApiToken.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_ACTIVE_TOKENS:
        raise TokenRefused(
            f"You already have {MAX_ACTIVE_TOKENS} active tokens; revoke one you no longer use."
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=secret[:PREFIX_LENGTH], token_hash=hash_token(secret)
    )
    audit.record(
        Action.API_TOKEN_CREATED,
        actor=user.get_username(),
        user=user,
        object_type="api_token",
        object_id=token.pk,
        object_repr=_token_repr(token),
        details={"name": token.name, "prefix": token.prefix},
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
        details={"name": token.name, "prefix": token.prefix, "owner": token.user.get_username()},
    )
    return token


def authenticate_token(secret: str) -> User | None:
    """The active user of an active token, or None (unknown, revoked, or user deactivated)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=hash_token(secret), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
