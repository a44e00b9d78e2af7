"""Issue 13's figures: pulling a registered model through /hf/ against the manual way.

    python bench/serve.py [--size-gib 1] [--runs 3]     (also run by bench/run.py, `make bench`)

With the bench's services (SeaweedFS as the store, OpenBao, the Hub double): one registered
import of the synthetic repo, ``check_for_serving`` (the first-pull verification, timed on its
own), then gunicorn (2 workers, 4 threads each) serving /hf/, and per run, in the same run:

- ``snapshot_download`` of the model through the endpoint, into an empty cache, against the
  manual way: boto3's download of the artifact from the store, then ``tar -xzf``;
- the time to the first byte of the last file of the artifact, and of its last safetensors
  shard (a GET of each with curl);
- then four clients pulling at once, and the web processes' peak RSS (VmHWM of each gunicorn
  worker) after everything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.services import Services  # noqa: E402
from bench.synthetic import make_repo  # noqa: E402
from devservers.processes import free_port  # noqa: E402

PYTHON = sys.executable
MODEL = "bench-serve"
GiB = 1024**3
TOKEN_SCRIPT = """
import django; django.setup()
from django.contrib.auth.models import Group, User
from api.actions import create_token
user, _ = User.objects.get_or_create(username="bench-puller")
user.groups.add(Group.objects.get_or_create(name="viewer")[0])
print(create_token(user, "bench").secret)
"""
VERSION_SCRIPT = """
import django, json; django.setup()
from registry.models import ModelVersion
version = ModelVersion.objects.get(model__name="bench-serve", version="1.0")
files = [entry["path"] for entry in version.manifest]
print(json.dumps({"url": version.model_path, "files": files}))
"""


def log(message: str) -> None:
    print(f"[serve {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, **kwargs)


def worker(step: str, *arguments: str, env: dict[str, str]) -> dict[str, Any]:
    done = run([PYTHON, str(ROOT / "bench" / "worker.py"), step, *arguments], env=env,
               cwd=ROOT, capture_output=True)  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def start_gunicorn(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [str(Path(PYTHON).parent / "gunicorn"), "aegis_catalog.wsgi", "--workers", "2",
         "--threads", "4", "--bind", f"127.0.0.1:{port}", "--timeout", "900",
         "--log-level", "warning"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        probe = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                f"{url}/healthz"], capture_output=True, text=True)  # fmt: skip
        if probe.stdout == "200":
            return process, url
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("gunicorn did not answer /healthz")


def workers_peak_rss_mib(master: int) -> list[float]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    peaks = []
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(round(int(line.split()[1]) / 1024, 1))
    return peaks


def ttfb(url: str, token: str) -> float:
    done = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_starttransfer}",
                "-H", f"Authorization: Bearer {token}", url], capture_output=True)  # fmt: skip
    status, seconds = done.stdout.split()
    if status != "200":
        raise RuntimeError(f"{url} answered {status}")
    return float(seconds)


def manual(env: dict[str, str], url: str, work: Path) -> float:
    """The manual way: download the artifact from the store, then tar -xzf."""
    target = work / "manual"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    fetched = worker("fetch", url, str(target / "artifact.tar.gz"), env=env)["seconds"]
    started = time.perf_counter()
    run(["tar", "-xzf", str(target / "artifact.tar.gz"), "-C", str(target)])
    extracted = time.perf_counter() - started
    shutil.rmtree(target)
    return float(fetched) + extracted


def pull(env: dict[str, str], endpoint: str, token: str, cache: Path) -> float:
    shutil.rmtree(cache, ignore_errors=True)
    figures = worker("pull", endpoint, f"aegis/{MODEL}", "1.0", str(cache),
                     env={**env, "HF_TOKEN": token})  # fmt: skip
    shutil.rmtree(cache, ignore_errors=True)
    return float(figures["seconds"])


def four_at_once(env: dict[str, str], endpoint: str, token: str, work: Path) -> float:
    seconds: list[float] = []

    def one(index: int) -> None:
        seconds.append(pull(env, endpoint, token, work / f"cache-{index}"))

    threads = [threading.Thread(target=one, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return max(seconds)


def bench_serving(
    services: Services, env: dict[str, str], work: Path, repo_id: str, runs: int
) -> dict[str, Any]:
    log(f"registering an import of {repo_id} as {MODEL} 1.0 (S3)")
    run([PYTHON, "manage.py", "hf_import", "--repo-id", repo_id,
         "--revision", services.commits[repo_id], "--model-name", MODEL, "--version", "1.0",
         "--upload-s3", "--register", "--no-progress"],
        env=env, cwd=ROOT, capture_output=True)  # fmt: skip
    started = time.perf_counter()
    run([PYTHON, "manage.py", "check_for_serving", MODEL], env=env, cwd=ROOT, capture_output=True)
    check_s = time.perf_counter() - started
    token = run([PYTHON, "-c", TOKEN_SCRIPT], env=env, cwd=ROOT, capture_output=True).stdout.strip()
    version = json.loads(
        run([PYTHON, "-c", VERSION_SCRIPT], env=env, cwd=ROOT, capture_output=True).stdout
    )
    gunicorn, url = start_gunicorn(env)
    endpoint = f"{url}/hf"
    last_file = sorted(version["files"])[-1]
    last_shard = sorted(path for path in version["files"] if path.endswith(".safetensors"))[-1]
    serve, by_hand, first_byte, shard_first_byte = [], [], [], []
    try:
        for index in range(runs):
            log(f"run {index + 1}/{runs}: snapshot_download through /hf/, manual, TTFB")
            serve.append(pull(env, endpoint, token, work / "cache"))
            by_hand.append(manual(env, version["url"], work))
            first_byte.append(ttfb(f"{endpoint}/aegis/{MODEL}/resolve/1.0/{last_file}", token))
            shard_first_byte.append(
                ttfb(f"{endpoint}/aegis/{MODEL}/resolve/1.0/{last_shard}", token)
            )
        log("four clients pulling at once")
        four_s = four_at_once(env, endpoint, token, work)
        peaks = workers_peak_rss_mib(gunicorn.pid)
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        gunicorn.wait(timeout=60)
    return {
        "serve_vs_manual": round(median(serve) / median(by_hand), 3),
        "serve_last_file_ttfb_s": round(median(first_byte), 4),
        "serve_peak_rss_mib": max(peaks),
        "serve_seconds": {
            "check_for_serving": round(check_s, 3),
            "snapshot_download_via_hf": round(median(serve), 3),
            "manual_download_and_tar_xzf": round(median(by_hand), 3),
            "four_clients_at_once_slowest": round(four_s, 3),
        },
        "serve_worker_peak_rss_mib": peaks,
        "serve_last_file": last_file,
        "serve_last_shard": last_shard,
        "serve_last_shard_ttfb_s": round(median(shard_first_byte), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aegis-bench-serve-", dir=os.environ.get("BENCH_TMP")))
    repo_id = "bench-org/serve"
    try:
        log(f"making a {options.size_gib} GiB synthetic repo")
        make_repo(work / "repo", int(options.size_gib * GiB), seed=7)
        services = Services(work, {repo_id: work / "repo"})
        try:
            env = services.env(work)
            run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env=env, cwd=ROOT)
            figures = bench_serving(services, env, work, repo_id, max(1, options.runs))
        finally:
            services.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
