"""RQ entry points of the /hf/ endpoint: thin."""

from __future__ import annotations

import logging

from registry.models import ModelVersion
from serving.checks import servable
from serving.names import NotServed

logger = logging.getLogger(__name__)


def first_pull_check(version_id: int, actor: str) -> str:
    """Verify a version before its bytes are first served (queued by a pull of a large one)."""
    version = (
        ModelVersion.objects.select_related("model", "signing_key").filter(pk=version_id).first()
    )
    if version is None:
        logger.warning("first-pull check of version %r: no such version; nothing to do", version_id)
        return "skipped"
    try:
        servable(version, actor=actor, inline=True)
    except NotServed as refused:
        logger.warning("%s %s is not served: %s", version.model.name, version.version, refused)
        return "refused"
    return "ready"
