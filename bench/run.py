"""Aegis performance bench: packaging, whole import, worker memory, scanning's cost,
verification, web.

    python bench/run.py [--size-gib 1] [--runs 5]      (`make bench`, `make bench SIZE_GIB=0.25`)
    python bench/run.py --only import ...               (packaging and the imports only)
    python bench/run.py --only scan ...                 (scanning's cost on an import only)

Makes its own synthetic repos (bench/synthetic.py) of 0.5x, 1x and 2x the size, serves them
through the Hub double (in a process of its own), starts SeaweedFS and OpenBao as the tests
do, and prints a table of figures (medians of --runs runs) and ratios against the baselines
measured in the same run on the same bytes. Also writes bench/results.json. Nothing here
asserts: the table says which targets are met.

The network-bound figures put the throttle (bench/throttle.py: the Hub double and SeaweedFS
each limited to 100 MB/s) in front of both the import and its baselines, for at most
THROTTLED_RUNS runs (each moves about 4x the repo's size at that rate). Scanning's cost is the
import against the same import with its scans replaced by no-ops, in alternating runs
(bench/scan_overhead.py).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scan_overhead import (  # noqa: E402
    bench_scan_overhead,
    measure_scan_alone,
    scan_results,
    scan_rows,
)
from bench.serve import bench_serving  # noqa: E402
from bench.services import Services  # noqa: E402
from bench.synthetic import make_repo  # noqa: E402
from bench.web import bench_web  # noqa: E402
from imports.packaging import package_snapshot  # noqa: E402

GiB = 1024**3
PYTHON = sys.executable
RESULTS = ROOT / "bench" / "results.json"
TRUE_WORDS = {"1", "true", "yes", "on"}  # as settings.env_bool reads AEGIS_STREAM_UPLOADS
THROTTLE_BYTES_PER_SECOND = 100 * 10**6
THROTTLED_RUNS = 3


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
    command = [PYTHON, str(ROOT / "bench" / "worker.py"), step, *arguments]
    done = subprocess.run(command, env=env, capture_output=True, cwd=ROOT, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench/worker.py {step} {' '.join(arguments)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def size_label(gib: float) -> str:
    return f"{gib:g}"


# --- 1. packaging ---------------------------------------------------------------------------


def package(tarball: Path, files: dict[str, Path], compress_workers: int | None = None) -> str:
    """package_snapshot of `files` into `tarball` (replacing it); the tarball's sha256."""
    tarball.unlink(missing_ok=True)
    result = package_snapshot(
        tarball,
        root_name="bench-model-1",
        model_files=files,
        mtime=1_767_225_600,
        compress_workers=compress_workers,
    )
    return result.sha256


def bench_packaging(repo: Path, files: dict[str, Path], work: Path, runs: int) -> dict[str, Any]:
    names = sorted(files)
    paths = [str(files[name]) for name in names]
    tar_seconds, sha_seconds, package_seconds, digests = [], [], [], []
    tarball = work / "aegis.tar.gz"
    for index in range(max(2, runs)):
        log(f"packaging run {index + 1}/{runs}: tar -czf, cat | sha256sum, package_snapshot")
        baseline = work / "baseline.tar.gz"
        tar_command = ["tar", "-czf", str(baseline), "-C", str(repo), *names]
        tar_seconds.append(timed(partial(run, tar_command)))
        baseline.unlink()
        concatenate = ["bash", "-c", 'cat "$@" | sha256sum > /dev/null', "cat", *paths]
        sha_seconds.append(timed(partial(run, concatenate)))
        package_seconds.append(timed(lambda: digests.append(package(tarball, files))))
    readable = subprocess.run(["tar", "-tzf", str(tarball)], capture_output=True).returncode == 0
    log("packaging with 1 and with 2 compression threads (the same bytes?)")
    by_threads = {workers: package(work / "threads.tar.gz", files, workers) for workers in (1, 2)}
    (work / "threads.tar.gz").unlink()
    return {
        "tar_czf_s": median(tar_seconds),
        "sha256sum_s": median(sha_seconds),
        "package_s": median(package_seconds),
        "reproducible": len(digests) >= 2 and len(set(digests)) == 1,
        "reproducible_across_threads": set(by_threads.values()) == {digests[0]},
        "readable_by_tar": readable,
        "tarball": tarball,
        "tarball_bytes": tarball.stat().st_size,
        "repo_bytes": sum(path.stat().st_size for path in files.values()),
    }


