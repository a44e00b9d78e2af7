"""Before a version's bytes are served the first time: verify its artifact, and copy each file
of ``model/`` beside it in the store under its sha256, checked against the signed ``model.sig``.

Why copies: a file served from inside a tar.gz would mean decompressing the artifact from its
start up to the file (and again for every ``Range`` a resumed download asks for). A copy named
by its sha256 is read with one ranged GET, from any web process, in bounded memory; files shared
by several versions (a new commit that only changed the config) are stored once. The cost is
the store space of the model a second time, for versions that are pulled.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import django_rq
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from aegis_catalog import services
from aegis_catalog.lib.storage import StorageError
from registry.actions import record_verification
from registry.attestation import is_ignored_by_model_signing, statement_of
from registry.models import ModelVersion
from registry.verification.fetch import artifact_root
from registry.verify import VerificationError, verify_model_artifact
from serving.models import ServedVersion
from serving.names import NotServed, revision_refused

BLOB_PREFIX = "blobs/sha256"
QUEUE_NAME = "default"
CHECK_JOB = "serving.jobs.first_pull_check"


def refuse_unservable(version: ModelVersion) -> None:
    """Versions awaiting approval or rejected, yanked versions and versions signed by a revoked
    key are never served."""
    label = f"{version.model.name} {version.version}"
    if version.status == ModelVersion.Status.AWAITING:
        raise revision_refused(f"{label} awaits approval. It is not served.", status=403)
    if version.status == ModelVersion.Status.REJECTED:
        raise revision_refused(f"{label} was rejected. It is not served.", status=410)
    if version.status == ModelVersion.Status.YANKED:
        reason = f": {version.status_reason.strip()}" if version.status_reason.strip() else ""
        raise revision_refused(f"{label} was yanked{reason}. It is not served.", status=410)
    if version.signing_key.revoked:
        raise revision_refused(
            f"{label} was signed by {version.signing_key}, which is revoked. It is not served.",
            status=403,
        )


def servable(
    version: ModelVersion, *, actor: str, user: Any = None, inline: bool | None = None
) -> ServedVersion:
    """The version's verified files, checking it first if that was not done (or failed more
    than ``AEGIS_HF_RECHECK_SECONDS`` ago); NotServed with the reason when it fails.

    A version larger than ``AEGIS_HF_INLINE_CHECK_BYTES`` is not checked inside the request
    (fetching and hashing many GB would outlast any client's timeout): a job is queued and the
    client is asked to come back (503), unless ``inline`` says otherwise (the job itself)."""
    refuse_unservable(version)
    state = ServedVersion.objects.filter(version=version).first()
    if state is None or _due(state):
        if inline is None:
            inline = version.size <= settings.AEGIS_HF_INLINE_CHECK_BYTES
        if not inline:
            raise _checking_in_background(version, actor=actor)
        state = _check_once(version, actor=actor, user=user)
    if state.state != ServedVersion.State.READY:
        raise _refusal(version, state)
    return state


def _checking_in_background(version: ModelVersion, *, actor: str) -> NotServed:
    """Queue the first-pull check of a large version (once: the job id is the version's)."""
    queue = django_rq.get_queue(QUEUE_NAME, commit_mode="auto")  # the version is committed
    job_id = f"serve-check-{version.pk}"
    try:
        job = queue.fetch_job(job_id)
        if job is None or job.get_status(refresh=True) in (
            "finished",
            "failed",
            "stopped",
            "canceled",
        ):
            if job is not None:
                job.delete()
            queue.enqueue(
                CHECK_JOB, version.pk, actor, job_id=job_id,
                job_timeout=settings.AEGIS_VERIFY_TIMEOUT,
            )  # fmt: skip
    except (RedisError, OSError):
        return NotServed(
            f"{version.model.name} {version.version} has not been verified for serving yet, "
            "and the job queue does not answer: try again later.",
            status=503,
        )
    return NotServed(
        f"{version.model.name} {version.version} ({version.size} bytes) is being verified "
        "before it is first served; try again in a few minutes.",
        status=503,
    )


def _due(state: ServedVersion) -> bool:
    if state.state == ServedVersion.State.READY:
        return False
    return timezone.now() - state.checked_at >= timedelta(seconds=settings.AEGIS_HF_RECHECK_SECONDS)


def _refusal(version: ModelVersion, state: ServedVersion) -> NotServed:
    return revision_refused(
        f"{version.model.name} {version.version} is not served: its stored artifact failed "
        f"verification ({state.failed_check or 'verification'}: {state.error})",
        status=409,
    )


def _check_once(version: ModelVersion, *, actor: str, user: Any) -> ServedVersion:
    """Verify under a lock on the version's row, so concurrent first pulls check it once."""
    with transaction.atomic():
        ModelVersion.objects.select_for_update().filter(pk=version.pk).first()
        state = ServedVersion.objects.filter(version=version).first()
        if state is not None and not _due(state):
            return state
        try:
            files, checks = verified_copies(version)
        except VerificationError as failure:
            record_verification(
                version, artifact=version.model_path, actor=f"{actor} (first pull)", user=user,
                passed=False, checks=[], failed_check=failure.check, error=str(failure),
            )  # fmt: skip
            outcome = {"state": ServedVersion.State.REFUSED, "error": str(failure),
                       "failed_check": failure.check, "files": {}}  # fmt: skip
        else:
            record_verification(
                version, artifact=version.model_path, actor=f"{actor} (first pull)", user=user,
                passed=True, checks=checks,
            )  # fmt: skip
            outcome = {"state": ServedVersion.State.READY, "error": "", "failed_check": "",
                       "files": files}  # fmt: skip
        state, _ = ServedVersion.objects.update_or_create(
            version=version, defaults={**outcome, "checked_at": timezone.now()}
        )
    return state


class CopyMismatch(VerificationError, check="served_copy"):
    """A file of ``model/`` is not the one the registered ``model.sig`` names, or its copy
    could not be written."""


def signed_digests(version: ModelVersion) -> tuple[dict[str, str], list[str]]:
    """path -> sha256 of every file the registered model signature covers, and the paths it
    leaves out (``.gitattributes`` and the other git paths ``model_signing`` never hashes)."""
    predicate = statement_of(version.model_signature).get("predicate", {})
    resources = predicate.get("resources", [])
    ignored = predicate.get("serialization", {}).get("ignore_paths", [])
    digests = {
        str(item["name"]): str(item["digest"])
        for item in resources
        if isinstance(item, dict) and "name" in item and "digest" in item
    }
    return digests, [str(path) for path in ignored]


def _expected_digest(entry: dict[str, Any], signed: dict[str, str], ignored: list[str]) -> str:
    """The sha256 a file must have: the one ``model.sig`` names; for a path ``model_signing``
    ignores, the registered one (``MANIFEST.sha256`` in the attested tarball, checked by the
    verification, holds it too)."""
    path = str(entry["path"])
    if path not in signed and is_ignored_by_model_signing(path, ignored):
        return str(entry.get("sha256"))
    digest = signed.get(path)
    if digest is None or digest != entry.get("sha256"):
        raise CopyMismatch(f"{path} is not covered by the registered model.sig as registered")
    return digest


def verified_copies(version: ModelVersion) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``verify_model_artifact`` (extracting ``model/``), then every registered file copied to
    ``blobs/sha256/<sha256>`` in the artifact's store, its bytes checked against the digest the
    registered ``model.sig`` gives while copying. Returns path -> {sha256, size, url} and the
    names of the checks that passed."""
    signed, ignored = signed_digests(version)
    store = services.served_store_for(version.model_path)
    work = Path(settings.AEGIS_WORK_DIR)
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aegis-serve-", dir=work) as scratch:
        destination = Path(scratch) / "extracted"
        result = verify_model_artifact(version, extract_to=destination)
        model_dir = artifact_root(destination) / "model"
        files: dict[str, dict[str, Any]] = {}
        for entry in version.manifest:
            path = str(entry["path"])
            digest = _expected_digest(entry, signed, ignored)
            try:
                stored = store.put_file(model_dir / path, f"{BLOB_PREFIX}/{digest}", sha256=digest)
            except (StorageError, OSError) as failure:
                raise CopyMismatch(
                    f"{path} could not be copied for serving: {failure}"
                ) from failure
            files[path] = {"sha256": digest, "size": stored.size, "url": stored.url}
    return files, [*result.check_names, "served_copy"]


def refuse_changed_copy(version: ModelVersion, path: str, reason: str, *, actor: str) -> None:
    """A verified copy changed after its check: the version is not served again until it passes
    a new one (after ``AEGIS_HF_RECHECK_SECONDS``), and the audit trail says why."""
    error = f"the served copy of {path} changed in the store: {reason}"
    with transaction.atomic():
        ServedVersion.objects.filter(version=version).update(
            state=ServedVersion.State.REFUSED,
            error=error,
            failed_check=CopyMismatch.check,
            checked_at=timezone.now(),
        )
        record_verification(
            version, artifact=version.model_path, actor=f"{actor} (pull)", passed=False,
            checks=[], failed_check=CopyMismatch.check, error=error,
        )  # fmt: skip
