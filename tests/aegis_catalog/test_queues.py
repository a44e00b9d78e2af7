"""Work that needs the job queue is refused, with the caller's words and nothing written, when
the queue's Redis does not answer (pointed at a closed port here)."""

from __future__ import annotations

import socket

import pytest

from aegis_catalog.queues import require_queue
from registry.models import UpstreamState
from registry.upstream.actions import UpstreamQueueUnavailable, request_upstream_check
from tests.factories import make_version

pytestmark = pytest.mark.django_db


class Refused(Exception):
    pass


@pytest.fixture
def dead_queue(settings, monkeypatch) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = f"redis://:secret@127.0.0.1:{port}/0"
    monkeypatch.setitem(settings.RQ_QUEUES["default"], "URL", dead)
    return dead


def test_a_queue_that_answers_lets_the_work_through():
    require_queue("default", Refused, "not shown")  # raises nothing


def test_a_queue_that_does_not_answer_raises_the_callers_error_without_its_url(dead_queue):
    with pytest.raises(Refused, match="^the queue is down$") as refused:
        require_queue("default", Refused, "the queue is down")
    assert "secret" not in str(refused.value) and refused.value.__cause__ is None


def test_check_upstream_now_writes_nothing_when_the_queue_does_not_answer(dead_queue):
    model = make_version("tiny-bert", "1.0").model

    with pytest.raises(UpstreamQueueUnavailable, match="nothing was queued"):
        request_upstream_check(model, actor="alice")
    assert not UpstreamState.objects.filter(model=model, check_requested_by="alice").exists()