def bench_compression(files: dict[str, Path], work: Path) -> dict[str, Any]:
    """The figures of bench/compression.py's `compression_figures`, when it is there."""
    if importlib.util.find_spec("bench.compression") is None:
        log("no bench/compression.py: no compression figures")
        return {}
    log("compression figures (bench/compression.py)")
    module = importlib.import_module("bench.compression")
    return dict(module.compression_figures(files, work))


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
    cpu_seconds: dict[str, list[float]] = {"streamed": [], "old": []}
    rss: dict[str, list[float]] = {}
    stages: list[dict[str, Any]] = []
    client = services.s3.client()
    kept: dict[str, Any] | None = None
    for index in range(runs):
        log(f"import run {index + 1}/{runs}: snapshot_download, boto3 upload, whole import")
        download_s, upload_s = steps_alone(services, client, env, work, main_repo, tarball)
        download_seconds.append(download_s)
        upload_seconds.append(upload_s)
        figures, other = import_in_both_paths(env, main_repo, index)
        import_seconds.append(figures["seconds"])
        other_seconds.append(other["seconds"])
        streamed, old = (figures, other) if one_pass(env) else (other, figures)
        cpu_seconds["streamed"].append(streamed["cpu_seconds"])
        cpu_seconds["old"].append(old["cpu_seconds"])
        stages.append(figures["stages"])
        rss.setdefault(size_label(size_gib), []).append(figures["peak_rss_mib"])
        log(f"  stages (s): {figures['stages']}")
        log(f"  peak RSS by stage (MiB): {figures['stage_peak_rss_mib']}")
        if kept is None:
            kept = figures
    peak_rss_of_other_sizes(env, repo_ids, size_gib, rss)
    assert kept is not None
    artifact = fetch_artifact(services, client, work, kept["artifact_url"])
    return {
        "download_s": median(download_seconds),
        "upload_s": median(upload_seconds),
        "import_s": median(import_seconds),
        "other_path_import_s": median(other_seconds),
        "cpu_s": {path: median(values) for path, values in cpu_seconds.items()},
        "stages": stages[len(stages) // 2],
        "peak_rss_mib": {
            label: round(max(values), 1)
            for label, values in sorted(rss.items(), key=lambda item: float(item[0]))
        },
        "artifact": artifact,
        "package_s": package_s,
    }


def steps_alone(
    services: Services, client: Any, env: dict[str, str], work: Path, repo_id: str, tarball: Path
) -> tuple[float, float]:
    """The baselines: seconds of snapshot_download alone and of boto3's upload alone."""
    dest = work / "snapshot-alone"
    figures = worker("download", repo_id, services.commits[repo_id], str(dest), env=env)
    shutil.rmtree(dest)
    shutil.rmtree(work / "hf-home", ignore_errors=True)
    upload_s = worker("upload", str(tarball), "alone.tar.gz", env=env)["seconds"]
    client.delete_object(Bucket=services.bucket, Key="alone.tar.gz")
    return figures["seconds"], upload_s


def one_pass(env: dict[str, str]) -> bool:
    """Whether imports in `env` take the one-pass (streamed) path (AEGIS_ONE_PASS_IMPORT)."""
    return env.get("AEGIS_ONE_PASS_IMPORT", "true").lower() in TRUE_WORDS


def import_in_both_paths(
    env: dict[str, str], repo_id: str, index: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A whole import on the configured path, then one on the other, for comparison: the
    one-pass import (AEGIS_ONE_PASS_IMPORT, the default) and the old one, stage after stage.
    The figures of each."""
    figures = worker("import", repo_id, f"bench-{index}", env=env)
    log(f"  {figures['seconds']:.2f} s, CPU {figures['cpu_seconds']:.2f} s")
    other_env = {**env, "AEGIS_ONE_PASS_IMPORT": "false" if one_pass(env) else "true"}
    other = worker("import", repo_id, f"bench-other-{index}", env=other_env)
    log(
        f"  {'old' if one_pass(env) else 'one-pass'} path: {other['seconds']:.2f} s, "
        f"CPU {other['cpu_seconds']:.2f} s, stages (s): {other['stages']}"
    )
    return figures, other


def bench_throttled(
    services: Services, work: Path, repo_id: str, tarball: Path, relayed_bytes: int, runs: int
) -> dict[str, Any]:
    """The import and its network steps alone, with the Hub double and S3 behind the throttle
    (the same for all three). `relayed_bytes`: what one run moves through it, about."""
    throttle = services.start_throttle(THROTTLE_BYTES_PER_SECOND)
    env = services.env(work, throttled=True)
    client = services.s3.client()
    download_seconds, upload_seconds, import_seconds = [], [], []
    throttle_cpu_started = throttle.cpu_seconds()
    for index in range(runs):
        log(f"throttled run {index + 1}/{runs} ({THROTTLE_BYTES_PER_SECOND / 1e6:g} MB/s): "
            "snapshot_download, boto3 upload, whole import")  # fmt: skip
        download_s, upload_s = steps_alone(services, client, env, work, repo_id, tarball)
        download_seconds.append(download_s)
        upload_seconds.append(upload_s)
        figures = worker("import", repo_id, f"bench-throttled-{index}", env=env)
        import_seconds.append(figures["seconds"])
        log(f"  download {download_s:.2f} s, upload {upload_s:.2f} s, import "
            f"{figures['seconds']:.2f} s (CPU {figures['cpu_seconds']:.2f} s), "
            f"stages (s): {figures['stages']}")  # fmt: skip
    throttle_cpu = throttle.cpu_seconds() - throttle_cpu_started
    per_gib = throttle_cpu / (relayed_bytes * runs / GiB)
    return {
        "runs": runs,
        "download_s": median(download_seconds),
        "upload_s": median(upload_seconds),
        "import_s": median(import_seconds),
        "throttle_cpu_s": throttle_cpu,
        "throttle_cpu_s_per_gib": per_gib,
        # The share of one CPU the proxy takes while it moves bytes at the full rate.
        "throttle_cpu_share_at_rate": per_gib * THROTTLE_BYTES_PER_SECOND / GiB,
    }


def peak_rss_of_other_sizes(
    env: dict[str, str], repo_ids: dict[float, str], size_gib: float, rss: dict[str, list[float]]
) -> None:
    """One import of each other repo size, adding its peak RSS to `rss` (by size label)."""
    for gib, repo_id in repo_ids.items():
        if gib == size_gib:
            continue
        log(f"import of the {size_label(gib)} GiB repo (peak RSS)")
        figures = worker("import", repo_id, f"bench-rss-{size_label(gib)}", env=env)
        rss.setdefault(size_label(gib), []).append(figures["peak_rss_mib"])
        log(f"  peak RSS by stage (MiB): {figures['stage_peak_rss_mib']}")


def fetch_artifact(services: Services, client: Any, work: Path, artifact_url: str) -> Path:
    """An import's artifact, fetched with the files beside it (its attestation and model
    signature), for the verify figures."""
    artifact = work / "verify" / Path(artifact_url).name
    artifact.parent.mkdir(exist_ok=True)
    key = artifact_url.removeprefix(f"s3://{services.bucket}/")
    client.download_file(services.bucket, key, str(artifact))
    for suffix in (".sigstore.json", ".model.sig"):
        client.download_file(services.bucket, key + suffix, str(artifact) + suffix)
    return artifact


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


# --- the run and the table --------------------------------------------------------------------

Figures = dict[str, Any]


def main() -> None:
    options = parse_arguments()
    runs = max(1, options.runs)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="aegis-bench-", dir=os.environ.get("BENCH_TMP")))
    try:
        figures = measure(work, options.size_gib, runs, options)
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    results = summarise(options.size_gib, runs, figures)
    results["bench_seconds"] = round(time.monotonic() - started, 1)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results, table_rows(results, figures))


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size-gib", type=float, default=float(os.environ.get("SIZE_GIB") or 1), help="1"
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--wrk-seconds", type=int, default=30)
    parser.add_argument(
        "--only",
        choices=["import", "scan"],
        help="import: packaging and the imports (throttled too), not verify, /hf/ or the web; "
        "scan: scanning's cost on an import (bench/scan_overhead.py) alone",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    return parser.parse_args()


def measure(work: Path, size: float, runs: int, options: argparse.Namespace) -> dict[str, Figures]:
    """Every figure, by part: packaging and compression, then imports (unthrottled and
    throttled), scanning's cost (bench/scan_overhead.py) and verification with the services
    running, then the registry page (without them). With --only scan, scanning's cost alone."""
    if options.only == "scan":
        return {"scan": measure_scan_alone(work, size, runs, worker)}
    repos, repo_ids, files_of_main = make_repos(work, size)
    figures = {"packaging": bench_packaging(repos[size], files_of_main, work, runs)}
    figures["compression"] = bench_compression(files_of_main, work)
    services = Services(work, {repo_ids[gib]: repos[gib] for gib in repos})
    try:
        figures.update(measure_with_services(services, work, repo_ids, size, runs, figures))
        if options.only != "import":
            env = services.env(work)
            figures["scan"] = bench_scan_overhead(worker, env, repo_ids[size], runs)
            verify = bench_verify(figures["imports"]["artifact"], env, runs)
            verify.update(bench_serving(services, env, work, repo_ids[size], runs))
            figures["verify"] = verify
    finally:
        services.stop()
    if options.only != "import":
        figures["web"] = bench_web(work, options.wrk_seconds)
    return figures


def measure_with_services(
    services: Services,
    work: Path,
    repo_ids: dict[float, str],
    size: float,
    runs: int,
    figures: dict[str, Figures],
) -> dict[str, Figures]:
    """The imports: unthrottled (with the other sizes' memory), then throttled."""
    packaging = figures["packaging"]
    tarball = packaging["tarball"]
    env = services.env(work)
    run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env=env, cwd=ROOT)
    imports = bench_import(
        services, env, work, repo_ids, size, packaging["package_s"], tarball, runs
    )
    # A run moves the repo in and the tarball out twice: the steps alone, then the import.
    relayed = 2 * (packaging["repo_bytes"] + packaging["tarball_bytes"])
    throttled_runs = min(runs, THROTTLED_RUNS)
    throttled = bench_throttled(services, work, repo_ids[size], tarball, relayed, throttled_runs)
    return {"imports": imports, "throttled": throttled}


