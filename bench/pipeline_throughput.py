"""Throughput of the check and package stages, against the standard tools on the same files.

Baselines, run in the same process on the same files:
- check stage (sha256 and git blob sha1 in one read)  vs  `sha256sum` (one digest)
- package stage (deterministic tar.gz, per-file and tarball sha256 in one pass)  vs  `tar -czf`

Usage: python bench/pipeline_throughput.py [MiB]   (default 256 MiB of mixed weights)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aegis_catalog.lib.hub import HubFile
from aegis_catalog.lib.storage import sha256_file
from imports.packaging import package_snapshot
from imports.pipeline import Download, Resolution, check_digests
from registry.card import CardMetadata


def make_files(directory: Path, total_mib: int) -> dict[str, Path]:
    """Half random bytes (incompressible), half float16-like repeating values."""
    files: dict[str, Path] = {}
    chunk = 1024 * 1024
    for index in range(4):
        path = directory / f"model-{index:05d}.safetensors"
        with path.open("wb") as handle:
            for step in range(total_mib // 4):
                if step % 2:
                    handle.write(os.urandom(chunk))
                else:
                    handle.write(bytes(range(256)) * (chunk // 256))
        files[path.name] = path
    return files


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    total_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        source = work / "model"
        source.mkdir()
        files = make_files(source, total_mib)
        size = sum(path.stat().st_size for path in files.values())
        mib = size / 1024**2
        resolution = Resolution(
            repo_id="bench/model",
            revision="main",
            commit="0" * 40,
            commit_time="2024-01-01T00:00:00+00:00",
            files=tuple(
                HubFile(name, path.stat().st_size, "", sha256_file(path))
                for name, path in files.items()
            ),
            card_data={},
            metadata=CardMetadata(),
        )
        download = Download(paths=files)

        check_seconds = timed(lambda: check_digests(resolution, download))
        sha256sum_seconds = timed(
            lambda: subprocess.run(
                ["sha256sum", *map(str, files.values())], check=True, capture_output=True
            )
        )
        package_seconds = timed(
            lambda: package_snapshot(
                work / "out.tar.gz",
                root_name="bench-1",
                model_files=files,
                extra_members={"aegis.json": b"{}"},
                mtime=0,
            )
        )
        tar_seconds = timed(
            lambda: subprocess.run(
                ["tar", "-czf", str(work / "baseline.tar.gz"), "-C", str(work), "model"], check=True
            )
        )
    print(f"data: {mib:.0f} MiB in {len(files)} files")
    print(
        f"check stage {mib / check_seconds:8.1f} MiB/s | sha256sum {mib / sha256sum_seconds:8.1f}"
        f" MiB/s | speed ratio {sha256sum_seconds / check_seconds:.2f}"
    )
    print(
        f"package     {mib / package_seconds:8.1f} MiB/s | tar -czf  {mib / tar_seconds:8.1f}"
        f" MiB/s | speed ratio {tar_seconds / package_seconds:.2f}"
    )


if __name__ == "__main__":
    main()
