"""Who pulled which version: one counted row per version, puller and day."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from registry.models import ModelVersion, Pull


def count_pull(version: ModelVersion, user: Any, *, size: int) -> None:
    """Count one served file (``size`` bytes) on today's row for the version and the puller."""
    now = timezone.now()
    actor = user.get_username() if user is not None else "anonymous"
    key = {"version": version, "actor": actor[:300], "day": timezone.localdate(now)}
    counted = {"files": F("files") + 1, "bytes": F("bytes") + size, "last_at": now}
    if Pull.objects.filter(**key).update(**counted):
        return
    try:
        with transaction.atomic():
            Pull.objects.create(**key, user=user, first_at=now, last_at=now, files=1, bytes=size)
    except IntegrityError:  # another process counted the first file of the day meanwhile
        Pull.objects.filter(**key).update(**counted)