def make_repos(
    work: Path, size: float
) -> tuple[dict[float, Path], dict[float, str], dict[str, Path]]:
    """Synthetic repos of 0.5x, 1x and 2x `size` GiB: their directories and repo ids by size,
    and the files of the 1x one."""
    repos: dict[float, Path] = {}
    repo_ids: dict[float, str] = {}
    files_of_main: dict[str, Path] = {}
    for seed, gib in enumerate([size / 2, size, size * 2]):
        log(f"making a {size_label(gib)} GiB synthetic repo")
        repos[gib] = work / f"repo-{size_label(gib)}"
        repo_ids[gib] = f"bench-org/model-{size_label(gib).replace('.', '_')}gib"
        files = make_repo(repos[gib], int(gib * GiB), seed=seed)
        if gib == size:
            files_of_main = files
    return repos, repo_ids, files_of_main


def summarise(size: float, runs: int, figures: dict[str, Figures]) -> dict[str, Any]:
    """The figures and ratios written to bench/results.json (without `bench_seconds`)."""
    if "packaging" not in figures:  # --only scan
        return {"size_gib": size, "runs": runs, **scan_results(figures["scan"])}
    packaging, imports = figures["packaging"], figures["imports"]
    sum_of_steps = imports["download_s"] + packaging["package_s"] + imports["upload_s"]
    gib = packaging["repo_bytes"] / GiB
    results: dict[str, Any] = {
        "size_gib": size,
        "runs": runs,
        "package_speedup_vs_tar_czf": round(packaging["tar_czf_s"] / packaging["package_s"], 2),
        "package_vs_sha256sum": round(packaging["package_s"] / packaging["sha256sum_s"], 3),
        "package_reproducible": packaging["reproducible"],
        "package_reproducible_across_threads": packaging["reproducible_across_threads"],
        "package_readable_by_tar": packaging["readable_by_tar"],
        "import_vs_sum_of_steps": round(imports["import_s"] / sum_of_steps, 3),
        "one_pass_import": one_pass(dict(os.environ)),
        "stream_uploads": os.environ.get("AEGIS_STREAM_UPLOADS", "true").lower() in TRUE_WORDS,
        "import_other_path_vs_sum_of_steps": round(
            imports["other_path_import_s"] / sum_of_steps, 3
        ),
        "importer_cpu_s_per_gib": {
            path: round(seconds / gib, 2) for path, seconds in imports["cpu_s"].items()
        },
        "peak_rss_mib": imports["peak_rss_mib"],
        "seconds": {
            "tar_czf": round(packaging["tar_czf_s"], 3),
            "cat_sha256sum": round(packaging["sha256sum_s"], 3),
            "package": round(packaging["package_s"], 3),
            "snapshot_download": round(imports["download_s"], 3),
            "boto3_upload": round(imports["upload_s"], 3),
            "whole_import": round(imports["import_s"], 3),
            "whole_import_other_path": round(imports["other_path_import_s"], 3),
            "import_stages": imports["stages"],
        },
        "tarball_bytes": packaging["tarball_bytes"],
    }
    throttled, throttled_seconds = summarise_throttled(figures["throttled"], packaging["package_s"])
    results.update(throttled)
    results["seconds"].update(throttled_seconds)
    if figures["compression"]:
        results["compression"] = figures["compression"]
    if "verify" in figures:
        verify, verify_seconds = summarise_verify(figures["verify"])
        results.update(verify)
        results["seconds"].update(verify_seconds)
    if "web" in figures:
        results.update(summarise_web(figures["web"]))
    if "scan" in figures:
        results.update(scan_results(figures["scan"]))
    return results


