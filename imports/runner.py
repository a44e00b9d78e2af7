"""Drives the pipeline stages for one ImportRequest: records stages, progress and outcome.

Each finished stage's output is kept in ``ImportRequest.state``; a retried import skips the
stages whose outputs are still valid and redoes everything after the first one it reruns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from aegis_catalog import services
from aegis_catalog.lib.archive import UnsafeArchive
from aegis_catalog.lib.hub import HubClient, HubError
from aegis_catalog.lib.storage import ArtifactStore, StorageError, sha256_file
from aegis_catalog.lib.vault import TransitClient, VaultError
from imports import pipeline
from imports.actions import record_event, transition
from imports.models import ImportEvent, ImportRequest, Stage
from imports.packaging import PackagingError
from registry import actions as registry_actions
from registry.attestation import AttestationError, SignedDigest
from registry.models import (
    ImportPolicy,
    IssuedSignature,
    ModelVersion,
    PolicyOverride,
    SigningKey,
)
from registry.policy import ImportRules, PolicyFinding, PolicyViolation

logger = logging.getLogger(__name__)
T = TypeVar("T")
_WithFindings = TypeVar("_WithFindings", pipeline.Preflight, pipeline.ScanResult)

KNOWN_ERRORS: tuple[type[Exception], ...] = (
    pipeline.PipelineError,
    HubError,
    VaultError,
    StorageError,
    AttestationError,
    PackagingError,
    UnsafeArchive,
    registry_actions.RegistryError,
    PolicyViolation,
)


class ImportCancelled(Exception):
    code = "cancelled"


def error_code(error: BaseException) -> str:
    return str(getattr(error, "code", "") or type(error).__name__)


class TrustedTransitSigner:
    """Signs digests through Transit with one trusted key version, reusing earlier signatures.

    ECDSA signatures are randomised; reusing the signature Vault issued for the same bytes keeps
    ``model.sig``, and so the tarball, byte-reproducible.
    """

    def __init__(self, transit: TransitClient, key: SigningKey) -> None:
        self.transit = transit
        self.key = key

    def __call__(self, digest: bytes) -> SignedDigest:
        cached = IssuedSignature.objects.filter(
            pae_sha256=digest.hex(), signing_key=self.key
        ).first()
        if cached is not None:
            return SignedDigest(bytes(cached.signature_der), self.key.name, self.key.version)
        signature = self.transit.sign_digest(self.key.name, digest, key_version=self.key.version)
        IssuedSignature.objects.get_or_create(
            pae_sha256=digest.hex(),
            signing_key=self.key,
            defaults={"signature_der": signature.der},
        )
        return SignedDigest(signature.der, self.key.name, signature.key_version)


@dataclass
class Services:
    hub: HubClient
    transit: TransitClient
    store: ArtifactStore
    endpoint: str


def default_services(request: ImportRequest) -> Services:
    return Services(
        hub=services.hub_client(),
        transit=services.transit_client(),
        store=services.artifact_store(
            upload_s3=request.upload_s3, bucket=request.s3_bucket or None
        ),
        endpoint=settings.HF_ENDPOINT,
    )


class ProgressReporter(threading.Thread):
    """Writes progress and a heartbeat to the row every ``interval`` seconds, from its own
    thread and database connection, and notices a cancel request.

    Stage code reports from any thread (downloads and uploads run in pools) by ``set()``; a
    heartbeat that stops tells the UI that the worker died (see ``fail_stale_imports``).
    """

    def __init__(self, request_id: int, interval: float = 1.0) -> None:
        super().__init__(name=f"import-{request_id}-progress", daemon=True)
        self.request_id = request_id
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
            ImportRequest.objects.filter(
                pk=self.request_id, status=ImportRequest.Status.RUNNING
            ).update(**values)
            if ImportRequest.objects.filter(pk=self.request_id, cancel_requested=True).exists():
                self.cancelled.set()
        except DatabaseError:
            # Best effort: the stage goes on; the next flush tries again.
            logger.debug("progress of import %s not recorded", self.request_id, exc_info=True)

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join(timeout=10)


def content_key(request: ImportRequest, resolution: pipeline.Resolution) -> str:
    """What makes two imports the same work: repo, commit, patterns and destination."""
    options = {
        "repo": resolution.repo_id,
        "commit": resolution.commit,
        "include": sorted(request.include_patterns),
        "exclude": sorted(request.exclude_patterns),
        "model_name": request.model_name,
        "register": request.register,
        "upload_s3": request.upload_s3,
        "s3_bucket": request.s3_bucket,
        "sign_key": request.sign_key,
    }
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


def fail_stale_imports(ids: list[int] | None = None, *, max_silence: float | None = None) -> int:
    """Mark running imports whose heartbeat stopped as failed: their worker died.

    Returns how many were marked. Called by the pages that show imports and by waiting imports.
    """
    silence = timedelta(seconds=max_silence or settings.AEGIS_IMPORT_HEARTBEAT_TIMEOUT)
    stale = ImportRequest.objects.filter(
        status=ImportRequest.Status.RUNNING, heartbeat_at__lt=timezone.now() - silence
    )
    if ids is not None:
        stale = stale.filter(pk__in=ids)
    marked = 0
    for request in stale:
        marked += transition(
            request,
            ImportEvent.Kind.FAILED,
            "the worker stopped responding",
            stage=request.stage,
            details={"code": "worker_lost"},
            where={"status": ImportRequest.Status.RUNNING, "heartbeat_at": request.heartbeat_at},
            update={
                "status": ImportRequest.Status.FAILED,
                "error": (
                    f"the worker running this import stopped responding during the "
                    f"{request.stage} stage (no heartbeat since "
                    f"{request.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); "
                    "retry to resume from the last finished stage"
                ),
                "error_code": "worker_lost",
                "finished_at": timezone.now(),
                "content_key": "",
            },
        )
    return marked


class ImportRunner:
    """Runs one claimed ImportRequest to its end."""

    wait_interval = 1.0

    def __init__(self, request: ImportRequest, services_: Services | None = None) -> None:
        self.request = request
        self.services = services_ or default_services(request)
        self.work_dir = Path(settings.AEGIS_WORK_DIR) / f"import-{request.pk}"
        self.state: dict[str, Any] = dict(request.state or {})
        self._rerun = False
        self.on_progress: Callable[[str, int, int], None] | None = None
        self.reporter = ProgressReporter(request.pk)
        self._overrides: list[PolicyOverride] = []

    # --- bookkeeping ---------------------------------------------------------------------

    def _check_cancelled(self) -> None:
        if (
            self.reporter.cancelled.is_set()
            or ImportRequest.objects.filter(pk=self.request.pk, cancel_requested=True).exists()
        ):
            raise ImportCancelled("the import was cancelled")

    def _progress(self, stage: str) -> Callable[[int, int], None]:
        """A progress callback; safe to call from the download and upload threads."""

        def report(done: int, total: int) -> None:
            if self.on_progress is not None:
                self.on_progress(stage, done, total)
            self.reporter.set(done, total)
            if self.reporter.cancelled.is_set():
                raise ImportCancelled("the import was cancelled")

        return report

    def _save_state(self) -> None:
        ImportRequest.objects.filter(pk=self.request.pk).update(state=self.state)

    def _stage(
        self,
        stage: str,
        compute: Callable[[], T],
        *,
        restore: Callable[[Any], T | None] | None = None,
        dump: Callable[[T], Any] | None = None,
        total: int = 0,
    ) -> T:
        """Run a stage, or reuse its recorded output when no earlier stage was rerun."""
        self._check_cancelled()
        if not self._rerun and restore is not None and stage in self.state:
            restored = restore(self.state[stage])
            if restored is not None:
                record_event(
                    self.request, ImportEvent.Kind.STAGE_SKIPPED, "already done", stage=stage
                )
                return restored
        self._rerun = self._rerun or restore is not None
        self.reporter.forget()
        transition(
            self.request,
            ImportEvent.Kind.STAGE_STARTED,
            Stage(stage).label,
            stage=stage,
            update={
                "stage": stage,
                "bytes_done": 0,
                "bytes_total": total,
                "heartbeat_at": timezone.now(),
            },
        )
        started = time.monotonic()
        value = compute()
        self.reporter.forget()
        if dump is not None:
            self.state[stage] = dump(value)
            self._save_state()
        transition(
            self.request,
            ImportEvent.Kind.STAGE_FINISHED,
            f"{Stage(stage).label} done",
            stage=stage,
            details={"seconds": round(time.monotonic() - started, 3)},
            update={"bytes_done": total},
        )
        return value

    # --- the stages, in order ------------------------------------------------------------

    def run(self) -> ModelVersion | None:
        self.reporter.start()
        try:
            return self._run()
        finally:
            self.reporter.stop()

    def _run(self) -> ModelVersion | None:
        request = self.request
        started_on = timezone.now()
        svc = self.services

        resolution = self._stage(
            Stage.RESOLVE,
            lambda: pipeline.resolve_revision(
                svc.hub,
                request.repo_id,
                request.revision,
                include=request.include_patterns,
                exclude=request.exclude_patterns,
            ),
            restore=pipeline.Resolution.from_json,
            dump=lambda value: value.to_json(),
        )
        holder = self._claim_content(resolution)
        if holder is not None:
            self._link_to(holder)
            return holder.model_version
        if request.commit != resolution.commit:
            ImportRequest.objects.filter(pk=request.pk).update(commit=resolution.commit)
            request.commit = resolution.commit
            record_event(
                request,
                ImportEvent.Kind.NOTE,
                f"{request.revision} is commit {resolution.commit}",
                stage=Stage.RESOLVE,
                details={"commit": resolution.commit, "files": len(resolution.files)},
            )
        rules = self._policy_rules()
        checked_before = self._stage(
            Stage.PREFLIGHT,
            lambda: self._recording_findings(
                Stage.PREFLIGHT,
                pipeline.preflight(
                    resolution,
                    work_dir=self.work_dir,
                    min_free_bytes=settings.AEGIS_MIN_FREE_BYTES,
                    rules=rules,
                    has_hub_token=bool(settings.HF_TOKEN),
                ),
            ),
        )
        download = self._stage(
            Stage.DOWNLOAD,
            lambda: pipeline.download_files(
                svc.hub,
                resolution,
                self.work_dir / "snapshot",
                progress=self._progress(Stage.DOWNLOAD),
            ),
            total=resolution.total_bytes,
        )
        checked = self._stage(
            Stage.CHECK,
            lambda: pipeline.check_digests(
                resolution, download, progress=self._progress(Stage.CHECK)
            ),
            restore=lambda data: self._restore_check(data, download),
            dump=lambda value: {**value.to_json(), "stat": self._stat(download)},
            total=resolution.total_bytes,
        )
        scan = self._stage(
            Stage.SCAN,
            lambda: self._recording_findings(
                Stage.SCAN, pipeline.scan_pickles(download, checked, rules)
            ),
            restore=pipeline.ScanResult.from_json,
            dump=lambda value: value.to_json(),
        )
        policy_record = self._policy_record(rules, [*checked_before.findings, *scan.findings])
        # Reading the trust store from Vault belongs to the signing stage (and its failures).
        ImportRequest.objects.filter(pk=request.pk).update(stage=Stage.SIGN_MODEL)
        key = registry_actions.sync_signing_keys(svc.transit, request.sign_key)
        signer = TrustedTransitSigner(svc.transit, key)
        model_signature = self._stage(
            Stage.SIGN_MODEL,
            lambda: pipeline.sign_model_files(checked, signer, key.public_key_pem),
            # Signed with another (older) key version: sign again with the current one.
            restore=lambda data: data["bundle"] if data["key"] == key.pk else None,
            dump=lambda value: {"bundle": value, "key": key.pk},
        )
        packaged = self._stage(
            Stage.PACKAGE,
            lambda: pipeline.package_artifact(
                resolution,
                download,
                checked,
                model_signature,
                model_name=request.model_name,
                version=request.version,
                endpoint=svc.endpoint,
                out_dir=self.work_dir / "out",
                progress=self._progress(Stage.PACKAGE),
                scan=scan,
                policy_record=policy_record,
                store=svc.store if settings.AEGIS_STREAM_UPLOADS else None,
                import_id=request.pk,
                compress_workers=settings.AEGIS_PACKAGE_THREADS or None,
            ),
            restore=self._restore_packaged,
            dump=lambda value: value.to_json(),
            total=resolution.total_bytes,
        )
        run_details = pipeline.RunDetails(
            builder_id=settings.AEGIS_BUILDER_ID,
            invocation_id=f"import-{request.pk}-{uuid.uuid4()}",
            started_on=started_on,
            finished_on=timezone.now(),
            actor=request.actor,
            endpoint=svc.endpoint,
        )
        provenance = self._stage(
            Stage.ATTEST,
            lambda: pipeline.attest_artifact(
                resolution,
                checked,
                packaged,
                run_details,
                signer,
                key.public_key_pem,
                scan=scan,
                policy_record=policy_record,
            ),
            restore=lambda data: data,
            dump=lambda value: value,
        )
        stored = self._stage(
            Stage.STORE,
            lambda: pipeline.store_artifact(
                svc.store,
                packaged,
                provenance,
                model_name=request.model_name,
                version=request.version,
                import_id=request.pk,
                progress=self._progress(Stage.STORE),
            ),
            restore=lambda data: self._restore_stored(data, packaged),
            dump=lambda value: value.to_json(),
            total=packaged.size,
        )
        result = {
            "artifact_url": stored.artifact.url,
            "attestation_url": stored.attestation.url,
            "record_url": stored.record.url,
            "sha256": packaged.sha256,
            "size": packaged.size,
            "commit": resolution.commit,
            "signing_key": key.name,
            "signing_key_version": key.version,
        }
        version: ModelVersion | None = None
        if request.register:
            try:
                version = self._stage(
                    Stage.REGISTER,
                    lambda: self._register(
                        resolution,
                        checked,
                        scan,
                        policy_record,
                        model_signature,
                        packaged,
                        provenance,
                        stored,
                        key,
                    ),
                )
            except BaseException:
                self._remove_orphans(stored)
                raise
        self._finish(result, version)
        return version

    # --- helpers for the stages ------------------------------------------------------------

    def _policy_rules(self) -> ImportRules:
        """The import policy now in force, with the rules an admin overrode for this import."""
        self._overrides = list(PolicyOverride.objects.filter(import_request_id=self.request.pk))
        return ImportPolicy.current().rules(overridden={item.rule for item in self._overrides})

    def _recording_findings(self, stage: str, outcome: _WithFindings) -> _WithFindings:
        """Timeline notes for the rules that only warned or were overridden (marked used)."""
        overridden = [item for item in outcome.findings if item.outcome == "overridden"]
        used: list[PolicyOverride] = registry_actions.mark_policy_overrides_used(
            self.request.pk, [item.rule for item in overridden]
        )
        granted = {item.rule: item for item in [*used, *self._overrides]}
        for finding in outcome.findings:
            override = granted.get(finding.rule)
            if finding.outcome == "overridden" and override is not None:
                message = (
                    f"policy rule {finding.rule} overridden once by {override.granted_by} "
                    f"({override.reason}): {finding.reason}"
                )
                details = {
                    "policy_rule": finding.rule,
                    "outcome": "overridden",
                    "granted_by": override.granted_by,
                    "override_reason": override.reason,
                }
            else:
                message = f"policy warning ({finding.rule}): {finding.reason}"
                details = {"policy_rule": finding.rule, "outcome": finding.outcome}
            record_event(self.request, ImportEvent.Kind.NOTE, message, stage=stage, details=details)
        return outcome

    def _policy_record(self, rules: ImportRules, findings: list[PolicyFinding]) -> dict[str, Any]:
        """What aegis.json, the provenance statement and the registry say about the policy."""
        overridden = {item.rule for item in findings if item.outcome == "overridden"}
        return {
            "rules": {key: value for key, value in rules.to_json().items() if key != "overridden"},
            "findings": [item.to_json() for item in findings],
            "overrides": [item.to_json() for item in self._overrides if item.rule in overridden],
        }

    def _claim_content(self, resolution: pipeline.Resolution) -> ImportRequest | None:
        """Become the one import doing the work for this content, or return the import that
        already did it. While another import of the same content runs, wait for its end."""
        key = content_key(self.request, resolution)
        waiting_for: int | None = None
        while True:
            try:
                with transaction.atomic():
                    ImportRequest.objects.filter(pk=self.request.pk).update(content_key=key)
                return None
            except IntegrityError:
                pass
            holder = (
                ImportRequest.objects.filter(content_key=key)
                .exclude(pk=self.request.pk)
                .filter(status__in=[ImportRequest.Status.RUNNING, ImportRequest.Status.SUCCEEDED])
                .first()
            )
            if holder is None:
                continue  # it ended without success just now: try to claim again
            if holder.status == ImportRequest.Status.SUCCEEDED:
                return holder
            if fail_stale_imports([holder.pk]):
                continue
            if waiting_for != holder.pk:
                waiting_for = holder.pk
                record_event(
                    self.request,
                    ImportEvent.Kind.NOTE,
                    f"import #{holder.pk} is importing the same commit with the same options: "
                    "waiting for it",
                    stage=Stage.RESOLVE,
                    details={"waiting_for": holder.pk},
                )
            self._check_cancelled()
            time.sleep(self.wait_interval)

    def _link_to(self, holder: ImportRequest) -> None:
        """Finish as a link to an earlier import of the same content: no second artifact."""
        request = self.request
        result = {**holder.result, "linked_to": holder.pk}
        target = (
            f"{holder.model_version.model.name} {holder.model_version.version}"
            if holder.model_version
            else holder.result.get("artifact_url", "its artifact")
        )
        transition(
            request,
            ImportEvent.Kind.SUCCEEDED,
            f"{holder.repo_id}@{holder.commit[:12]} was already imported by import "
            f"#{holder.pk}: linked to {target} instead of importing it again",
            details=result,
            update={
                "status": ImportRequest.Status.SUCCEEDED,
                "finished_at": timezone.now(),
                "result": result,
                "model_version": holder.model_version_id,
                "commit": holder.commit,
            },
        )

    @staticmethod
    def _stat(download: pipeline.Download) -> dict[str, list[int]]:
        return {
            path: [local.stat().st_size, local.stat().st_mtime_ns]
            for path, local in sorted(download.paths.items())
        }

    def _restore_check(
        self, data: Mapping[str, Any], download: pipeline.Download
    ) -> pipeline.CheckResult | None:
        """Reuse the digests only if every file is the very one that was hashed."""
        if data.get("stat") != self._stat(download):
            return None
        return pipeline.CheckResult.from_json(data)

    def _restore_packaged(self, data: Mapping[str, Any]) -> pipeline.Packaged | None:
        packaged = pipeline.Packaged.from_json(data)
        if packaged.path is None:
            # Streamed into the store only: reusable while the store still holds all of it.
            return packaged if pipeline.streamed_artifact(self.services.store, packaged) else None
        if not packaged.path.is_file() or packaged.path.stat().st_size != packaged.size:
            return None
        # The work copy is not fsynced (the store holds the durable one): after a crash it
        # could have the right size and wrong bytes, so a retry checks its digest.
        if sha256_file(packaged.path) != packaged.sha256:
            return None
        return packaged

    def _restore_stored(
        self, data: Mapping[str, Any], packaged: pipeline.Packaged
    ) -> pipeline.Stored | None:
        stored = pipeline.Stored.from_json(data)
        if not pipeline.stored_still_present(self.services.store, stored, packaged):
            return None
        return stored

    def _register(
        self,
        resolution: pipeline.Resolution,
        checked: pipeline.CheckResult,
        scan: pipeline.ScanResult,
        policy_record: dict[str, Any],
        model_signature: dict[str, Any],
        packaged: pipeline.Packaged,
        provenance: dict[str, Any],
        stored: pipeline.Stored,
        key: SigningKey,
    ) -> ModelVersion:
        request = self.request
        with transaction.atomic():
            version = registry_actions.register(
                actor=request.actor,
                user=request.requested_by,
                model_name=request.model_name,
                version=request.version,
                card=resolution.metadata,
                card_data=resolution.card_data,
                model_path=stored.artifact.url,
                sha256=packaged.sha256,
                size=packaged.size,
                manifest=[asdict(item) for item in checked.files],
                model_signature=model_signature,
                attestation_bundle=provenance,
                signing_key=key,
                source_repo=resolution.repo_id,
                source_revision=resolution.revision,
                source_commit=resolution.commit,
                source_endpoint=self.services.endpoint,
                import_options={
                    "include": list(resolution.include),
                    "exclude": list(resolution.exclude),
                    "upload_s3": request.upload_s3,
                    "s3_bucket": request.s3_bucket,
                    "import_request": request.pk,
                    "policy": policy_record,
                },
                scan_results=scan.verdicts_json(),
            )
            ImportRequest.objects.filter(pk=request.pk).update(model_version=version)
        return version

    def _remove_orphans(self, stored: pipeline.Stored) -> None:
        """A stored artifact no registry version points to is removed, not left behind."""
        if ModelVersion.objects.filter(model_path=stored.artifact.url).exists():
            return
        for url in stored.urls:
            try:
                self.services.store.delete(url)
            except StorageError:
                logger.warning("could not remove orphaned artifact %s", url, exc_info=True)
        self.state.pop(Stage.STORE, None)
        self._save_state()

    def _finish(self, result: dict[str, Any], version: ModelVersion | None) -> None:
        request = self.request
        where = f"registered as {version.model.name} {version.version}" if version else "stored"
        transition(
            request,
            ImportEvent.Kind.SUCCEEDED,
            f"imported {request.repo_id}@{result['commit'][:12]}: {where} "
            f"(sha256 {result['sha256']})",
            details=result,
            update={
                "status": ImportRequest.Status.SUCCEEDED,
                "finished_at": timezone.now(),
                "result": result,
                "error": "",
                "error_code": "",
            },
        )
        shutil.rmtree(self.work_dir, ignore_errors=True)


def fail_import(request: ImportRequest, error: BaseException) -> None:
    """Record a failure in words; the work dir stays so a retry can resume."""
    if isinstance(error, ImportCancelled):
        status, kind = ImportRequest.Status.CANCELLED, ImportEvent.Kind.CANCELLED
        message = "cancelled"
    else:
        status, kind = ImportRequest.Status.FAILED, ImportEvent.Kind.FAILED
        message = (
            str(error)
            if isinstance(error, KNOWN_ERRORS)
            else (f"internal error ({type(error).__name__}); the details are in the worker's log")
        )
    current = ImportRequest.objects.filter(pk=request.pk).values_list("stage", flat=True).first()
    transition(
        request,
        kind,
        message,
        stage=current or "",
        details={"code": error_code(error)},
        update={
            "status": status,
            "error": message if status == ImportRequest.Status.FAILED else "",
            "error_code": error_code(error),
            "finished_at": timezone.now(),
            "content_key": "",
        },
    )
