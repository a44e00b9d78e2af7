"""Work directories of imports: one per import, held by one attempt at a time, removed when
nothing will resume from them.

A worker given up for lost may still be running on this host; the lock keeps its retry from
writing into the same files. A failed import keeps its directory for a retry to resume from,
until ``AEGIS_WORK_DIR_MAX_AGE``; a blocked (its files may be malicious), cancelled or finished
one does not keep it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from imports.models import ImportRequest
from imports.pipeline import PipelineError

logger = logging.getLogger(__name__)
LOCK_POLL_SECONDS = 0.5


class WorkDirBusy(PipelineError):
    """Another process on this host still works in the import's directory."""

    code = "work_dir_busy"


def work_dir_of(import_id: int) -> Path:
    return Path(settings.AEGIS_WORK_DIR) / f"import-{import_id}"


def _lock_path(import_id: int) -> Path:
    # Beside the directory, not in it: removing the directory leaves the lock held.
    return Path(settings.AEGIS_WORK_DIR) / f"import-{import_id}.lock"


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def held(import_id: int, *, wait_seconds: float = 30.0) -> Iterator[Path]:
    """The import's work directory, locked for this attempt (WorkDirBusy after waiting)."""
    lock = _lock_path(import_id)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_seconds
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                raise WorkDirBusy(
                    f"an earlier attempt of import #{import_id} still works in "
                    f"{work_dir_of(import_id)} on this host; retry once it has stopped"
                )
            time.sleep(LOCK_POLL_SECONDS)
        yield work_dir_of(import_id)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def remove(import_id: int) -> None:
    """Remove the import's work directory (and its lock file, when nobody holds it)."""
    shutil.rmtree(work_dir_of(import_id), ignore_errors=True)
    lock = _lock_path(import_id)
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        if _try_lock(fd):
            lock.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _removable(request: ImportRequest | None, max_age: timedelta) -> bool:
    if request is None:
        return True
    if request.status in (ImportRequest.Status.QUEUED, ImportRequest.Status.RUNNING):
        return False
    if request.status != ImportRequest.Status.FAILED:
        return True
    return request.finished_at is None or request.finished_at < timezone.now() - max_age


def clean_work_dirs(*, max_age: timedelta | None = None) -> list[int]:
    """Remove the work directories no retry will resume from; returns their imports' ids."""
    root = Path(settings.AEGIS_WORK_DIR)
    if not root.is_dir():
        return []
    age = max_age if max_age is not None else timedelta(seconds=settings.AEGIS_WORK_DIR_MAX_AGE)
    ids = sorted(
        {
            int(number)
            for path in root.iterdir()
            if (number := path.name.removeprefix("import-").removesuffix(".lock")).isdigit()
        }
    )
    requests = ImportRequest.objects.in_bulk(ids)
    removed = [pk for pk in ids if _removable(requests.get(pk), age)]
    for pk in removed:
        logger.info("removing the work directory of import %s", pk)
        remove(pk)
    return removed
