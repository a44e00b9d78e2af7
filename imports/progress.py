"""The progress and heartbeat an import writes while it runs, from a thread of its own."""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import DatabaseError, connection
from django.utils import timezone

from imports.models import ImportRequest

logger = logging.getLogger(__name__)


class ProgressReporter(threading.Thread):
    """Writes progress and a heartbeat to the row every ``interval`` seconds, from its own
    thread and database connection, and notices a cancel request.

    Stage code reports from any thread (downloads and uploads run in pools) by ``set()``; a
    heartbeat that stops tells the UI that the worker died (see ``fail_stale_imports``).
    """

    def __init__(self, request_id: int, attempt: int, interval: float = 1.0) -> None:
        super().__init__(name=f"import-{request_id}-progress", daemon=True)
        self.request_id = request_id
        self.attempt = attempt
        self.superseded = threading.Event()
        self.interval = interval
        self.cancelled = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._latest: tuple[int, int] | None = None

    def set(self, done: int, total: int) -> None:
        with self._lock:
            self._latest = (done, total)

    def forget(self) -> None:
        """A new stage starts: drop values reported by the previous one."""
        with self._lock:
            self._latest = None

    def run(self) -> None:
        try:
            while not self._stopped.wait(self.interval):
                self.flush()
        finally:
            connection.close()

    def flush(self) -> None:
        with self._lock:
            latest, self._latest = self._latest, None
        values: dict[str, Any] = {"heartbeat_at": timezone.now()}
        if latest is not None:
            values.update(bytes_done=latest[0], bytes_total=latest[1])
        try:
            # A connection the database closed (restart, failover) is replaced, not reused.
            connection.close_if_unusable_or_obsolete()
            mine = ImportRequest.objects.filter(
                pk=self.request_id, status=ImportRequest.Status.RUNNING, attempts=self.attempt
            )
            if not mine.update(**values) and self._row_visible():
                # Marked lost and retried elsewhere, or ended: this attempt must stop. (A row
                # this connection cannot see, e.g. inside another connection's uncommitted
                # transaction, says nothing about who owns it.)
                self.superseded.set()
            if ImportRequest.objects.filter(pk=self.request_id, cancel_requested=True).exists():
                self.cancelled.set()
        except DatabaseError:
            # Best effort: the stage goes on; the next flush tries again.
            logger.debug("progress of import %s not recorded", self.request_id, exc_info=True)

    def _row_visible(self) -> bool:
        return ImportRequest.objects.filter(pk=self.request_id).exists()

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join(timeout=10)
