"""Aegis performance bench: packaging, whole import, worker memory, verification, web.

    python bench/run.py [--size-gib 1] [--runs 5]      (`make bench`, `make bench SIZE_GIB=0.25`)

Makes its own synthetic repos (bench/synthetic.py) of 0.5x, 1x and 2x the size, serves them
through the Hub double (in a process of its own), starts SeaweedFS and OpenBao as the tests
do, and prints a table of figures (medians of --runs runs) and ratios against the baselines
measured in the same run on the same bytes. Also writes bench/results.json. Nothing here
asserts: the table says which targets are met.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.synthetic import make_repo  # noqa: E402
from imports.packaging import package_snapshot  # noqa: E402

GiB = 1024**3
PYTHON = sys.executable
RESULTS = ROOT / "bench" / "results.json"
REGISTRY_VERSIONS = 5000
TRUE_WORDS = {"1", "true", "yes", "on"}  # as settings.env_bool reads AEGIS_STREAM_UPLOADS


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def settle() -> None:
    """Let the previous step's writes reach the disk first, so no step pays for another."""
    os.sync()
    time.sleep(1)


def timed(action: Callable[[], Any]) -> float:
    settle()
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def run(command: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, **kwargs)


def worker(step: str, *arguments: str, env: dict[str, str]) -> dict[str, Any]:
    """Run bench/worker.py STEP in a fresh process; return its JSON figures."""
    settle()
    done = run(
        [PYTHON, str(ROOT / "bench" / "worker.py"), step, *arguments],
        env=env,
        capture_output=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def size_label(gib: float) -> str:
    return f"{gib:g}"


# --- 1. packaging ---------------------------------------------------------------------------


def bench_packaging(repo: Path, files: dict[str, Path], work: Path, runs: int) -> dict[str, Any]:
    names = sorted(files)
    paths = [str(files[name]) for name in names]
    tar_seconds, sha_seconds, package_seconds, digests = [], [], [], []
    tarball = work / "aegis.tar.gz"
    for index in range(max(2, runs)):
        log(f"packaging run {index + 1}/{runs}: tar -czf, cat | sha256sum, package_snapshot")
        baseline = work / "baseline.tar.gz"
        tar_seconds.append(
            timed(lambda out=baseline: run(["tar", "-czf", str(out), "-C", str(repo), *names]))
        )
        baseline.unlink()
        sha_seconds.append(
            timed(
                lambda: run(
                    ["bash", "-c", 'cat "$@" | sha256sum > /dev/null', "cat", *paths],
                )
            )
        )
        tarball.unlink(missing_ok=True)
        result: list[Any] = []
        package_seconds.append(
            timed(
                lambda result=result: result.append(
                    package_snapshot(
                        tarball,
                        root_name="bench-model-1",
                        model_files=files,
                        extra_members={"aegis.json": b"{}\n", "model.sig": b"{}\n"},
                        mtime=1_767_225_600,
                    )
                )
            )
        )
        digests.append(result[0].sha256)
    readable = subprocess.run(["tar", "-tzf", str(tarball)], capture_output=True).returncode == 0
    return {
        "tar_czf_s": median(tar_seconds),
        "sha256sum_s": median(sha_seconds),
        "package_s": median(package_seconds),
        "reproducible": len(digests) >= 2 and len(set(digests)) == 1,
        "readable_by_tar": readable,
        "tarball": tarball,
        "tarball_bytes": tarball.stat().st_size,
    }


# --- services -------------------------------------------------------------------------------


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


# --- 2-4. imports, memory, verification -----------------------------------------------------


def bench_import(
    services: Services,
    env: dict[str, str],
    work: Path,
    repo_ids: dict[float, str],
    size_gib: float,
    package_s: float,
    tarball: Path,
    runs: int,
) -> dict[str, Any]:
    main_repo = repo_ids[size_gib]
    download_seconds, upload_seconds, import_seconds = [], [], []
    other_seconds: list[float] = []
    rss: dict[str, list[float]] = {}
    stages: list[dict[str, Any]] = []
    client = services.s3.client()
    kept: dict[str, Any] | None = None
    for index in range(runs):
        log(f"import run {index + 1}/{runs}: snapshot_download, boto3 upload, whole import")
        dest = work / "snapshot-alone"
        figures = worker("download", main_repo, services.commits[main_repo], str(dest), env=env)
        download_seconds.append(figures["seconds"])
        shutil.rmtree(dest)
        shutil.rmtree(work / "hf-home", ignore_errors=True)
        upload_seconds.append(worker("upload", str(tarball), "alone.tar.gz", env=env)["seconds"])
        client.delete_object(Bucket=services.bucket, Key="alone.tar.gz")
        figures = worker("import", main_repo, f"bench-{index}", env=env)
        import_seconds.append(figures["seconds"])
        # The other upload mode, for comparison: streamed if the default is not, and back.
        streamed = env.get("AEGIS_STREAM_UPLOADS", "true").lower() in TRUE_WORDS
        other = worker(
            "import",
            main_repo,
            f"bench-other-{index}",
            env={**env, "AEGIS_STREAM_UPLOADS": "false" if streamed else "true"},
        )
        other_seconds.append(other["seconds"])
        log(f"  other upload mode: {other['seconds']:.2f} s, stages (s): {other['stages']}")
        stages.append(figures["stages"])
        rss.setdefault(size_label(size_gib), []).append(figures["peak_rss_mib"])
        log(f"  stages (s): {figures['stages']}")
        log(f"  peak RSS by stage (MiB): {figures['stage_peak_rss_mib']}")
        if kept is None:
            kept = figures
    for gib, repo_id in repo_ids.items():
        if gib == size_gib:
            continue
        log(f"import of the {size_label(gib)} GiB repo (peak RSS)")
        figures = worker("import", repo_id, f"bench-rss-{size_label(gib)}", env=env)
        rss.setdefault(size_label(gib), []).append(figures["peak_rss_mib"])
        log(f"  peak RSS by stage (MiB): {figures['stage_peak_rss_mib']}")
    assert kept is not None
    # The first import's artifact, fetched beside its attestation, for the verify figures.
    artifact = work / "verify" / Path(kept["artifact_url"]).name
    artifact.parent.mkdir(exist_ok=True)
    key = kept["artifact_url"].removeprefix(f"s3://{services.bucket}/")
    client.download_file(services.bucket, key, str(artifact))
    client.download_file(services.bucket, key + ".sigstore.json", str(artifact) + ".sigstore.json")
    return {
        "download_s": median(download_seconds),
        "upload_s": median(upload_seconds),
        "import_s": median(import_seconds),
        "other_mode_import_s": median(other_seconds),
        "stages": stages[len(stages) // 2],
        "peak_rss_mib": {
            label: round(max(values), 1)
            for label, values in sorted(rss.items(), key=lambda item: float(item[0]))
        },
        "artifact": artifact,
        "package_s": package_s,
    }


def bench_verify(artifact: Path, env: dict[str, str], runs: int) -> dict[str, Any]:
    plain, extracting, sha = [], [], []
    for index in range(runs):
        log(f"verify run {index + 1}/{runs}: sha256sum, verify, verify with extraction")
        sha.append(timed(lambda: run(["sha256sum", str(artifact)], capture_output=True)))
        plain.append(worker("verify", str(artifact), env=env)["seconds"])
        extracting.append(worker("verify", str(artifact), "--extract", env=env)["seconds"])
    return {
        "sha256sum_s": median(sha),
        "verify_s": median(plain),
        "verify_extract_s": median(extracting),
    }


# --- 5. the registry list page under load -----------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_registry(work: Path, duration: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        log("wrk is not installed (apt-get install wrk): skipping the registry figures")
        return {}
    env = {key: value for key, value in os.environ.items() if not key.startswith("DATABASE_")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "aegis_catalog.settings",
            "DATABASE_URL": f"sqlite:///{work / 'registry.sqlite3'}",
            "DJANGO_SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
            "DATABASE_CONN_MAX_AGE": "60",  # persistent connections, as in production
            "AEGIS_LOG_LEVEL": "WARNING",
            "PYTHONWARNINGS": "ignore:No directory at",  # no collectstatic for the bench
        }
    )
    log(f"registry: migrating a bench database and adding {REGISTRY_VERSIONS} versions")
    run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env=env, cwd=ROOT)
    seeded = json.loads(
        run(
            [PYTHON, str(ROOT / "bench" / "seed_registry.py"), str(REGISTRY_VERSIONS)],
            env=env,
            cwd=ROOT,
            capture_output=True,
        ).stdout.strip()
    )
    port = free_port()
    gunicorn = subprocess.Popen(
        [
            str(Path(PYTHON).parent / "gunicorn"),
            "aegis_catalog.wsgi",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}/registry/"
    cookie = f"Cookie: sessionid={seeded['sessionid']}"
    try:
        deadline = time.monotonic() + 30
        answered = 0
        while answered < 20:  # both workers warmed up (their first request loads the code)
            probe = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", cookie, url],
                capture_output=True,
                text=True,
            )
            if probe.stdout == "200":
                answered += 1
                continue
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} answered {probe.stdout!r}, not 200")
            time.sleep(0.3)
        log(f"registry: wrk -c10 -d{duration}s against {url}")
        output = run(
            [
                "wrk",
                "-t2",
                "-c10",
                f"-d{duration}s",
                "--latency",
                "-s",
                str(ROOT / "bench" / "wrk_report.lua"),
                "-H",
                cookie,
                url,
            ],
            capture_output=True,
        ).stdout
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        gunicorn.wait(timeout=30)
    report = json.loads(output.strip().splitlines()[-1])
    report["versions"] = seeded["versions"]
    return report


