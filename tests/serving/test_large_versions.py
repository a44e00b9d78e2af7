"""A version too large to verify inside a request is verified by a job (the pull answers 503
until then), or beforehand with ``manage.py check_for_serving``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import django_rq
import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from serving.models import ServedVersion
from tests.serving.conftest import hf_import

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(aegis: Any, transit_key: str):
    return hf_import(transit_key, "1.0", "v1.0")


def model_info(token: str) -> Any:
    return Client().get(
        "/hf/api/models/aegis/tiny-bert/revision/1.0", headers={"Authorization": f"Bearer {token}"}
    )


def test_a_large_version_is_verified_by_one_job_before_it_is_served(
    version, viewer_token, settings
):
    settings.AEGIS_HF_INLINE_CHECK_BYTES = version.size - 1
    queue = django_rq.get_queue("default")
    queue.empty()
    for _ in range(2):
        answer = model_info(viewer_token)
        assert answer.status_code == 503
        assert "is being verified before it is first served" in answer.json()["error"]
    jobs = queue.get_jobs()
    assert [(job.id, job.func_name, job.args) for job in jobs] == [
        (f"serve-check-{version.pk}", "serving.jobs.first_pull_check", (version.pk, "vera"))
    ]
    assert jobs[0].perform() == "ready"
    queue.empty()
    answer = model_info(viewer_token)
    assert answer.status_code == 200 and answer.json()["sha"] == version.sha256[:40]


def test_check_for_serving_verifies_beforehand_and_names_what_is_refused(version, capsys):
    call_command("check_for_serving", "tiny-bert")
    assert "tiny-bert 1.0: ready (6 files)" in capsys.readouterr().out
    assert ServedVersion.objects.get(version=version).state == "ready"

    other = hf_import(version.signing_key.name, "2.0", "main")
    stored = Path(other.model_path.removeprefix("file://"))
    stored.write_bytes(stored.read_bytes()[:-1])
    with pytest.raises(CommandError, match="1 version"):
        call_command("check_for_serving", "tiny-bert", "2.0")
    assert "failed verification (digest" in capsys.readouterr().err
    with pytest.raises(CommandError, match="no registered version"):
        call_command("check_for_serving", "nothing")