def summarise_throttled(throttled: Figures, package_s: float) -> tuple[Figures, Figures]:
    """The throttled scenario's figures and ratios, and its seconds."""
    sum_of_steps = throttled["download_s"] + package_s + throttled["upload_s"]
    ratios = {
        "throttle_bytes_per_second": THROTTLE_BYTES_PER_SECOND,
        "throttled_runs": throttled["runs"],
        "throttled_import_vs_download": round(throttled["import_s"] / throttled["download_s"], 3),
        "throttled_import_vs_sum_of_steps": round(throttled["import_s"] / sum_of_steps, 3),
        "throttle_cpu": {
            "seconds": round(throttled["throttle_cpu_s"], 2),
            "s_per_gib_relayed": round(throttled["throttle_cpu_s_per_gib"], 3),
            "share_of_one_cpu_at_rate": round(throttled["throttle_cpu_share_at_rate"], 3),
        },
    }
    seconds = {
        "throttled_snapshot_download": round(throttled["download_s"], 3),
        "throttled_boto3_upload": round(throttled["upload_s"], 3),
        "throttled_sum_of_steps": round(sum_of_steps, 3),
        "throttled_whole_import": round(throttled["import_s"], 3),
    }
    return ratios, seconds


def summarise_verify(verify: Figures) -> tuple[Figures, Figures]:
    """Verification's and /hf/'s figures and ratios, and the seconds of verification."""
    ratios = {
        "verify_vs_sha256sum": round(verify["verify_s"] / verify["sha256sum_s"], 3),
        "verify_extract_vs_sha256sum": round(verify["verify_extract_s"] / verify["sha256sum_s"], 3),
        "serve_vs_manual": verify["serve_vs_manual"],
        "serve_last_file_ttfb_s": verify["serve_last_file_ttfb_s"],
        "serve_peak_rss_mib": verify["serve_peak_rss_mib"],
        "serve": {
            "seconds": verify["serve_seconds"],
            "worker_peak_rss_mib": verify["serve_worker_peak_rss_mib"],
            "last_file": verify["serve_last_file"],
            "last_shard": verify["serve_last_shard"],
            "last_shard_ttfb_s": verify["serve_last_shard_ttfb_s"],
        },
    }
    seconds = {
        "sha256sum_artifact": round(verify["sha256sum_s"], 3),
        "verify": round(verify["verify_s"], 3),
        "verify_extract": round(verify["verify_extract_s"], 3),
    }
    return ratios, seconds


