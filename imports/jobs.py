"""RQ entry points: thin. Load the row, claim it, run the pipeline, record the outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.contrib.auth.models import User

from aegis_catalog.lib.hub import HubError
from imports import workdirs
from imports.actions import claim_import, fail_import, fail_stale_imports
from imports.errors import KNOWN_ERRORS, ImportCancelled, ImportSuperseded
from imports.models import ImportRequest
from imports.rebuild import RebuildError, rebuild_version
from imports.runner import ImportRunner, Services
from registry.actions import record_rebuild
from registry.models import ModelVersion
from registry.policy import PolicyViolation

logger = logging.getLogger(__name__)


def claim(request_id: int) -> ImportRequest | None:
    """The queued import to run; None when there is none to claim."""
    # A job argument is data from Redis: anything but a positive row id is no import at all.
    if type(request_id) is not int or not 0 < request_id < 2**63:
        logger.warning(
            "import job called with %r, which is no import id; nothing to do", request_id
        )
        return None
    return claim_import(request_id)


def run_import(
    request_id: int,
    services: Services | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> str:
    """Run one import to its end. Returns the final status; never raises for known failures."""
    request = claim(request_id)
    if request is None:
        logger.info("import %s was not queued any more; nothing to do", request_id)
        return "skipped"
    try:
        with workdirs.held(request.pk):
            runner = ImportRunner(request, services)
            runner.on_progress = on_progress
            runner.run()
    except ImportSuperseded as error:
        # Given up for lost while it ran: the row is the newer attempt's now; change nothing.
        logger.warning("import %s: %s; this attempt stops", request_id, error)
        return "superseded"
    except BaseException as error:
        if not isinstance(error, (*KNOWN_ERRORS, ImportCancelled)):
            logger.exception("import %s failed", request_id)
        if fail_import(request, error) and isinstance(error, (PolicyViolation, ImportCancelled)):
            # A blocked import's files may be malicious: none stay on disk (a retry after an
            # override downloads them again); a cancelled one will not resume.
            workdirs.remove(request.pk)
        if not isinstance(error, Exception):
            raise
    else:
        workdirs.remove(request.pk)
    request.refresh_from_db(fields=["status"])
    return request.status


def maintain_imports() -> dict[str, object]:
    """The periodic job (``aegis_catalog.cron``): imports whose worker stopped answering are
    marked failed, and work directories no retry will resume from are removed."""
    lost = fail_stale_imports()
    removed = workdirs.clean_work_dirs()
    if lost or removed:
        logger.info("maintenance: %s lost import(s) failed, work dirs of %s removed", lost, removed)
    return {"lost": lost, "work_dirs_removed": removed}


def rebuild_job(version_id: int, actor: str, user_id: int | None = None) -> str:
    """Rebuild a version from the Hub (``imports.rebuild``) and put the result on the audit
    trail: reproduced, the first difference, or why it could not be made."""
    version = ModelVersion.objects.select_related("model").filter(pk=version_id).first()
    if version is None:
        logger.warning("rebuild of version %r: no such version; nothing to do", version_id)
        return "skipped"
    user = User.objects.filter(pk=user_id).first() if user_id is not None else None
    try:
        result = rebuild_version(version)
    except (RebuildError, HubError, OSError) as error:
        record_rebuild(version, actor=actor, user=user, reproduced=False, error=str(error))
        return "failed"
    except Exception as error:
        # Still on the trail (an auditor waits for it), by its type only: an unexpected
        # message may carry what no page should show. The log has the traceback.
        logger.exception("rebuild of %s failed unexpectedly", version)
        record_rebuild(
            version,
            actor=actor,
            user=user,
            reproduced=False,
            error=f"the rebuild failed unexpectedly ({type(error).__name__}); see the worker log",
        )
        raise
    record_rebuild(
        version,
        actor=actor,
        user=user,
        reproduced=result.reproduced,
        rebuilt_sha256=result.rebuilt_sha256,
        stored_sha256=result.stored_sha256,
        difference=result.difference,
    )
    return "reproduced" if result.reproduced else "differs"
