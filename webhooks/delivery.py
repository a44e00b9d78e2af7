"""Sending one delivery: the signed POST, and what it answered.

The body is the event's JSON with the delivery's id and attempt number; the signature header
``X-Aegis-Signature-256: sha256=<hex>`` is the HMAC-SHA256 of the exact body bytes with the
webhook's secret (GitHub's scheme: the receiver recomputes it over the raw body and compares in
constant time). Redirects are not followed: a receiver that moved gets a new URL from an admin.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webhooks.addresses import UnsafeWebhookURL, check_webhook_url
from webhooks.models import Delivery

SIGNATURE_HEADER = "X-Aegis-Signature-256"
USER_AGENT = "Aegis-Catalog-Webhook/1"


@dataclass(frozen=True)
class Outcome:
    status: str  # Delivery.Status
    retry_in: float | None = None  # seconds until the next attempt, when there is one


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_body(delivery: Delivery, attempt: int) -> tuple[bytes, dict[str, str]]:
    document: dict[str, Any] = {**delivery.payload, "delivery": delivery.pk, "attempt": attempt}
    body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Aegis-Event": delivery.event,
        "X-Aegis-Delivery": str(delivery.pk),
        SIGNATURE_HEADER: signature(delivery.webhook.secret, body),
    }
    return body, headers


def backoff_seconds(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: the base doubled each time, at most an hour."""
    base = settings.AEGIS_WEBHOOK_BACKOFF_SECONDS
    return float(min(base * 2 ** (attempts - 1), 3600))


def _send(delivery: Delivery, attempt: int) -> tuple[int | None, str]:
    """The receiver's status code, or None and why the request failed."""
    body, headers = signed_body(delivery, attempt)
    try:
        response = requests.post(
            delivery.webhook.url,
            data=body,
            headers=headers,
            timeout=settings.AEGIS_WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as error:
        return None, f"{type(error).__name__}: {error}"[:1000]
    response.close()
    if 200 <= response.status_code < 300:
        return response.status_code, ""
    return response.status_code, f"the receiver answered {response.status_code}"


def _claim(delivery_id: int) -> Delivery | None:
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update()
            .select_related("webhook")
            .filter(pk=delivery_id, status=Delivery.Status.PENDING)
            .first()
        )
        if delivery is None:
            return None
        delivery.attempts += 1
        delivery.save(update_fields=["attempts"])
    return delivery


def attempt_delivery(delivery_id: int) -> Outcome | None:
    """One attempt at a pending delivery, recorded on its row; None when it is not pending."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    try:
        check_webhook_url(delivery.webhook.url, settings.ALLOWED_HOSTS)
    except UnsafeWebhookURL as refused:
        delivery.status, delivery.last_error = Delivery.Status.REFUSED, str(refused)
        delivery.save(update_fields=["status", "last_error"])
        return Outcome(Delivery.Status.REFUSED)
    code, error = _send(delivery, delivery.attempts)
    delivery.last_status_code, delivery.last_error = code, error
    retry_in = None
    if not error:
        delivery.status, delivery.delivered_at = Delivery.Status.DONE, timezone.now()
    elif delivery.attempts >= settings.AEGIS_WEBHOOK_ATTEMPTS:
        delivery.status = Delivery.Status.FAILED
    else:
        retry_in = backoff_seconds(delivery.attempts)
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=retry_in)
    delivery.save(
        update_fields=[
            "status", "last_status_code", "last_error", "delivered_at", "next_attempt_at",
        ]
    )  # fmt: skip
    return Outcome(delivery.status, retry_in)