def summarise_web(web: Figures) -> dict[str, Any]:
    return {
        "registry_p95_ms": web.get("sqlite", {}).get("registry", {}).get("p95_ms"),
        "registry_p95_ms_postgres": web.get("postgres", {}).get("registry", {}).get("p95_ms"),
        "imports_p95_ms": web.get("sqlite", {}).get("imports", {}).get("p95_ms"),
        "imports_p95_ms_postgres": web.get("postgres", {}).get("imports", {}).get("p95_ms"),
        "web": web,
    }


Row = tuple[str, str, str, str]


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def table_rows(results: dict[str, Any], figures: dict[str, Figures]) -> list[Row]:
    """(figure, measured, target, met) for each row of the table."""
    if "packaging" not in figures:  # --only scan
        return scan_rows(results)
    rows = packaging_rows(results) + compression_rows(results.get("compression", {}))
    rows += import_rows(results) + throttled_rows(results)
    if "verify" in figures:
        rows += verify_rows(results)
    if "scan" in figures:
        rows += scan_rows(results)
    for database, pages in figures.get("web", {}).items():
        for page, measured in ((name, pages[name]) for name in ("registry", "imports")):
            rows += [
                (f"{page.capitalize()} list, {database}, 5,000 rows: p50 / p95",
                 f"{measured['p50_ms']:.0f} / {measured['p95_ms']:.0f} ms", "p95 < 100 ms",
                 verdict(measured["p95_ms"] < 100)),
                ("  requests/s (2 workers, 10 connections)", f"{measured['rps']:.0f}", "", ""),
            ]  # fmt: skip
    return rows


