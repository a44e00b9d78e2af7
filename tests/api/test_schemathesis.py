"""Must-show 2: schemathesis fuzzes every operation of /api/v1/openapi.json on a live server,
with valid, invalid and random input: no 5xx, and every answer matches its documented schema."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import django_rq
import pytest

from api.actions import create_token
from devservers.tools import find_tool
from imports.models import ImportRequest
from tests.factories import make_user, make_version

pytestmark = pytest.mark.django_db(transaction=True)

# Enough for each operation's examples, boundary values and a round of random input, in well
# under a minute here; --seed makes a failure reproducible.
MAX_EXAMPLES = "30"
SEED = "20261126"


def schemathesis(url: str, report_dir: Path, *headers: str) -> subprocess.CompletedProcess[str]:
    cli = find_tool("schemathesis") or find_tool("st")
    assert cli, "schemathesis is installed with the [test] extra"
    header_args = [arg for header in headers for arg in ("--header", header)]
    return subprocess.run(
        [
            cli, "run", f"{url}/api/v1/openapi.json",
            "--url", url,
            *header_args,
            "--checks", "all",
            "--mode", "all",
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", MAX_EXAMPLES,
            "--seed", SEED,
            "--workers", "1",
            "--request-timeout", "30",
            "--no-shrink",
            "--suppress-health-check", "all",
            "--report", "junit",
            "--report-dir", str(report_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=report_dir,  # its caches stay out of the work tree
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
    )  # fmt: skip


def test_it_survives_schemathesis_on_every_operation(live_server, hub, settings, tmp_path):
    """With an importer-and-auditor token, and anonymously (every operation must answer its
    documented 401): no accepted exceptions, so every rule the server enforces is in the
    OpenAPI description."""
    settings.AEGIS_S3_BUCKET = "fuzzed-imports"  # so upload_s3=true is a valid choice
    fuzzer = make_user("fuzzer", "importer", "auditor")
    token = create_token(fuzzer, "schemathesis").secret
    make_version("tiny-bert", "1.0", source_repo="acme/tiny-bert", license="mit")
    make_version("tiny-bert", "2.0", source_repo="acme/tiny-bert")
    runs = {}
    try:
        for who, headers in (("token", (f"Authorization: Bearer {token}",)), ("anonymous", ())):
            report_dir = tmp_path / who
            report_dir.mkdir()
            runs[who] = schemathesis(live_server.url, report_dir, *headers)
    finally:
        # Valid imports were queued on the shared Redis: remove their jobs, nothing runs them.
        queue = django_rq.get_queue("imports")
        for job_id in ImportRequest.objects.exclude(job_id="").values_list("job_id", flat=True):
            job = queue.fetch_job(job_id)
            if job is not None:
                job.delete()
    for who, completed in runs.items():
        output = completed.stdout + completed.stderr
        assert completed.returncode == 0, (who, output[-20000:])
        assert "No issues found" in output or "passed" in output, (who, output[-5000:])
