"""Webhook changes (audited, by registry admins) and the deliveries an audit event causes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import django_rq
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from registry import audit
from registry.models import AuditEvent
from webhooks.addresses import UnsafeWebhookURL, check_webhook_url
from webhooks.events import EVENTS, payload_of
from webhooks.jobs import JOB, QUEUE_NAME
from webhooks.models import Delivery, Webhook

logger = logging.getLogger(__name__)

WEBHOOK_ADDED = "webhook.added"
WEBHOOK_EDITED = "webhook.edited"
WEBHOOK_REMOVED = "webhook.removed"


class WebhookError(ValueError):
    """A webhook change that cannot be made; the message says why."""


def _described(hook: Webhook) -> dict[str, Any]:
    # Never the secret: only that there is one.
    return {"name": hook.name, "url": hook.url, "events": list(hook.events), "active": hook.active}


def check_url(url: str) -> None:
    try:
        check_webhook_url(url, settings.ALLOWED_HOSTS)
    except UnsafeWebhookURL as error:
        raise WebhookError(f"{url} cannot receive webhooks: {error}") from None


def check_events(events: list[str]) -> None:
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise WebhookError(
            f"unknown events {', '.join(unknown)}; the events are {', '.join(EVENTS)}"
        )


@transaction.atomic
def add_webhook(
    values: Mapping[str, Any], *, actor: str, user: User | AnonymousUser | None = None
) -> Webhook:
    """Add a webhook (its URL checked); audited without its secret."""
    check_url(values["url"])
    check_events(list(values.get("events") or []))
    if not values.get("secret"):
        raise WebhookError("a webhook needs a secret to sign its deliveries with")
    hook = Webhook.objects.create(**values, created_by=actor)
    audit.record(
        WEBHOOK_ADDED, actor=actor, object_type="webhook", object_id=hook.pk,
        object_repr=str(hook), details=_described(hook), user=user,
    )  # fmt: skip
    return hook


@transaction.atomic
def edit_webhook(
    hook: Webhook,
    changes: Mapping[str, Any],
    *,
    actor: str,
    user: User | AnonymousUser | None = None,
) -> Webhook:
    """Change a webhook; audited with before and after (a new secret only as "changed")."""
    if "url" in changes:
        check_url(changes["url"])
    if "events" in changes:
        check_events(list(changes["events"] or []))
    before = _described(hook)
    for name, value in changes.items():
        if name != "secret" or value:
            setattr(hook, name, value)
    hook.save()
    details: dict[str, Any] = {"before": before, "after": _described(hook)}
    if changes.get("secret"):
        details["secret_changed"] = True
    audit.record(
        WEBHOOK_EDITED, actor=actor, object_type="webhook", object_id=hook.pk,
        object_repr=str(hook), details=details, user=user,
    )  # fmt: skip
    return hook


@transaction.atomic
def remove_webhook(hook: Webhook, *, actor: str, user: User | AnonymousUser | None = None) -> None:
    """Remove a webhook and its deliveries; audited."""
    audit.record(
        WEBHOOK_REMOVED, actor=actor, object_type="webhook", object_id=hook.pk,
        object_repr=str(hook), details=_described(hook), user=user,
    )  # fmt: skip
    hook.delete()


def queue_deliveries_of(sender: Any, instance: AuditEvent, created: bool, **kwargs: Any) -> None:
    """For an audit event webhooks receive: a delivery row per webhook that wants it, written
    in the event's transaction (rolled back with it), each queued once that commits."""
    if not created or instance.action not in EVENTS:
        return
    hooks = [hook for hook in Webhook.objects.filter(active=True) if hook.wants(instance.action)]
    if not hooks:
        return
    payload = payload_of(instance)
    ids = [
        Delivery.objects.create(
            webhook=hook, event=instance.action, audit_sequence=instance.sequence, payload=payload
        ).pk
        for hook in hooks
    ]
    transaction.on_commit(lambda: enqueue_deliveries(ids))


def enqueue_deliveries(ids: list[int]) -> None:
    """Queue a job per delivery; with Redis down they stay pending (``requeue_pending`` sends
    them later)."""
    queue = django_rq.get_queue(QUEUE_NAME, commit_mode="auto")
    try:
        for delivery_id in ids:
            queue.enqueue(JOB, delivery_id)
    except (RedisError, OSError):
        logger.warning("the webhook queue is unavailable: %d deliveries stay pending", len(ids))


def requeue_pending(*, older_than_seconds: int = 300) -> int:
    """Queue again the deliveries whose job was lost (Redis down when it was to be queued, a
    scheduled retry gone with Redis): pending, and due this long ago. Deliveries are at least
    once: a receiver tells repeats apart by ``X-Aegis-Delivery``."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stale = Delivery.objects.filter(status=Delivery.Status.PENDING).filter(
        Q(next_attempt_at__lt=cutoff) | Q(next_attempt_at__isnull=True, created_at__lt=cutoff)
    )
    ids = list(stale.values_list("pk", flat=True)[:1000])
    if ids:
        enqueue_deliveries(ids)
    return len(ids)
