"""/account/tokens/: a signed-in user creates a token (shown once) and revokes it, audited."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from api.actions import MAX_ACTIVE_TOKENS, create_token, hash_token
from api.models import ApiToken
from registry.audit import Action, verify_chain
from registry.models import AuditEvent
from tests.factories import signed_in

pytestmark = pytest.mark.django_db

URL = "/account/tokens/"


def test_it_requires_sign_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def token_form(name: str, scope: str = "read-write", expires: str = "never") -> dict[str, str]:
    return {"name": name, "scope": scope, "expires": expires}


def test_it_is_linked_from_the_navigation(bob_client):
    assert f'href="{URL}"' in bob_client.get("/registry/").content.decode()


def test_it_creates_a_token_and_shows_it_once(bob, bob_client):
    response = bob_client.post(URL, token_form("model loader"))

    assert response.status_code == 201
    html = response.content.decode()
    shown = re.search(r'id="new-token-secret">([^<]+)<', html)
    assert shown is not None
    secret = shown.group(1)
    token = ApiToken.objects.get()
    assert (token.user, token.name) == (bob, "model loader")
    assert token.token_hash == hash_token(secret) and secret.startswith(token.prefix)
    assert "no-store" in response["Cache-Control"]
    # The next visit lists it by its prefix only.
    again = bob_client.get(URL).content.decode()
    assert secret not in again and f"{token.prefix}…" in again
    event = AuditEvent.objects.get(action=Action.API_TOKEN_CREATED)
    assert (event.actor, event.actor_user, event.details["prefix"]) == ("bob", bob, token.prefix)
    assert secret not in str(event.details)
    assert verify_chain().ok


def test_it_revokes_a_token_and_records_it(bob, bob_client):
    token = create_token(bob, "old laptop").token

    response = bob_client.post(f"{URL}{token.pk}/revoke/", follow=True)

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert "is revoked" in response.content.decode()
    event = AuditEvent.objects.get(action=Action.API_TOKEN_REVOKED)
    assert (event.actor, event.object_id) == ("bob", str(token.pk))


def test_it_records_a_revoked_tokens_scope_and_expiry(bob, bob_client):
    token = create_token(bob, "loader", scope="read-only", expires_in_days=365).token

    bob_client.post(f"{URL}{token.pk}/revoke/")

    details = AuditEvent.objects.get(action=Action.API_TOKEN_REVOKED).details
    expires_at = ApiToken.objects.get().expires_at
    assert expires_at is not None
    assert details["scope"] == "read-only"
    assert details["expires_at"] == expires_at.isoformat()
    assert details["owner"] == "bob"


def test_it_does_not_revoke_another_users_token(alice, bob_client):
    token = create_token(alice, "ci").token

    response = bob_client.post(f"{URL}{token.pk}/revoke/")

    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_it_refuses_get_on_revoke(bob, bob_client):
    token = create_token(bob, "ci").token

    assert bob_client.get(f"{URL}{token.pk}/revoke/").status_code == 405


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "This field is required"), ("x" * 101, "at most 100"), ("a\x01b", "control characters")],
)
def test_it_rerenders_the_form_with_the_error(bob_client, name, message):
    response = bob_client.post(URL, token_form(name))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ApiToken.objects.exists()


def test_it_limits_the_number_of_active_tokens(bob, bob_client):
    for number in range(MAX_ACTIVE_TOKENS):
        create_token(bob, f"token {number}")

    response = bob_client.post(URL, token_form("one more"))

    assert response.status_code == 400
    assert "revoke one you no longer use" in response.content.decode()
    assert ApiToken.objects.count() == MAX_ACTIVE_TOKENS


def test_expired_tokens_do_not_count_against_the_limit(bob, bob_client):
    for number in range(MAX_ACTIVE_TOKENS):
        create_token(bob, f"token {number}", expires_in_days=30)
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(days=1))

    response = bob_client.post(URL, token_form("after the old ones expired"))

    assert response.status_code == 201, response.content.decode()
    assert ApiToken.objects.filter(name="after the old ones expired").exists()


def test_it_lists_only_the_users_own_tokens(alice, bob):
    create_token(alice, "alice's ci")
    create_token(bob, "bob's laptop")

    html = signed_in(bob).get(URL).content.decode()

    table = html.split('id="tokens"', 1)[1]
    assert "bob&#x27;s laptop" in table and "alice" not in table


def test_it_lists_active_tokens_before_revoked_ones(bob, bob_client):
    from api.actions import revoke_token

    old = create_token(bob, "old").token
    revoke_token(old, actor=bob)
    create_token(bob, "new")

    html = bob_client.get(URL).content.decode()

    assert html.index(">new<") < html.index(">old<")


def test_it_refuses_query_parameters(bob_client):
    assert bob_client.get(URL, {"x": "1"}).status_code == 400


def test_it_creates_a_read_only_token_that_expires(bob, bob_client):
    response = bob_client.post(URL, token_form("loader", scope="read-only", expires="30"))

    assert response.status_code == 201
    token = ApiToken.objects.get()
    assert token.scope == "read-only" and token.read_only
    assert token.expires_at is not None
    days = (token.expires_at - token.created_at).total_seconds() / 86400
    assert 29.9 < days < 30.1
    event = AuditEvent.objects.get(action=Action.API_TOKEN_CREATED)
    assert event.details["scope"] == "read-only"
    assert event.details["expires_at"] == token.expires_at.isoformat()
    row = bob_client.get(URL).content.decode().split(f'data-prefix="{token.prefix}"', 1)[1]
    assert '<td class="scope">read-only</td>' in row.split("</tr>", 1)[0]


def test_it_shows_an_expired_token_as_expired(bob, bob_client):
    token = create_token(bob, "old ci", expires_in_days=30).token
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(days=1))

    row = bob_client.get(URL).content.decode().split(f'data-prefix="{token.prefix}"', 1)[1]

    assert ">expired</span>" in row.split("</tr>", 1)[0]


@pytest.mark.parametrize(
    ("field", "value"), [("scope", "admin"), ("expires", "7"), ("expires", ""), ("scope", "")]
)
def test_it_refuses_a_scope_or_expiry_it_does_not_offer(bob_client, field, value):
    response = bob_client.post(URL, {**token_form("x"), field: value})

    assert response.status_code == 400
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("scope", ["read-only", "read-write"])
@pytest.mark.parametrize(
    ("expires", "days"), [("30", 30), ("90", 90), ("365", 365), ("never", None)]
)
def test_it_creates_each_kind_of_token_it_offers(bob, bob_client, scope, expires, days):
    form = bob_client.get(URL).content.decode().split('id="token-form"', 1)[1]
    assert f'value="{scope}"' in form and f'value="{expires}"' in form

    response = bob_client.post(URL, token_form("kind", scope=scope, expires=expires))

    assert response.status_code == 201
    token = ApiToken.objects.get()
    assert token.scope == scope
    if days is None:
        assert token.expires_at is None
    else:
        assert token.expires_at is not None
        assert abs((token.expires_at - token.created_at) - timedelta(days=days)) < timedelta(
            minutes=1
        )
    event = AuditEvent.objects.get(action=Action.API_TOKEN_CREATED)
    assert event.details["scope"] == scope
    row = bob_client.get(URL).content.decode().split(f'data-prefix="{token.prefix}"', 1)[1]
    row = row.split("</tr>", 1)[0]
    assert f'<td class="scope">{scope}</td>' in row and ">active</span>" in row
    assert ('<td class="expires">never</td>' in row) == (days is None)