def packaging_rows(results: dict[str, Any]) -> list[Row]:
    reproducible = results["package_reproducible"]
    across_threads = results["package_reproducible_across_threads"]
    return [
        ("Packaging vs tar -czf (speedup)", f"{results['package_speedup_vs_tar_czf']:.1f}x",
         ">= 6x", verdict(results["package_speedup_vs_tar_czf"] >= 6)),
        ("Packaging vs cat | sha256sum (time)", f"{results['package_vs_sha256sum']:.2f}x",
         "<= 1.5x", verdict(results["package_vs_sha256sum"] <= 1.5)),
        ("Tarball byte-identical across runs", str(reproducible), "True", verdict(reproducible)),
        ("  and across compression threads (1, 2, all)", str(across_threads), "True",
         verdict(across_threads)),
    ]  # fmt: skip


def compression_rows(compression: dict[str, Any]) -> list[Row]:
    """bench/compression.py's figures: for each layout, output/input size and the packaging's
    CPU seconds (the compressor's alone in brackets); then layout 3's over layout 2's."""
    rows = []
    for name, layout in compression.items():
        if name.startswith("layout_") and "size_ratio" in layout:
            rows.append(
                (f"Compression, {name.replace('_', ' ')}: out/in, CPU s",
                 f"{layout['size_ratio']:.4f}, {layout['cpu_seconds']:.2f} "
                 f"(deflate {layout['compressor_cpu_seconds']:.2f})", "(printed)", "")
            )  # fmt: skip
    over = compression.get("layout_3_over_2")
    if over:
        ratios = (
            over.get(key) for key in ("output_bytes", "cpu_seconds", "compressor_cpu_seconds")
        )
        rows.append(
            ("  layout 3 / layout 2: size, CPU, deflate CPU",
             ", ".join("-" if ratio is None else f"{ratio:.3f}x" for ratio in ratios),
             "(printed)", "")
        )  # fmt: skip
    return rows


