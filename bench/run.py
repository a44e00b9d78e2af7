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

from bench.serve import bench_serving  # noqa: E402
from bench.services import Services  # noqa: E402
from bench.synthetic import make_repo  # noqa: E402
from bench.web import bench_web  # noqa: E402
from imports.packaging import package_snapshot  # noqa: E402

GiB = 1024**3
PYTHON = sys.executable
RESULTS = ROOT / "bench" / "results.json"
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
    command = [PYTHON, str(ROOT / "bench" / "worker.py"), step, *arguments]
    done = subprocess.run(command, env=env, capture_output=True, cwd=ROOT, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench/worker.py {step} {' '.join(arguments)} failed:\n{done.stderr}")
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
        tar_command = ["tar", "-czf", str(baseline), "-C", str(repo), *names]
        tar_seconds.append(timed(partial(run, tar_command)))
        baseline.unlink()
        concatenate = ["bash", "-c", 'cat "$@" | sha256sum > /dev/null', "cat", *paths]
        sha_seconds.append(timed(partial(run, concatenate)))
        tarball.unlink(missing_ok=True)
        result: list[Any] = []

        def package(into: list[Any] = result) -> None:
            into.append(
                package_snapshot(
                    tarball,
                    root_name="bench-model-1",
                    model_files=files,
                    mtime=1_767_225_600,
                )
            )

        package_seconds.append(timed(package))
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
        download_s, upload_s = steps_alone(services, client, env, work, main_repo, tarball)
        download_seconds.append(download_s)
        upload_seconds.append(upload_s)
        figures, other_s = import_in_both_upload_modes(env, main_repo, index)
        import_seconds.append(figures["seconds"])
        other_seconds.append(other_s)
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
        "other_mode_import_s": median(other_seconds),
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


def import_in_both_upload_modes(
    env: dict[str, str], repo_id: str, index: int
) -> tuple[dict[str, Any], float]:
    """A whole import in the configured upload mode (its figures), then one in the other mode,
    for comparison: streamed if the default is not, and back (its seconds)."""
    figures = worker("import", repo_id, f"bench-{index}", env=env)
    streamed = env.get("AEGIS_STREAM_UPLOADS", "true").lower() in TRUE_WORDS
    other = worker(
        "import",
        repo_id,
        f"bench-other-{index}",
        env={**env, "AEGIS_STREAM_UPLOADS": "false" if streamed else "true"},
    )
    log(f"  other upload mode: {other['seconds']:.2f} s, stages (s): {other['stages']}")
    return figures, other["seconds"]


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


# --- the table ----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def main() -> None:
    options = parse_arguments()
    size = options.size_gib
    runs = max(1, options.runs)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="aegis-bench-", dir=os.environ.get("BENCH_TMP")))
    try:
        packaging, imports, verify, web = measure(work, size, runs, options.wrk_seconds)
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    results = summarise(size, runs, packaging, imports, verify, web)
    results["bench_seconds"] = round(time.monotonic() - started, 1)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results, table_rows(results, packaging, web))


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size-gib", type=float, default=float(os.environ.get("SIZE_GIB") or 1), help="1"
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--wrk-seconds", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    return parser.parse_args()


Figures = dict[str, Any]


def measure(
    work: Path, size: float, runs: int, wrk_seconds: int
) -> tuple[Figures, Figures, Figures, Figures]:
    """Every figure: packaging, imports, verification (with the services running), then the
    registry page (without them)."""
    repos, repo_ids, files_of_main = make_repos(work, size)
    packaging = bench_packaging(repos[size], files_of_main, work, runs)
    services = Services(work, {repo_ids[gib]: repos[gib] for gib in repos})
    try:
        env = services.env(work)
        run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env=env, cwd=ROOT)
        imports = bench_import(
            services, env, work, repo_ids, size, packaging["package_s"], packaging["tarball"], runs
        )
        verify = bench_verify(imports["artifact"], env, runs)
        verify.update(bench_serving(services, env, work, repo_ids[size], runs))
    finally:
        services.stop()
    web = bench_web(work, wrk_seconds)
    return packaging, imports, verify, web


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


def summarise(
    size: float, runs: int, packaging: Figures, imports: Figures, verify: Figures, web: Figures
) -> dict[str, Any]:
    """The figures and ratios written to bench/results.json (without `bench_seconds`)."""
    sum_of_steps = imports["download_s"] + packaging["package_s"] + imports["upload_s"]
    return {
        "size_gib": size,
        "runs": runs,
        "package_speedup_vs_tar_czf": round(packaging["tar_czf_s"] / packaging["package_s"], 2),
        "package_vs_sha256sum": round(packaging["package_s"] / packaging["sha256sum_s"], 3),
        "package_reproducible": packaging["reproducible"],
        "package_readable_by_tar": packaging["readable_by_tar"],
        "import_vs_sum_of_steps": round(imports["import_s"] / sum_of_steps, 3),
        "stream_uploads": os.environ.get("AEGIS_STREAM_UPLOADS", "true").lower() in TRUE_WORDS,
        "import_other_upload_mode_vs_sum_of_steps": round(
            imports["other_mode_import_s"] / sum_of_steps, 3
        ),
        "peak_rss_mib": imports["peak_rss_mib"],
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
        "registry_p95_ms": web.get("sqlite", {}).get("registry", {}).get("p95_ms"),
        "registry_p95_ms_postgres": web.get("postgres", {}).get("registry", {}).get("p95_ms"),
        "imports_p95_ms": web.get("sqlite", {}).get("imports", {}).get("p95_ms"),
        "imports_p95_ms_postgres": web.get("postgres", {}).get("imports", {}).get("p95_ms"),
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
        "web": web,
    }


def table_rows(
    results: dict[str, Any], packaging: Figures, web: Figures
) -> list[tuple[str, str, str, str]]:
    """(figure, measured, target, met) for each row of the table."""
    rss = results["peak_rss_mib"]
    rss_values = list(rss.values())
    streamed_default = results["stream_uploads"]
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
    for database, pages in web.items():
        for page, figures in ((name, pages[name]) for name in ("registry", "imports")):
            rows += [
                (f"{page.capitalize()} list, {database}, 5,000 rows: p50 / p95",
                 f"{figures['p50_ms']:.0f} / {figures['p95_ms']:.0f} ms", "p95 < 100 ms",
                 verdict(figures["p95_ms"] < 100)),
                ("  requests/s (2 workers, 10 connections)", f"{figures['rps']:.0f}", "", ""),
            ]  # fmt: skip
    return rows


def print_table(results: dict[str, Any], rows: list[tuple[str, str, str, str]]) -> None:
    seconds = results["seconds"]
    print()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"Aegis bench: {size_label(results['size_gib'])} GiB repo, medians of "
          f"{results['runs']} runs, {os.cpu_count()} CPUs, {when}")  # fmt: skip
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
    print(f"/hf/ (s): {results['serve']['seconds']}")
    print(f"results: {RESULTS.relative_to(ROOT)}; bench took {results['bench_seconds']} s")


if __name__ == "__main__":
    main()