# --- the table ----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size-gib", type=float, default=float(os.environ.get("SIZE_GIB") or 1), help="1"
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--wrk-seconds", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    options = parser.parse_args()
    size = options.size_gib
    runs = max(1, options.runs)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="aegis-bench-", dir=os.environ.get("BENCH_TMP")))
    services: Services | None = None
    try:
        sizes = [size / 2, size, size * 2]
        repos: dict[float, Path] = {}
        repo_ids: dict[float, str] = {}
        files_of_main: dict[str, Path] = {}
        for seed, gib in enumerate(sizes):
            log(f"making a {size_label(gib)} GiB synthetic repo")
            repos[gib] = work / f"repo-{size_label(gib)}"
            repo_ids[gib] = f"bench-org/model-{size_label(gib).replace('.', '_')}gib"
            files = make_repo(repos[gib], int(gib * GiB), seed=seed)
            if gib == size:
                files_of_main = files
        packaging = bench_packaging(repos[size], files_of_main, work, runs)

        services = Services(work, {repo_ids[gib]: repos[gib] for gib in sizes})
        env = services.env(work)
        run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env=env, cwd=ROOT)
        imports = bench_import(
            services, env, work, repo_ids, size, packaging["package_s"], packaging["tarball"], runs
        )
        verify = bench_verify(imports["artifact"], env, runs)
        services.stop()
        services = None
        web = bench_registry(work, options.wrk_seconds)
    finally:
        if services is not None:
            services.stop()
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)

    sum_of_steps = imports["download_s"] + packaging["package_s"] + imports["upload_s"]
    streamed_default = os.environ.get("AEGIS_STREAM_UPLOADS", "true").lower() in TRUE_WORDS
    rss = imports["peak_rss_mib"]
    results = {
        "size_gib": size,
        "runs": runs,
        "package_speedup_vs_tar_czf": round(packaging["tar_czf_s"] / packaging["package_s"], 2),
        "package_vs_sha256sum": round(packaging["package_s"] / packaging["sha256sum_s"], 3),
        "package_reproducible": packaging["reproducible"],
        "package_readable_by_tar": packaging["readable_by_tar"],
        "import_vs_sum_of_steps": round(imports["import_s"] / sum_of_steps, 3),
        "stream_uploads": streamed_default,
        "import_other_upload_mode_vs_sum_of_steps": round(
            imports["other_mode_import_s"] / sum_of_steps, 3
        ),
        "peak_rss_mib": rss,
        "verify_vs_sha256sum": round(verify["verify_s"] / verify["sha256sum_s"], 3),
        "verify_extract_vs_sha256sum": round(verify["verify_extract_s"] / verify["sha256sum_s"], 3),
        "registry_p95_ms": web.get("p95_ms"),
        "registry_rps": web.get("rps"),
        "seconds": {
            "tar_czf": round(packaging["tar_czf_s"], 3),
            "cat_sha256sum": round(packaging["sha256sum_s"], 3),
            "package": round(packaging["package_s"], 3),
            "snapshot_download": round(imports["download_s"], 3),
            "boto3_upload": round(imports["upload_s"], 3),
            "whole_import": round(imports["import_s"], 3),
            "whole_import_other_upload_mode": round(imports["other_mode_import_s"], 3),
            "import_stages": imports["stages"],
            "sha256sum_artifact": round(verify["sha256sum_s"], 3),
            "verify": round(verify["verify_s"], 3),
            "verify_extract": round(verify["verify_extract_s"], 3),
        },
        "tarball_bytes": packaging["tarball_bytes"],
        "registry": web,
        "bench_seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    rss_values = list(rss.values())
    rows = [
        ("Packaging vs tar -czf (speedup)", f"{results['package_speedup_vs_tar_czf']:.1f}x",
         ">= 6x", verdict(results["package_speedup_vs_tar_czf"] >= 6)),
        ("Packaging vs cat | sha256sum (time)", f"{results['package_vs_sha256sum']:.2f}x",
         "<= 1.5x", verdict(results["package_vs_sha256sum"] <= 1.5)),
        ("Tarball byte-identical across runs", str(packaging["reproducible"]), "True",
         verdict(packaging["reproducible"])),
        ("Whole import vs sum of steps (time)", f"{results['import_vs_sum_of_steps']:.2f}x",
         "<= 1.0x", verdict(results["import_vs_sum_of_steps"] <= 1.0)),
        (f"  same, uploads {'buffered' if streamed_default else 'streamed'} (for comparison)",
         f"{results['import_other_upload_mode_vs_sum_of_steps']:.2f}x", "", ""),
        ("Worker peak RSS (MiB) by size (GiB)",
         ", ".join(f"{label}: {value:.0f}" for label, value in rss.items()),
         "flat +-50, < 300",
         verdict(max(rss_values) - min(rss_values) <= 50 and max(rss_values) < 300)),
        ("verify (no extraction) vs sha256sum", f"{results['verify_vs_sha256sum']:.2f}x",
         "<= 1.2x", verdict(results["verify_vs_sha256sum"] <= 1.2)),
        ("verify + extraction + model.sig vs sha256sum",
         f"{results['verify_extract_vs_sha256sum']:.2f}x", "(printed)", ""),
    ]  # fmt: skip
    if web:
        rows += [
            (f"Registry list, {web['versions']} versions: p95", f"{web['p95_ms']:.1f} ms",
             "< 150 ms", verdict(web["p95_ms"] < 150)),
            ("Registry list: requests/s (2 workers, 10 conns)", f"{web['rps']:.0f}", "", ""),
        ]  # fmt: skip
    seconds = results["seconds"]
    print()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"Aegis bench: {size_label(size)} GiB repo, medians of {runs} runs, "
          f"{os.cpu_count()} CPUs, {when}")  # fmt: skip
    print(f"{'figure':<48} {'measured':<28} {'target':<17} met")
    print("-" * 100)
    for name, value, target, met in rows:
        print(f"{name:<48} {value:<28} {target:<17} {met}")
    print("-" * 100)
    print(
        "seconds: tar -czf {tar_czf}, cat|sha256sum {cat_sha256sum}, package {package}, "
        "snapshot_download {snapshot_download}, boto3 upload {boto3_upload}, "
        "whole import {whole_import}, sha256sum artifact {sha256sum_artifact}, "
        "verify {verify}, verify+extract {verify_extract}".format(**seconds)
    )
    print(f"import stages (s): {seconds['import_stages']}")
    print(f"results: {RESULTS.relative_to(ROOT)}; bench took {results['bench_seconds']} s")


if __name__ == "__main__":
    main()
