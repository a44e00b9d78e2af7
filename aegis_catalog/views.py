"""Site-wide views: the health report and the navigation every page shows."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import django_rq
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from redis.exceptions import RedisError

from aegis_catalog import services
from aegis_catalog.lib.storage import StorageError
from aegis_catalog.lib.vault import VaultError
from aegis_catalog.web.permissions import AUDITOR, REGISTRY_ADMIN, user_in_group

_CREDENTIALS_IN_URL = re.compile(r"(?<=://)[^/@\s]+@")


def _safe_reason(error: BaseException) -> str:
    """An error in words for the health report, with any URL credentials blanked out."""
    text = " ".join(str(error).split())[:300] or type(error).__name__
    return _CREDENTIALS_IN_URL.sub("***@", text)


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _check_redis() -> dict[str, Any]:
    django_rq.get_connection("imports").ping()
    return {"queue": "imports", "queued": django_rq.get_queue("imports").count}


def _check_vault() -> dict[str, Any]:
    health = services.transit_client().health()
    if not health["initialized"] or health["sealed"]:
        raise VaultError(
            f"Vault at {health['address']} is {'sealed' if health['sealed'] else 'not initialized'}"
        )
    return {"address": health["address"], "version": health["version"]}


def _probe_storage() -> dict[str, Any]:
    services.artifact_store().check()
    details: dict[str, Any] = {"local": str(settings.AEGIS_ARTIFACT_ROOT)}
    if settings.AEGIS_S3_BUCKET:
        services.artifact_store(upload_s3=True).check()
        details["s3_bucket"] = settings.AEGIS_S3_BUCKET
    return details


@dataclass
class _Probe:
    key: tuple[str, str]
    at: float
    details: dict[str, Any] | None
    error: StorageError | OSError | None


_storage_probe: _Probe | None = None
_storage_probe_lock = threading.Lock()


def _check_storage() -> dict[str, Any]:
    """The stores' writability, probed (a file written and removed) at most once per
    ``AEGIS_HEALTH_PROBE_SECONDS`` per process and per store, so callers never make it write
    on every call; the answer says how old the probe is."""
    global _storage_probe
    key = (str(settings.AEGIS_ARTIFACT_ROOT), settings.AEGIS_S3_BUCKET or "")
    with _storage_probe_lock:
        probe = _storage_probe
        now = time.monotonic()
        if (
            probe is None
            or probe.key != key
            or now - probe.at >= settings.AEGIS_HEALTH_PROBE_SECONDS
        ):
            try:
                probe = _Probe(key, now, _probe_storage(), None)
            except (StorageError, OSError) as error:
                probe = _Probe(key, now, None, error)
            _storage_probe = probe
    if probe.error is not None:
        raise probe.error
    assert probe.details is not None
    return {**probe.details, "probed_seconds_ago": round(time.monotonic() - probe.at, 1)}


HEALTH_CHECKS: dict[str, tuple[Callable[[], dict[str, Any]], tuple[type[BaseException], ...]]] = {
    "database": (_check_database, (DatabaseError,)),
    "redis": (_check_redis, (RedisError, OSError)),
    "vault": (_check_vault, (VaultError,)),
    "storage": (_check_storage, (StorageError, OSError)),
}


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Health of the database, Redis, Vault and storage; HTTP 503 when any is down.

    Open without sign-in (load balancers call it) but then it says only ``ok`` or
    ``unavailable``: each check's details (addresses, bucket, queue depth, errors) are for
    staff. They never include secrets.
    """
    checks: dict[str, dict[str, Any]] = {}
    for name, (check, expected) in HEALTH_CHECKS.items():
        started = time.monotonic()
        try:
            details = check()
        except expected as error:
            checks[name] = {"ok": False, "error": f"{type(error).__name__}: {_safe_reason(error)}"}
        else:
            checks[name] = {"ok": True, **details}
        checks[name]["seconds"] = round(time.monotonic() - started, 3)
    healthy = all(check["ok"] for check in checks.values())
    body: dict[str, Any] = {"status": "ok" if healthy else "unavailable"}
    if getattr(request.user, "is_staff", False) and request.user.is_active:
        body["checks"] = checks
    return JsonResponse(body, status=200 if healthy else 503)


NAV_URLS = {
    "catalog": "imports:catalog",
    "imports": "imports:list",
    "registry": "registry:list",
    "audit": "audit:list",
    "admin": "admin:index",
    "approvals": "registry:approvals",
    "tokens": "api_tokens:list",
    "logout": "logout",
}


@lru_cache(maxsize=1)
def nav_urls() -> dict[str, str]:
    """The header's links, reversed once per process (every page shows them)."""
    return {key: reverse(name) for key, name in NAV_URLS.items()}


def navigation(request: HttpRequest) -> dict[str, Any]:
    """Template context: which sections the signed-in user may open, and their links."""
    user = request.user
    return {
        "nav_audit": user_in_group(user, AUDITOR, REGISTRY_ADMIN),
        "nav_admin": user_in_group(user, REGISTRY_ADMIN),
        "nav_jobs": bool(getattr(user, "is_staff", False)),
        "nav_urls": nav_urls(),
    }