def import_rows(results: dict[str, Any]) -> list[Row]:
    rss = results["peak_rss_mib"]
    rss_values = list(rss.values())
    other_path = "old path (AEGIS_ONE_PASS_IMPORT=false)"
    if not results["one_pass_import"]:
        other_path = "one-pass (AEGIS_ONE_PASS_IMPORT=true)"
    cpu = results["importer_cpu_s_per_gib"]
    return [
        ("Whole import vs sum of steps (time)", f"{results['import_vs_sum_of_steps']:.2f}x",
         "<= 0.85x", verdict(results["import_vs_sum_of_steps"] <= 0.85)),
        (f"  same, {other_path}",
         f"{results['import_other_path_vs_sum_of_steps']:.2f}x", "", ""),
        ("Importer CPU s per GiB: one-pass / old path",
         f"{cpu['streamed']:.2f} / {cpu['old']:.2f}", "(printed)", ""),
        ("Worker peak RSS (MiB) by size (GiB)",
         ", ".join(f"{label}: {value:.0f}" for label, value in rss.items()),
         "flat +-50, < 300",
         verdict(max(rss_values) - min(rss_values) <= 50 and max(rss_values) < 300)),
    ]  # fmt: skip


def throttled_rows(results: dict[str, Any]) -> list[Row]:
    rate = f"{results['throttle_bytes_per_second'] / 1e6:g} MB/s"
    seconds = results["seconds"]
    throttle_cpu = results["throttle_cpu"]
    return [
        (f"Import vs snapshot_download, both at {rate}",
         f"{results['throttled_import_vs_download']:.2f}x", "<= 1.15x",
         verdict(results["throttled_import_vs_download"] <= 1.15)),
        ("  vs sum of steps at that rate (s)",
         f"{results['throttled_import_vs_sum_of_steps']:.2f}x of "
         f"{seconds['throttled_sum_of_steps']:.1f} s", "(printed)", ""),
        ("  throttle's CPU at the full rate (of one CPU)",
         f"{throttle_cpu['share_of_one_cpu_at_rate']:.1%}", "(printed)", ""),
    ]  # fmt: skip


def verify_rows(results: dict[str, Any]) -> list[Row]:
    return [
        ("verify (no extraction) vs sha256sum", f"{results['verify_vs_sha256sum']:.2f}x",
         "<= 1.2x", verdict(results["verify_vs_sha256sum"] <= 1.2)),
        ("verify + extraction + manifest + model.sig vs sha256sum",
         f"{results['verify_extract_vs_sha256sum']:.2f}x", "(printed)", ""),
        ("/hf/ snapshot_download vs store download + tar -xzf",
         f"{results['serve_vs_manual']:.2f}x",
         "<= 1.0x", verdict(results["serve_vs_manual"] <= 1.0)),
        ("/hf/ first byte of the artifact's last file",
         f"{results['serve_last_file_ttfb_s']:.3f} s",
         "< 0.2 s", verdict(results["serve_last_file_ttfb_s"] < 0.2)),
        ("/hf/ web worker peak RSS, 4 clients at once", f"{results['serve_peak_rss_mib']:.0f} MiB",
         "< 300 MiB", verdict(results["serve_peak_rss_mib"] < 300)),
    ]  # fmt: skip


def print_table(results: dict[str, Any], rows: list[Row]) -> None:
    print()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    throttled = f" ({results['throttled_runs']} throttled)" if "throttled_runs" in results else ""
    print(f"Aegis bench: {size_label(results['size_gib'])} GiB repo, medians of "
          f"{results['runs']} runs{throttled}, {os.cpu_count()} CPUs, {when}")  # fmt: skip
    print(f"{'figure':<48} {'measured':<28} {'target':<17} met")
    print("-" * 100)
    for name, value, target, met in rows:
        print(f"{name:<48} {value:<28} {target:<17} {met}")
    print("-" * 100)
    if "seconds" in results:  # not with --only scan
        seconds = results["seconds"]
        print("seconds: " + ", ".join(
            f"{name.replace('_', ' ')} {value}"
            for name, value in seconds.items() if name != "import_stages"
        ))  # fmt: skip
        print(f"import stages (s): {seconds['import_stages']}")
        print(f"throttle CPU: {results['throttle_cpu']}")
    if "serve" in results:
        print(f"/hf/ (s): {results['serve']['seconds']}")
    if "scan" in results:
        print(f"scan overhead, each run (s): {results['scan']['each_run_s']}")
    print(f"results: {RESULTS.relative_to(ROOT)}; bench took {results['bench_seconds']} s")


if __name__ == "__main__":
    main()
