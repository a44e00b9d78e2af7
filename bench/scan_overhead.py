"""What scanning adds to an import (issue 15): the whole one-pass import of a safetensors-only
repo with its scanners, against the same import with them replaced by no-ops.

    python bench/run.py --only scan [--size-gib 1] [--runs 5]     (this part alone)
    make bench                                                    (with everything else)

The repo is the bench's 1x synthetic repo (bench/synthetic.py, the same seed): safetensors
shards of random bytes plus config.json, tokenizer.json, merges.txt and README.md. Its weights
are all safetensors, so the scan is what a clean import pays: each shard's header read and
checked, the small files through the pickle scanners and the format scanners, the remote-code
finder, the policy over what they found.

The baseline does everything but scanning, measured the way every import of the bench is: a
fresh bench/worker.py process per import, the same repo from the same Hub double, into the same
SeaweedFS bucket, with the same settings, on the one-pass path (AEGIS_ONE_PASS_IMPORT, the
default, set explicitly here). Its worker ("import-unscanned") first replaces, in its own process
only, what the one pass (imports.pipeline.stream) calls to scan (`without_scanning`). No
product setting turns scanning off.

The runs alternate, and so does which of the two goes first (scanned then unscanned, then
unscanned then scanned...), so whatever drifts on a busy machine reaches both. One import
before them, not counted, warms the page cache and the store. `scan_overhead` is
median(scanned seconds) / median(unscanned seconds) - 1; the peak RSS is the highest VmHWM
of the scanned imports' processes (start-up included, as in the rest of the bench).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GiB = 1024**3
# A worker step run in a fresh process: bench/run.py's `worker(step, *arguments, env=...)`.
Worker = Callable[..., dict[str, Any]]
Replace = Callable[[object, str, object], None]
Row = tuple[str, str, str, str]
TARGET_OVERHEAD = 0.05
TARGET_RSS_MIB = 300


class BaselineMismatch(RuntimeError):
    """The baseline no longer matches the import: what it replaces is gone or was not called."""


def without_scanning(replace: Replace = setattr) -> list[str]:
    """Make the one-pass import in this process skip every scan: `examine` (the safetensors
    header check, the format scanners, the pickle scanners), `find_remote_code` and `judge`
    (the policy over their findings) as imports.pipeline.stream calls them become no-ops, and
    the header proof of the shards the pass keeps in memory (`ProvenWeightsInMemory.keep`)
    keeps them unread. The
    list returned fills with the paths whose scan was skipped. `replace` is `setattr`, or a
    test's `monkeypatch.setattr`."""
    from imports.pipeline import stream
    from imports.pipeline.scan import ScanResult
    from imports.scanners.base import Finding
    from imports.scanners.pickles import ScanVerdict
    from imports.scanners.remote_code import RemoteCode
    from registry.policy import ImportRules

    skipped: list[str] = []

    # Each takes what the real one is given, and whatever else it comes to be given: the
    # pipeline changes under the bench, and a baseline that breaks on a new argument measures
    # nothing.
    def examine(
        local: Path, name: str, *more: object, **keywords: object
    ) -> tuple[ScanVerdict | None, list[Finding]]:
        skipped.append(name)
        return None, []

    def find_remote_code(*arguments: object, **keywords: object) -> RemoteCode | None:
        return None

    def judge(
        verdicts: object, rules: ImportRules, *more: object, **keywords: object
    ) -> ScanResult:
        return ScanResult(verdicts=(), rules_digest=rules.digest())

    def keep(policy: object, name: str, size: int, head: bytes, *more: object) -> bool:
        # A shard is kept in memory unread, as if its header had proven it.
        skipped.append(name)
        return True

    weights = getattr(stream, "ProvenWeightsInMemory", None)
    for owner, name, no_op in (
        (stream, "examine", examine),
        (stream, "find_remote_code", find_remote_code),
        (stream, "judge", judge),
        (weights, "keep", keep),  # the shards' header proof
    ):
        if not callable(getattr(owner, name, None)):
            what = name if owner is stream else f"ProvenWeightsInMemory.{name}"
            raise BaselineMismatch(
                f"imports.pipeline.stream has no {what}() any more: bench/scan_overhead.py's "
                "baseline must replace what the one-pass import now calls to scan"
            )
        replace(owner, name, no_op)
    return skipped


