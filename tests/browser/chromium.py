"""Helpers for the Playwright browser tests: Debian's Chromium, screenshots, an in-thread worker."""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT_ROOT = Path(__file__).resolve().parents[2] / "test-output"


def require_chromium() -> None:
    """Skip on a developer machine without Chromium; fail in CI, where it must be installed."""
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return
    message = (
        f"Browser tests need Debian's Chromium at {CHROMIUM}: "
        "run `apt-get install -y chromium` (never `playwright install`)."
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class Screenshots:
    """Saves `test-output/<test name>/NN-<step>.png`, numbered in the order taken."""

    def __init__(self, test_name: str) -> None:
        self.directory = OUTPUT_ROOT / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self.count = 0
        self.taken: list[Path] = []

    def __call__(self, page: Any, step: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


@contextmanager
def chromium_page(base_url: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                base_url=base_url, viewport={"width": 1280, "height": 900}
            )
            context.set_default_timeout(15_000)
            yield context.new_page()
        finally:
            browser.close()


def sign_in(page: Any, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))


def start_worker_thread(queue_name: str = "imports") -> threading.Thread:
    """An RQ SimpleWorker in burst mode, in a thread (no signals, no fork, timer timeouts)."""
    import django_rq
    from django.db import connections
    from rq.timeouts import TimerDeathPenalty
    from rq.worker import SimpleWorker

    class ThreadWorker(SimpleWorker):
        death_penalty_class = TimerDeathPenalty

        def _install_signal_handlers(self) -> None:
            """Signal handlers can only be installed by the main thread."""

    queue = django_rq.get_queue(queue_name)

    def work() -> None:
        try:
            ThreadWorker([queue], connection=queue.connection).work(burst=True)
        finally:
            connections.close_all()

    thread = threading.Thread(target=work, name="rq-burst-worker", daemon=True)
    thread.start()
    return thread
