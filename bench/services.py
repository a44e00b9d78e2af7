"""The servers a bench run measures against: SeaweedFS, OpenBao (started as the tests start
them, from devservers) and the Hub double serving the synthetic repos in a process of its own
(bench/hub_server.py); on demand, the throttle in front of the Hub double and SeaweedFS
(bench/throttle.py), for the network-bound figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.throttle import Throttle

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


class Services:
    """SeaweedFS, OpenBao and the Hub double (serving the synthetic repos); `start_throttle`
    adds the throttle in front of the Hub double and SeaweedFS, for `env(throttled=True)`."""

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
        self.hub_cdn_url: str = ready["cdn_url"]
        self.commits: dict[str, str] = ready["commits"]
        self.throttle: Throttle | None = None

    def start_throttle(self, bytes_per_second: int) -> Throttle:
        """Start the throttle: one proxy for the Hub double (its API and CDN listeners sharing
        the rate) and one for SeaweedFS's S3 endpoint, each limited to `bytes_per_second`."""
        assert self.throttle is None, "the throttle is already running"
        self.throttle = Throttle(
            bytes_per_second,
            {"hub": [self.hub_url, self.hub_cdn_url], "s3": [self.s3.endpoint_url]},
        )
        hub_front, cdn_front = self.throttle.urls["hub"]
        # The double's CDN redirects must lead a client that came through the proxy back
        # through it (bench/hub_server.py): tell the double the proxy's URLs.
        assert self.hub.stdin is not None and self.hub.stdout is not None
        self.hub.stdin.write(json.dumps({"hub": hub_front, "cdn": cdn_front}) + "\n")
        self.hub.stdin.flush()
        json.loads(self.hub.stdout.readline())
        return self.throttle

    def env(self, work: Path, *, throttled: bool = False) -> dict[str, str]:
        """The environment of a bench step: Django settings, the Hub, Vault and S3; with
        `throttled`, the Hub and S3 reached through the throttle (`start_throttle` first)."""
        # The caller's tuning knobs pass through (to compare settings); the rest is the bench's.
        tuning = {
            "AEGIS_STREAM_UPLOADS",
            "AEGIS_ONE_PASS_IMPORT",
            "AEGIS_PACKAGE_THREADS",
            "AEGIS_S3_MAX_CONCURRENCY",
            "AEGIS_HUB_DOWNLOAD_WORKERS",
        }
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
        if throttled:
            assert self.throttle is not None, "start_throttle() first"
            environment["HF_ENDPOINT"] = self.throttle.urls["hub"][0]
            environment["AWS_ENDPOINT_URL_S3"] = self.throttle.urls["s3"][0]
        return environment

    def empty_bucket(self) -> None:
        client = self.s3.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=self.bucket, Key=item["Key"])

    def stop(self) -> None:
        if self.throttle is not None:
            self.throttle.stop()
        if self.hub.poll() is None:
            assert self.hub.stdin is not None
            self.hub.stdin.close()
            try:
                self.hub.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.hub.kill()
        self.vault.stop()
        self.s3.stop()
