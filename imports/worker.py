"""The RQ worker class for imports: a killed work-horse fails its import at once, in words."""

from __future__ import annotations

import os
from typing import Any

from django.db import close_old_connections
from rq.job import Job
from rq.worker import Worker

from imports.actions import RUN_IMPORT, fail_killed_import


def import_id_of(job: Job) -> int | None:
    if job.func_name != RUN_IMPORT or not job.args:
        return None
    return int(job.args[0])


class ImportWorker(Worker):
    """A worker whose work-horse died (OOM killer, SIGKILL) marks the import failed now,
    rather than waiting for the heartbeat to go stale."""

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        request_id = import_id_of(job)
        if request_id is None:
            return
        close_old_connections()
        how = (
            f"killed by signal {os.WTERMSIG(ret_val)}"
            if ret_val and os.WIFSIGNALED(ret_val)
            else f"ended with status {ret_val}"
        )
        fail_killed_import(request_id, how)
