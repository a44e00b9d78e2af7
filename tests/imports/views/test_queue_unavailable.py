"""Redis down (pointed at a closed port): pages still render, Import says the queue is
unavailable and keeps the form, nothing is half-created, /healthz names Redis, and the same
import goes through once Redis is back."""

from __future__ import annotations

import socket

import pytest

from imports import actions
from imports.actions import ImportOptions
from imports.models import ImportRequest
from tests.factories import import_form, make_user, make_version, signed_in

pytestmark = pytest.mark.django_db

URL = "/hub/acme/tiny-bert/import/"


TYPED = import_form(model_name="typed-name", version="7.1", include="*.json")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_down(settings, monkeypatch, redis_url):
    """The queue and the cache point at a port where nothing listens."""
    dead = f"redis://127.0.0.1:{closed_port()}/0"
    for queue in settings.RQ_QUEUES.values():
        monkeypatch.setitem(queue, "URL", dead)
    caches = {name: dict(config) for name, config in settings.CACHES.items()}
    caches["default"]["LOCATION"] = dead
    settings.CACHES = caches

    def back_up() -> None:
        for queue in settings.RQ_QUEUES.values():
            queue["URL"] = redis_url
        restored = {name: dict(config) for name, config in settings.CACHES.items()}
        restored["default"]["LOCATION"] = redis_url
        settings.CACHES = restored

    return back_up


def test_the_pages_render_without_redis(alice, alice_client, hub, redis_down):
    make_version("bert", "1.0")
    request = actions.start_import(
        ImportOptions("acme/tiny-bert", "tiny", "1"), actor="alice", enqueue=False
    )
    for url in (
        "/",
        "/?q=bert",
        "/hub/acme/tiny-bert/",
        "/imports/",
        f"/imports/{request.pk}/",
        "/registry/",
        "/registry/bert/",
        "/registry/bert/1.0/",
    ):
        response = alice_client.get(url)
        assert response.status_code == 200, (url, response.status_code)


def test_import_says_the_queue_is_unavailable_keeps_the_form_and_creates_nothing(
    alice_client, hub, redis_down, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(URL, TYPED)

    page = response.content.decode()
    assert response.status_code == 503
    assert "the import queue is unavailable" in page
    assert 'value="typed-name"' in page
    assert 'value="7.1"' in page
    assert not ImportRequest.objects.exists()

    redis_down()  # Redis is back: the same form goes through
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(URL, TYPED)
    assert response.status_code == 302
    request = ImportRequest.objects.get()
    assert request.status == ImportRequest.Status.QUEUED
    assert request.job_id


def test_retry_says_the_queue_is_unavailable_and_leaves_the_import_failed(
    alice_client, hub, redis_down
):
    request = actions.start_import(
        ImportOptions("acme/tiny-bert", "tiny", "1"), actor="alice", enqueue=False
    )
    ImportRequest.objects.filter(pk=request.pk).update(status="failed", error="earlier failure")

    response = alice_client.post(f"/imports/{request.pk}/retry/", follow=True)

    assert "the import queue is unavailable" in response.content.decode()
    request.refresh_from_db()
    assert request.status == ImportRequest.Status.FAILED
    assert request.error == "earlier failure"


def test_a_queue_lost_between_check_and_enqueue_leaves_a_failed_import_to_retry(
    alice, hub, redis_down, settings, redis_url, django_capture_on_commit_callbacks
):
    redis_down()  # up for the check ...
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        request = actions.start_import(
            ImportOptions("acme/tiny-bert", "tiny", "1"), actor="alice", user=alice
        )
    for queue in settings.RQ_QUEUES.values():  # ... down before the job is queued
        queue["URL"] = f"redis://127.0.0.1:{closed_port()}/0"
    for callback in callbacks:
        callback()

    request.refresh_from_db()
    assert request.status == ImportRequest.Status.FAILED
    assert request.error_code == "queue_unavailable"
    assert "the import queue is unavailable" in request.error


def test_healthz_reports_redis_down(aegis, redis_down):
    response = signed_in(make_user("operator", is_staff=True)).get("/healthz")

    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["redis"]["ok"] is False
    assert "Connection" in body["checks"]["redis"]["error"]