def bench_scan_overhead(
    worker: Worker, env: dict[str, str], repo_id: str, runs: int
) -> dict[str, Any]:
    """`runs` scanned and `runs` unscanned imports of `repo_id`, alternating, after one
    uncounted import; the seconds, CPU seconds and peak RSS of each."""
    env = {**env, "AEGIS_ONE_PASS_IMPORT": "true"}
    log("scan overhead: one uncounted import first (page cache, store)")
    worker("import-unscanned", repo_id, "bench-scan-warmup", env=env)
    figures: dict[str, dict[str, list[float]]] = {
        kind: {"seconds": [], "cpu_seconds": [], "peak_rss_mib": []}
        for kind in ("scanned", "unscanned")
    }
    for index in range(runs):
        order = ("scanned", "unscanned") if index % 2 == 0 else ("unscanned", "scanned")
        said = []
        for kind in order:
            step = "import" if kind == "scanned" else "import-unscanned"
            done = worker(step, repo_id, f"bench-{kind}-{index}", env=env)
            if kind == "unscanned" and not done["scans_skipped"]:
                raise BaselineMismatch("the unscanned import skipped no scan: the baseline is off")
            for figure, values in figures[kind].items():
                values.append(float(done[figure]))
            said.append(
                f"{kind} {done['seconds']:.2f} s (CPU {done['cpu_seconds']:.2f} s, "
                f"peak RSS {done['peak_rss_mib']:.0f} MiB)"
            )
        log(f"scan overhead run {index + 1}/{runs}: " + ", ".join(said))
    scanned, unscanned = figures["scanned"], figures["unscanned"]
    overhead = median(scanned["seconds"]) / median(unscanned["seconds"]) - 1
    log(
        f"scan overhead: medians scanned {median(scanned['seconds']):.2f} s, unscanned "
        f"{median(unscanned['seconds']):.2f} s: {overhead:+.1%}; CPU "
        f"{median(scanned['cpu_seconds']):.2f} vs {median(unscanned['cpu_seconds']):.2f} s"
    )
    return {"runs": runs, **figures}


def measure_scan_alone(work: Path, size_gib: float, runs: int, worker: Worker) -> dict[str, Any]:
    """`--only scan`: the 1x synthetic repo served by the Hub double, SeaweedFS and OpenBao
    started as for the whole bench, and `bench_scan_overhead` on them."""
    from bench.services import Services
    from bench.synthetic import make_repo

    label = f"{size_gib:g}"
    repo = work / f"repo-{label}"
    repo_id = f"bench-org/model-{label.replace('.', '_')}gib"
    log(f"making a {label} GiB synthetic repo")
    make_repo(repo, int(size_gib * GiB), seed=1)  # bench/run.py's 1x repo: the same bytes
    services = Services(work, {repo_id: repo})
    try:
        env = services.env(work)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            check=True,
            env=env,
            cwd=ROOT,
        )
        return bench_scan_overhead(worker, env, repo_id, runs)
    finally:
        services.stop()


def scan_results(figures: dict[str, Any]) -> dict[str, Any]:
    """The keys of bench/results.json: `scan_overhead` (a fraction: 0.03 is 3 %),
    `scan_peak_rss_mib`, and `scan` with the runs' figures."""
    scanned, unscanned = figures["scanned"], figures["unscanned"]
    return {
        "scan_overhead": round(median(scanned["seconds"]) / median(unscanned["seconds"]) - 1, 4),
        "scan_peak_rss_mib": round(max(scanned["peak_rss_mib"]), 1),
        "scan": {
            "runs": figures["runs"],
            "one_pass_import": True,
            "scanned_s": round(median(scanned["seconds"]), 3),
            "unscanned_s": round(median(unscanned["seconds"]), 3),
            "scanned_cpu_s": round(median(scanned["cpu_seconds"]), 3),
            "unscanned_cpu_s": round(median(unscanned["cpu_seconds"]), 3),
            "unscanned_peak_rss_mib": round(max(unscanned["peak_rss_mib"]), 1),
            "each_run_s": {
                kind: [round(value, 3) for value in figures[kind]["seconds"]]
                for kind in ("scanned", "unscanned")
            },
        },
    }


def scan_rows(results: dict[str, Any]) -> list[Row]:
    """(figure, measured, target, met) rows for bench/run.py's table."""
    overhead, rss, scan = results["scan_overhead"], results["scan_peak_rss_mib"], results["scan"]
    cpu_overhead = scan["scanned_cpu_s"] / scan["unscanned_cpu_s"] - 1
    return [
        ("Scanning's share of a safetensors-only import",
         f"{overhead:+.1%} ({scan['scanned_s']:.2f} vs {scan['unscanned_s']:.2f} s)",
         "< 5 %", verdict(overhead < TARGET_OVERHEAD)),
        ("  importer CPU, scanned vs unscanned",
         f"{cpu_overhead:+.1%} ({scan['scanned_cpu_s']:.2f} vs {scan['unscanned_cpu_s']:.2f} s)",
         "(printed)", ""),
        ("  peak RSS of the scanned import (unscanned)",
         f"{rss:.0f} MiB ({scan['unscanned_peak_rss_mib']:.0f})", "< 300 MiB",
         verdict(rss < TARGET_RSS_MIB)),
    ]  # fmt: skip


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def median(values: list[float]) -> float:
    return statistics.median(values)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
