"""What storing incompressible blocks (artifact layout 3) saves: the packager's output size and
CPU with layout 2 (every 4 MiB block deflated) and layout 3 (blocks that would not shrink
stored), on the same synthetic repo (bench/synthetic.py: random-looking shards and about 2 %
compressible JSON and text).

    python bench/compression.py [--size-mib 256] [--runs 3]

Prints, for each layout and for the repo's compressible files alone: output/input size (input:
the model files' bytes), process CPU seconds of the whole packaging (user + system of every
thread, from getrusage: reading, hashing input and output, compressing, writing) and wall
seconds, medians of --runs runs; the CPU seconds of the compressor alone (deflate_block over
the same tar stream's blocks in one thread); and layout 3's figures over layout 2's. The files
are read once before measuring, so both layouts read them from the page cache. Nothing asserts.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.synthetic import make_repo  # noqa: E402
from imports.gzip_blocks import BLOCK_SIZE, GZIP_LEVEL, GZIP_WINDOW, deflate_block  # noqa: E402
from imports.packaging import package_snapshot  # noqa: E402

MiB = 1024 * 1024
LAYOUTS = (2, 3)
READ_CHUNK = 16 * MiB


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _read_once(files: dict[str, Path]) -> None:
    """Read every file, so no layout pays for the first read from disk."""
    for path in files.values():
        with path.open("rb") as handle:
            while handle.read(READ_CHUNK):
                pass


def _measure(files: dict[str, Path], tarball: Path, layout: int) -> dict[str, float]:
    """One packaging run: output size, process CPU and wall seconds."""
    tarball.unlink(missing_ok=True)
    os.sync()  # the previous run's writes are not this run's cost
    cpu, wall = _cpu_seconds(), time.perf_counter()
    result = package_snapshot(
        tarball, root_name="bench-model-1", model_files=files, mtime=1_767_225_600, layout=layout
    )
    return {
        "size": float(result.size),
        "cpu_seconds": _cpu_seconds() - cpu,
        "wall_seconds": time.perf_counter() - wall,
    }


def _compressor_cpu_seconds(tarball: Path, layout: int) -> float:
    """CPU seconds of deflate_block alone over the tar stream in ``tarball``, block by block
    in this thread, as the packager compresses them in ``layout``."""
    spent, dictionary = 0.0, b""
    with gzip.open(tarball, "rb") as stream:
        block = stream.read(BLOCK_SIZE)
        while block:
            following = stream.read(BLOCK_SIZE)
            started = time.thread_time()
            deflate_block(block, dictionary, GZIP_LEVEL, not following, layout >= 3)
            spent += time.thread_time() - started
            dictionary, block = block[-GZIP_WINDOW:], following
    return spent


def compression_figures(files: dict[str, Path], work: Path, *, runs: int = 3) -> dict[str, Any]:
    """Package ``files`` in layout 2 and in layout 3 ``runs`` times each (alternating, in
    ``work``); for each layout the output/input size ratio and the medians of process CPU and
    wall seconds and the compressor's CPU seconds alone, and ``layout_3_over_2``: layout 3's
    figures over layout 2's."""
    input_bytes = sum(path.stat().st_size for path in files.values())
    _read_once(files)
    runs_of: dict[int, list[dict[str, float]]] = {layout: [] for layout in LAYOUTS}
    tarballs = {layout: work / f"layout-{layout}.tar.gz" for layout in LAYOUTS}
    for _ in range(max(1, runs)):
        for layout in LAYOUTS:
            runs_of[layout].append(_measure(files, tarballs[layout], layout))
    compressor = {
        layout: [_compressor_cpu_seconds(tarballs[2], layout) for _ in range(max(1, runs))]
        for layout in LAYOUTS
    }
    for tarball in tarballs.values():
        tarball.unlink()
    figures: dict[str, Any] = {"input_bytes": input_bytes}
    for layout, measured in runs_of.items():
        figures[f"layout_{layout}"] = {
            "output_bytes": int(measured[0]["size"]),
            "size_ratio": round(measured[0]["size"] / input_bytes, 4),
            "cpu_seconds": round(statistics.median(m["cpu_seconds"] for m in measured), 3),
            "wall_seconds": round(statistics.median(m["wall_seconds"] for m in measured), 3),
            "compressor_cpu_seconds": round(statistics.median(compressor[layout]), 3),
        }
    two, three = figures["layout_2"], figures["layout_3"]
    figures["layout_3_over_2"] = {
        key: round(three[key] / two[key], 4) if two[key] else None
        for key in ("output_bytes", "cpu_seconds", "wall_seconds", "compressor_cpu_seconds")
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=float, default=256.0)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aegis-bench-gzip-", dir=os.environ.get("BENCH_TMP")))
    try:
        log(f"making a {options.size_mib:g} MiB synthetic repo")
        files = make_repo(work / "repo", int(options.size_mib * MiB), seed=11)
        compressible = {name: path for name, path in files.items() if "safetensors" not in name}
        log(f"packaging it in layouts 2 and 3, {options.runs} runs each")
        figures = {
            "synthetic_repo": compression_figures(files, work, runs=options.runs),
            "compressible_files_only": compression_figures(compressible, work, runs=options.runs),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
