"""The servers a bench run measures against: SeaweedFS, OpenBao (started as the tests start
them, from devservers) and the Hub double serving the synthetic repos in a process of its own
(bench/hub_server.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


class Services:
    """SeaweedFS, OpenBao and the Hub double (serving the synthetic repos)."""

    def __init__(self, work: Path, repos: dict[str, Path]) -> None:
        from devservers.openbao import start_openbao
        from devservers.seaweedfs import start_seaweedfs

        self.s3 = start_seaweedfs(work / "seaweedfs")
        self.bucket = self.s3.create_bucket("aegis-bench")
        self.vault = start_openbao(work / "openbao")
        self.hub = subprocess.Popen(
            [PYTHON, str(ROOT / "bench" / "hub_server.py")]
            + [f"{repo_id}={path}" for repo_id, path in repos.items()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.hub.stdout is not None
        ready = json.loads(self.hub.stdout.readline())
        self.hub_url: str = ready["url"]
        self.commits: dict[str, str] = ready["commits"]

    def env(self, work: Path) -> dict[str, str]:
        # The caller's tuning knobs pass through (to compare settings); the rest is the bench's.
        tuning = {"AEGIS_STREAM_UPLOADS", "AEGIS_S3_MAX_CONCURRENCY", "AEGIS_HUB_DOWNLOAD_WORKERS"}
        environment = {
            key: value
            for key, value in os.environ.items()
            if key in tuning
            or not key.startswith(("HF_", "AWS_", "VAULT_", "AEGIS_", "DJANGO_", "DATABASE_"))
        }
        environment.update(
            {
                "DJANGO_SETTINGS_MODULE": "aegis_catalog.settings",
                "DATABASE_URL": f"sqlite:///{work / 'bench.sqlite3'}",
                "DJANGO_SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
                "HF_ENDPOINT": self.hub_url,
                "HF_HOME": str(work / "hf-home"),
                "HF_HUB_DISABLE_XET": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "VAULT_ADDR": self.vault.addr,
                "VAULT_TOKEN": self.vault.root_token,
                "AWS_ENDPOINT_URL_S3": self.s3.endpoint_url,
                "AWS_ACCESS_KEY_ID": self.s3.access_key,
                "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
                "AWS_REGION": self.s3.region,
                "AEGIS_S3_BUCKET": self.bucket,
                "AEGIS_WORK_DIR": str(work / "import-work"),
                "AEGIS_ARTIFACT_ROOT": str(work / "artifacts"),
                "AEGIS_LOG_LEVEL": "WARNING",
            }
        )
        return environment

    def empty_bucket(self) -> None:
        client = self.s3.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=self.bucket, Key=item["Key"])

    def stop(self) -> None:
        if self.hub.poll() is None:
            assert self.hub.stdin is not None
            self.hub.stdin.close()
            try:
                self.hub.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.hub.kill()
        self.vault.stop()
        self.s3.stop()
