"""Events of the audit trail POSTed to webhooks: signed, retried with backoff by a real worker,
each delivery's status recorded."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys

import django_rq
import pytest
from django.db import transaction

from registry import audit
from registry.models import AuditEvent
from tests.imports.test_worker_processes import BASE_DIR, database_url, wait_for
from webhooks import actions
from webhooks.delivery import SIGNATURE_HEADER, attempt_delivery
from webhooks.models import Delivery, Webhook

SECRET = "a shared secret of the receiver"


def yank_event() -> AuditEvent:
    return audit.record(
        "registry.version_yanked", actor="rosa", object_type="version", object_id=7,
        object_repr="tiny-bert 1.0", model_name="tiny-bert", details={"reason": "bad weights"},
    )  # fmt: skip


def add_hook(url: str, **values) -> Webhook:
    return actions.add_webhook(
        {"name": "ops", "url": url, "secret": SECRET, **values}, actor="rosa"
    )


def verifies(received) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received.headers[SIGNATURE_HEADER])


@pytest.mark.django_db
def test_an_audit_event_is_posted_signed_with_the_shared_secret(receiver, receivers_allowed):
    add_hook(receiver.url)
    event = yank_event()
    [delivery] = Delivery.objects.all()

    outcome = attempt_delivery(delivery.pk)
    assert outcome is not None and outcome.status == "done"

    [received] = receiver.requests
    assert verifies(received)
    body = json.loads(received.body)
    assert body["event"] == received.headers["X-Aegis-Event"] == "registry.version_yanked"
    assert body["audit"]["sequence"] == event.sequence and body["audit"]["hash"] == event.hash
    assert body["audit"]["details"] == {"reason": "bad weights"}
    assert (body["delivery"], body["attempt"]) == (delivery.pk, 1)
    tampered = received.body.replace(b"bad weights", b"good weights")
    assert not verifies(type(received)(received.headers, tampered))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("done", 1, 200)


@pytest.mark.django_db
def test_only_active_webhooks_that_want_the_event_get_it_and_a_rollback_sends_nothing(
    receiver, receivers_allowed
):
    wanted = add_hook(receiver.url, events=["registry.version_yanked"])
    add_hook(receiver.url, events=["import.failed"])
    add_hook(receiver.url, active=False)
    everything = add_hook(receiver.url)
    audit.record(
        "registry.version_edited",
        actor="rosa",
        object_type="version",
        object_id=7,
        object_repr="tiny-bert 1.0",
    )  # fmt: skip  (not an event webhooks receive)
    yank_event()
    assert {item.webhook for item in Delivery.objects.all()} == {wanted, everything}

    with pytest.raises(RuntimeError), transaction.atomic():
        yank_event()
        raise RuntimeError("the change the event records failed")
    assert Delivery.objects.count() == 2


@pytest.mark.django_db
def test_a_receiver_that_became_unsafe_is_refused_not_posted(receiver, receivers_allowed):
    add_hook(receiver.url)
    yank_event()
    receivers_allowed.ALLOWED_HOSTS = ["127.0.0.1"]  # the receiver's address is now the app's
    [delivery] = Delivery.objects.all()
    outcome = attempt_delivery(delivery.pk)
    assert outcome is not None and outcome.status == "refused"
    delivery.refresh_from_db()
    assert "this application itself" in delivery.last_error
    assert receiver.requests == []


@pytest.fixture
def default_queue(redis_url):
    queue = django_rq.get_queue("default")

    def empty() -> None:
        queue.empty()
        for job_id in queue.scheduled_job_registry.get_job_ids():
            queue.scheduled_job_registry.remove(job_id)

    empty()
    yield queue
    empty()


@pytest.mark.django_db(transaction=True)
def test_a_receiver_failing_twice_gets_the_event_three_times_from_a_real_worker(
    receiver, receivers_allowed, default_queue
):
    receiver.statuses = [500, 503]
    add_hook(receiver.url)
    yank_event()  # committed: its delivery is queued
    assert default_queue.count == 1
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "default", "--with-scheduler"],
        cwd=BASE_DIR,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "aegis_catalog.settings",
            "DATABASE_URL": database_url(),
            "REDIS_URL": receivers_allowed.RQ_QUEUES["default"]["URL"],
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "AEGIS_WEBHOOK_BACKOFF_SECONDS": "1",
        },
        start_new_session=True,
    )
    try:
        delivery = wait_for(
            lambda: Delivery.objects.filter(status="done").first(), timeout=90, what="delivery"
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    assert [json.loads(item.body)["attempt"] for item in receiver.requests] == [1, 2, 3]
    assert all(verifies(item) for item in receiver.requests)
    assert {item.headers["X-Aegis-Delivery"] for item in receiver.requests} == {str(delivery.pk)}
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (3, 200, "")
    assert delivery.delivered_at is not None


@pytest.mark.django_db
def test_deliveries_whose_job_was_lost_are_queued_again(receivers_allowed, default_queue):
    from datetime import timedelta

    from django.utils import timezone

    hook = Webhook.objects.create(name="ops", url="http://10.1.2.3/", secret=SECRET)
    old = timezone.now() - timedelta(minutes=10)
    lost = Delivery.objects.create(
        webhook=hook, event="import.failed", audit_sequence=1, payload={},
        next_attempt_at=old,
    )  # fmt: skip
    Delivery.objects.create(  # due later: its scheduled job is still to come
        webhook=hook, event="import.failed", audit_sequence=2, payload={},
        next_attempt_at=timezone.now() + timedelta(minutes=1),
    )  # fmt: skip
    Delivery.objects.create(  # done: nothing to send
        webhook=hook, event="import.failed", audit_sequence=3, payload={}, status="done",
        next_attempt_at=old,
    )  # fmt: skip

    assert actions.requeue_pending() == 1
    [job] = default_queue.jobs
    assert job.args == (lost.pk,)
