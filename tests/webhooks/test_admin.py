"""Registry admins add webhooks in the admin: audited (never the secret), unsafe URLs refused,
deliveries shown with their status."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from registry.models import AuditEvent
from tests.factories import signed_in
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.django_db

SECRET = "s3cret-for-the-receiver-only"


def add(client, url: str, **values):
    data = {"name": "ops", "url": url, "secret": SECRET, "active": "on", **values}
    return client.post(reverse("admin:webhooks_webhook_add"), data)


def test_a_registry_admin_adds_a_webhook_and_the_audit_trail_never_holds_the_secret(
    rosa, receivers_allowed
):
    response = add(signed_in(rosa), "https://10.20.30.40/aegis", events="import.failed")

    assert response.status_code == 302, response.content.decode()[:1500]
    hook = Webhook.objects.get()
    assert (hook.url, hook.secret, hook.events) == (
        "https://10.20.30.40/aegis",
        SECRET,
        ["import.failed"],
    )
    event = AuditEvent.objects.get(action="webhook.added")
    assert event.actor == "rosa" and event.details["url"] == hook.url
    assert SECRET not in json.dumps(event.details)
    page = signed_in(rosa).get(reverse("admin:webhooks_webhook_change", args=[hook.pk]))
    assert SECRET not in page.content.decode()


def test_a_metadata_or_own_url_is_refused_with_the_reason(rosa, receivers_allowed):
    client = signed_in(rosa)
    response = add(client, "http://169.254.169.254/latest/meta-data/")
    assert response.status_code == 200
    assert "link-local" in response.content.decode()
    response = add(client, "https://aegis.example.com/api/")
    assert "this application itself" in response.content.decode()
    assert not Webhook.objects.exists()


def test_deliveries_are_listed_with_their_status_and_cannot_be_edited(rosa, receivers_allowed):
    hook = Webhook.objects.create(name="ops", url="https://hooks.example.net/", secret=SECRET)
    Delivery.objects.create(
        webhook=hook, event="import.failed", audit_sequence=4, payload={}, status="failed",
        attempts=6, last_status_code=502, last_error="the receiver answered 502",
    )  # fmt: skip
    client = signed_in(rosa)
    html = client.get(reverse("admin:webhooks_delivery_changelist")).content.decode()
    assert "the receiver answered 502" in html and "failed (no more attempts)" in html
    assert client.get(reverse("admin:webhooks_delivery_add")).status_code == 403


def test_others_cannot_reach_the_webhooks(alice_client):
    response = alice_client.get(reverse("admin:webhooks_webhook_changelist"))
    assert response.status_code in (302, 403)
