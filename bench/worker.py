"""One measured step, in a process of its own; prints one JSON line with its figures.

    python bench/worker.py import REPO_ID MODEL_NAME       (env: Django settings, Hub, Vault, S3;
                                                            not registered: a registered import
                                                            of content already in the registry
                                                            only links to it, and each run must
                                                            do the whole work)
    python bench/worker.py import-unscanned REPO_ID MODEL_NAME
                                                            (the same, its scans replaced by
                                                             no-ops: bench/scan_overhead.py)
    python bench/worker.py download REPO_ID COMMIT DEST     (snapshot_download alone)
    python bench/worker.py upload TARBALL KEY               (boto3 upload_file alone)
    python bench/worker.py verify TARBALL [--extract]       (verify_model_artifact)
    python bench/worker.py fetch S3_URL DEST                (boto3 download_file of an artifact)
    python bench/worker.py pull ENDPOINT REPO_ID REV CACHE  (snapshot_download through /hf/)

Timing covers the step only (not the interpreter's or Django's start-up); `peak_rss_mib` is
the process's high-water mark of resident memory (VmHWM), start-up included. An import also
gives `cpu_seconds`: the user + system CPU time of this process (all its threads) during the
import, so the importer's own, not the Hub double's or SeaweedFS's (other processes).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler(threading.Thread):
    """Samples the resident memory every 50 ms, to tell which stage reached the peak."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.samples.append((time.time(), int(line.split()[1]) / 1024))

    def peak_between(self, start: float, end: float) -> float:
        return max((rss for when, rss in self.samples if start <= when <= end), default=0.0)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_import(repo_id: str, model_name: str, *, scanning: bool = True) -> dict[str, object]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_catalog.settings")
    django.setup()
    from django.core.management import call_command

    # The import's modules (huggingface_hub, boto3...) are loaded before the clock starts, as
    # the steps measured alone load theirs: the figure is the import, not Python's imports.
    import imports.management.commands.hf_import  # noqa: F401
    from imports.models import ImportEvent, ImportRequest

    skipped: list[str] = []
    if not scanning:
        from bench.scan_overhead import without_scanning

        skipped = without_scanning()

    sampler = RssSampler()
    sampler.start()
    cpu_started = cpu_seconds()
    started = time.perf_counter()
    call_command(
        "hf_import",
        repo_id=repo_id,
        model_name=model_name,
        version="1",
        upload_s3=True,
        register=False,
        no_progress=True,
        actor="bench",
        stdout=open(os.devnull, "w"),  # noqa: SIM115
    )
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_started
    sampler.stopped.set()
    request = ImportRequest.objects.filter(model_name=model_name).latest("pk")
    stages = {}
    stage_rss = {}
    for event in request.events.filter(kind=ImportEvent.Kind.STAGE_FINISHED):
        took = float(event.details.get("seconds") or 0)
        stages[event.stage] = took
        end = event.created_at.timestamp()
        stage_rss[event.stage] = round(sampler.peak_between(end - took, end), 1)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "scans_skipped": len(skipped),
        "stages": stages,
        "stage_peak_rss_mib": stage_rss,
        "artifact_url": request.result["artifact_url"],
        "sha256": request.result["sha256"],
        "size": request.result["size"],
    }


def run_download(repo_id: str, commit: str, dest: str) -> dict[str, object]:
    from huggingface_hub import snapshot_download

    started = time.perf_counter()
    snapshot_download(
        repo_id,
        revision=commit,
        local_dir=dest,
        endpoint=os.environ["HF_ENDPOINT"],
        max_workers=int(os.environ.get("AEGIS_HUB_DOWNLOAD_WORKERS", "8")),
    )
    return {"seconds": time.perf_counter() - started}


def run_upload(tarball: str, key: str) -> dict[str, object]:
    """boto3's upload_file of the finished tarball, with the S3 client and transfer settings
    the import itself uses (services.s3_config): the same request signing, part size and
    threads, so the two differ only in what the import does differently."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_catalog.settings")
    django.setup()
    from aegis_catalog import services
    from aegis_catalog.lib.storage import S3Store

    store = S3Store(services.s3_config())
    client = store.client
    config = store.transfer_config()
    started = time.perf_counter()
    client.upload_file(tarball, store.bucket, store.object_key(key), Config=config)
    return {"seconds": time.perf_counter() - started}


def run_verify(tarball: str, extract: bool) -> dict[str, object]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_catalog.settings")
    django.setup()
    from registry.verify import verify_model_artifact

    started = time.perf_counter()
    result = verify_model_artifact(tarball, extract=extract)
    return {"seconds": time.perf_counter() - started, "checks": result.check_names}


def run_fetch(url: str, dest: str) -> dict[str, object]:
    """boto3's download_file of a stored object, with the store's client and transfer settings."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_catalog.settings")
    django.setup()
    from aegis_catalog import services
    from aegis_catalog.lib.storage import S3Store

    store = S3Store(services.s3_config())
    bucket, _, key = url.removeprefix("s3://").partition("/")
    started = time.perf_counter()
    store.client.download_file(bucket, key, dest, Config=store.transfer_config())
    return {"seconds": time.perf_counter() - started}


def run_pull(endpoint: str, repo_id: str, revision: str, cache: str) -> dict[str, object]:
    """Unchanged client code: snapshot_download through Aegis's /hf/ (HF_TOKEN from the env)."""
    from huggingface_hub import snapshot_download

    started = time.perf_counter()
    snapshot_download(repo_id, revision=revision, endpoint=endpoint, cache_dir=cache)
    return {"seconds": time.perf_counter() - started}


def main() -> None:
    step, *arguments = sys.argv[1:]
    if step == "import":
        figures = run_import(*arguments)
    elif step == "import-unscanned":
        figures = run_import(*arguments, scanning=False)
    elif step == "download":
        figures = run_download(*arguments)
    elif step == "upload":
        figures = run_upload(*arguments)
    elif step == "fetch":
        figures = run_fetch(*arguments)
    elif step == "pull":
        figures = run_pull(*arguments)
    elif step == "verify":
        figures = run_verify(arguments[0], "--extract" in arguments)
    else:
        raise SystemExit(f"unknown step {step!r}")
    figures["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
