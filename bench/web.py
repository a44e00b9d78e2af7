"""The registry list and the imports list under load, on SQLite and on PostgreSQL.

    python bench/web.py [--seconds 30]          (also run by bench/run.py, `make bench`)

For each database: a bench database of its own (SQLite file; on PostgreSQL a fresh database
``aegis_bench`` on ``BENCH_POSTGRES_URL``, default the machine's 127.0.0.1:5432), migrated and
seeded with 5,000 versions and 5,000 finished imports (bench/seed_registry.py), gunicorn with 2
workers as production runs it (PostgreSQL's planner statistics taken after the seeding, as
autovacuum keeps them), and `wrk -c10` for `--seconds` on `/registry/` and on
`/imports/` in turn. Prints, and returns, p50/p95/p99 and requests per second of each.
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
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devservers.processes import free_port  # noqa: E402

PYTHON = sys.executable
REGISTRY_VERSIONS = 5000
PAGES = {"registry": "/registry/", "imports": "/imports/"}
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BENCH_DATABASE = "aegis_bench"


def log(message: str) -> None:
    print(f"[web {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, **kwargs)


def database_urls(work: Path) -> dict[str, str]:
    """SQLite always; PostgreSQL when it answers (a fresh bench database on it)."""
    urls = {"sqlite": f"sqlite:///{work / 'registry.sqlite3'}"}
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
            connection.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    except Exception as error:
        log(f"PostgreSQL at {POSTGRES_URL} is not available ({error}): SQLite only")
        return urls
    urls["postgres"] = POSTGRES_URL.rsplit("/", 1)[0] + f"/{BENCH_DATABASE}"
    return urls


def analyze(database_url: str) -> None:
    """VACUUM ANALYZE the freshly seeded database: a production database has its planner
    statistics (autovacuum keeps them); one bulk-loaded a second ago has none yet, and its
    plans would measure that, not the pages."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def environment(database_url: str) -> dict[str, str]:
    """This environment with the bench database, as production runs it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DATABASE_")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "aegis_catalog.settings",
            "DATABASE_URL": database_url,
            "DJANGO_SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
            "DATABASE_CONN_MAX_AGE": "60",  # persistent connections, as in production
            "AEGIS_LOG_LEVEL": "WARNING",
            "PYTHONWARNINGS": "ignore:No directory at",  # no collectstatic for the bench
        }
    )
    return env


def warm_up(url: str, cookie: str) -> None:
    """Wait until `url` has answered 200 twenty times: both workers have loaded the code."""
    deadline = time.monotonic() + 30
    answered = 0
    while answered < 20:
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


def run_wrk(url: str, cookie: str, duration: int) -> dict[str, Any]:
    """p50/p95/p99 (ms), requests/s and errors of `duration` seconds of 10 connections."""
    log(f"wrk -c10 -d{duration}s against {url}")
    output = run(
        ["wrk", "-t2", "-c10", f"-d{duration}s", "--latency",
         "-s", str(ROOT / "bench" / "wrk_report.lua"), "-H", cookie, url],
        capture_output=True,
    ).stdout  # fmt: skip
    return dict(json.loads(output.strip().splitlines()[-1]))


def bench_database(name: str, database_url: str, duration: int) -> dict[str, Any]:
    env = environment(database_url)
    log(f"{name}: migrating a bench database and adding {REGISTRY_VERSIONS} versions and imports")
    run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env=env, cwd=ROOT)
    seeded = json.loads(
        run(
            [PYTHON, str(ROOT / "bench" / "seed_registry.py"), str(REGISTRY_VERSIONS)],
            env=env,
            cwd=ROOT,
            capture_output=True,
        ).stdout.strip()
    )
    if name == "postgres":
        analyze(database_url)
    port = free_port()
    gunicorn = subprocess.Popen(
        [str(Path(PYTHON).parent / "gunicorn"), "aegis_catalog.wsgi", "--workers", "2",
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    cookie = f"Cookie: sessionid={seeded['sessionid']}"
    figures: dict[str, Any] = {
        "rows": {"versions": seeded["versions"], "imports": seeded["imports"]}
    }
    try:
        for page, path in PAGES.items():
            url = f"http://127.0.0.1:{port}{path}"
            warm_up(url, cookie)
            figures[page] = run_wrk(url, cookie, duration)
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        gunicorn.wait(timeout=30)
    return figures


def bench_web(work: Path, duration: int) -> dict[str, Any]:
    """Each list page on each database: {database: {"registry": {...}, "imports": {...}}}."""
    if shutil.which("wrk") is None:
        log("wrk is not installed (apt-get install wrk): skipping the web figures")
        return {}
    return {name: bench_database(name, url, duration) for name, url in database_urls(work).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aegis-bench-web-", dir=os.environ.get("BENCH_TMP")))
    try:
        figures = bench_web(work, options.seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
