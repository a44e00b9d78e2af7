"""Drives the pipeline stages for one ImportRequest: records stages, progress and outcome.

Each finished stage's output is kept in ``ImportRequest.state``; a retried import skips the
stages whose outputs are still valid and redoes everything after the first one it reruns.
Every change of the import's status is an action of ``imports.actions``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from aegis_catalog import services
from aegis_catalog.lib.hub import HubClient
from aegis_catalog.lib.malloc import limit_arenas
from aegis_catalog.lib.storage import ArtifactStore, StorageError, sha256_file
from aegis_catalog.lib.vault import TransitClient
from imports import pipeline, workdirs
from imports.actions import (
    begin_stage,
    end_stage,
    fail_stale_imports,
    finish_import,
    link_import,
    record_event,
    save_progress,
    skip_stage,
)
from imports.errors import ImportCancelled, ImportSuperseded
from imports.models import ImportEvent, ImportRequest, Stage
from imports.packaging import ARTIFACT_LAYOUT
from imports.progress import ProgressReporter
from imports.signing import TrustedTransitSigner
from registry import actions as registry_actions
from registry.models import ImportPolicy, ModelVersion, PolicyOverride, SigningKey
from registry.policy import ImportRules, PolicyFinding

logger = logging.getLogger(__name__)
T = TypeVar("T")
# malloc arenas an import's threads share (aegis_catalog.lib.malloc).
IMPORT_MALLOC_ARENAS = 2
_WithFindings = TypeVar("_WithFindings", pipeline.Preflight, pipeline.ScanResult)


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


@dataclass(frozen=True)
class Built:
    """What the stages before registration produced: everything the registry records."""

    resolution: pipeline.Resolution
    checked: pipeline.CheckResult
    scan: pipeline.ScanResult
    policy_record: dict[str, Any]
    model_signature: dict[str, Any]
    packaged: pipeline.Packaged
    provenance: dict[str, Any]
    stored: pipeline.Stored
    key: SigningKey

    def result(self) -> dict[str, Any]:
        """The import's result, as its page and the CLI show it."""
        return {
            "artifact_url": self.stored.artifact.url,
            "attestation_url": self.stored.attestation.url,
            "record_url": self.stored.record.url,
            "sha256": self.packaged.sha256,
            "size": self.packaged.size,
            "commit": self.resolution.commit,
            "signing_key": self.key.name,
            "signing_key_version": self.key.version,
        }


def _refuse_if_yanked(holder: ImportRequest) -> None:
    """An import of content whose version was yanked is refused, not linked to that version."""
    version = holder.model_version
    if version is not None and version.status == ModelVersion.Status.YANKED:
        raise pipeline.ContentYanked(
            f"{holder.repo_id}@{holder.commit[:12]} with these options was imported by import "
            f"#{holder.pk} as {version.model.name} {version.version}, which is yanked "
            f"({version.status_reason or 'no reason given'}): a registry admin can restore "
            "that version, or import another commit"
        )
    if version is not None and version.status == ModelVersion.Status.REJECTED:
        raise pipeline.ContentRejected(
            f"{holder.repo_id}@{holder.commit[:12]} with these options was imported by import "
            f"#{holder.pk} as {version.model.name} {version.version}, which a registry admin "
            f"rejected ({version.status_reason or 'no reason given'}): import another commit"
        )


class ImportRunner:
    """Runs one claimed ImportRequest to its end, one small step per stage."""

    wait_interval = 1.0

    def __init__(self, request: ImportRequest, services_: Services | None = None) -> None:
        self.request = request
        self.services = services_ or default_services(request)
        self.work_dir = workdirs.work_dir_of(request.pk)
        self.state: dict[str, Any] = dict(request.state or {})
        self._rerun = False
        self._ran: set[str] = set()
        self.on_progress: Callable[[str, int, int], None] | None = None
        self.reporter = ProgressReporter(request.pk, request.attempts)
        self._overrides: list[PolicyOverride] = []
        self.started_on = timezone.now()

    # --- bookkeeping ---------------------------------------------------------------------

    def _check_cancelled(self) -> None:
        if self.reporter.superseded.is_set():
            raise ImportSuperseded(f"import #{self.request.pk} is no longer this attempt's")
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
            if self.reporter.superseded.is_set():
                raise ImportSuperseded(f"import #{self.request.pk} is no longer this attempt's")

        return report

    def _save_state(self) -> None:
        save_progress(self.request, state=self.state)

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
                skip_stage(self.request, stage)
                return restored
        self._rerun = self._rerun or restore is not None
        self.reporter.forget()
        begin_stage(self.request, stage, total=total)
        self._ran.add(stage)
        started = time.monotonic()
        value = compute()
        self.reporter.forget()
        if dump is not None:
            self.state[stage] = dump(value)
            self._save_state()
        end_stage(self.request, stage, seconds=time.monotonic() - started, total=total)
        return value

    # --- the stages, in order ------------------------------------------------------------

    def run(self) -> ModelVersion | None:
        # Before the pipeline's threads start (aegis_catalog.lib.malloc): on the bench's 1 GiB
        # import, the worker's peak RSS was 238-244 MiB instead of 292-299, for the same CPU.
        limit_arenas(IMPORT_MALLOC_ARENAS)
        self.reporter.start()
        try:
            return self._run()
        finally:
            self.reporter.stop()

    def _run(self) -> ModelVersion | None:
        resolution = self._resolve()
        holder = self._claim_content(resolution)
        if holder is not None:
            link_import(self.request, holder)
            return holder.model_version
        rules = self._policy_rules()
        before = self._preflight(resolution, rules)
        if settings.AEGIS_ONE_PASS_IMPORT:
            built = self._build_in_one_pass(resolution, rules, before)
        else:
            built = self._build_in_stages(resolution, rules, before)
        version = self._register(built) if self.request.register else None
        finish_import(self.request, built.result(), version)
        return version

    def _build_in_stages(
        self, resolution: pipeline.Resolution, rules: ImportRules, before: pipeline.Preflight
    ) -> Built:
        download = self._download(resolution)
        checked = self._check(resolution, download)
        scan = self._scan(download, checked, rules)
        policy_record = self._policy_record(rules, [*before.findings, *scan.findings])
        key, signer = self._signing_key()
        model_signature = self._sign_model(checked, signer, key)
        packaged = self._package(resolution, download, checked, scan, policy_record)
        return self._attest_and_store(
            resolution, checked, scan, policy_record, model_signature, packaged, key, signer
        )

    def _build_in_one_pass(
        self, resolution: pipeline.Resolution, rules: ImportRules, before: pipeline.Preflight
    ) -> Built:
        """Download, check, scan and package in one pass, then sign, attest and store the
        files beside the tarball. The signing key is read first: with Vault down, nothing is
        uploaded. A failure after the pass removes the tarball it stored (no artifact without
        its signatures is left behind); a retry packages it again from the work directory,
        fetching again the safetensors shards the pass kept in memory only."""
        key, signer = self._signing_key()
        streamed = self._stream(resolution, rules)
        try:
            checked, scan = streamed.checked, streamed.scan
            policy_record = self._policy_record(rules, [*before.findings, *scan.findings])
            model_signature = self._sign_model(checked, signer, key)
            packaged = self._streamed_package(resolution, streamed, policy_record)
            return self._attest_and_store(
                resolution, checked, scan, policy_record, model_signature, packaged, key, signer
            )
        except ImportSuperseded:
            raise  # the attempt that superseded this one owns the objects now
        except BaseException:
            self._discard_streamed(streamed)
            raise

    def _attest_and_store(
        self,
        resolution: pipeline.Resolution,
        checked: pipeline.CheckResult,
        scan: pipeline.ScanResult,
        policy_record: dict[str, Any],
        model_signature: dict[str, Any],
        packaged: pipeline.Packaged,
        key: SigningKey,
        signer: TrustedTransitSigner,
    ) -> Built:
        provenance = self._attest(resolution, checked, packaged, signer, key, scan, policy_record)
        stored = self._store(packaged, provenance, model_signature)
        return Built(
            resolution, checked, scan, policy_record, model_signature, packaged, provenance,
            stored, key,
        )  # fmt: skip

    def _discard_streamed(self, streamed: pipeline.Streamed) -> None:
        try:
            self.services.store.delete(streamed.artifact.url)
        except StorageError:
            logger.warning("could not remove %s", streamed.artifact.url, exc_info=True)
        self.state.pop(Stage.STREAM, None)
        self._save_state()

    def _resolve(self) -> pipeline.Resolution:
        request = self.request
        resolution = self._stage(
            Stage.RESOLVE,
            lambda: pipeline.resolve_revision(
                self.services.hub,
                request.repo_id,
                request.revision,
                include=request.include_patterns,
                exclude=request.exclude_patterns,
                commit=request.commit,
            ),
            restore=pipeline.Resolution.from_json,
            dump=lambda value: value.to_json(),
        )
        if Stage.RESOLVE in self._ran and request.revision != resolution.commit:
            save_progress(request, commit=resolution.commit)
            request.commit = resolution.commit
            record_event(
                request,
                ImportEvent.Kind.NOTE,
                f"{request.revision} is commit {resolution.commit}",
                stage=Stage.RESOLVE,
                details={"commit": resolution.commit, "files": len(resolution.files)},
            )
        return resolution

    def _preflight(self, resolution: pipeline.Resolution, rules: ImportRules) -> pipeline.Preflight:
        return self._stage(
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

    def _stream(self, resolution: pipeline.Resolution, rules: ImportRules) -> pipeline.Streamed:
        request = self.request
        name = pipeline.artifact_basename(request.model_name, request.version) + ".tar.gz"
        key = f"{pipeline.storage_prefix(request.model_name, request.version, request.pk)}/{name}"

        def stream() -> pipeline.Streamed:
            streamed = pipeline.stream_import(
                self.services.hub,
                resolution,
                rules=rules,
                store=self.services.store,
                key=key,
                model_name=request.model_name,
                version=request.version,
                snapshot_dir=self.work_dir / "snapshot",
                progress=self._progress(Stage.STREAM),
                compress_workers=settings.AEGIS_PACKAGE_THREADS or None,
            )
            self._recording_findings(Stage.STREAM, streamed.scan)
            return streamed

        return self._stage(
            Stage.STREAM,
            stream,
            restore=lambda data: self._restore_streamed(data, rules),
            dump=lambda value: value.to_json(),
            total=resolution.total_bytes,
        )

    def _streamed_package(
        self,
        resolution: pipeline.Resolution,
        streamed: pipeline.Streamed,
        policy_record: dict[str, Any],
    ) -> pipeline.Packaged:
        """The stored tarball with its import record (aegis.json, stored beside it later)."""
        request = self.request
        record = pipeline.import_record(
            resolution,
            streamed.checked,
            model_name=request.model_name,
            version=request.version,
            endpoint=self.services.endpoint,
            artifact=pipeline.package_result(streamed),
            scan=streamed.scan,
            policy_record=policy_record,
            imported=self._imported(),
        )
        return pipeline.Packaged(
            path=None,
            sha256=streamed.artifact.sha256 or "",
            size=streamed.artifact.size,
            record=pipeline.canonical_json(record),
            artifact=streamed.artifact,
            name=streamed.name,
            layout=streamed.layout,
        )

    def _imported(self) -> dict[str, Any]:
        """Who imported it and when, for aegis.json."""
        request = self.request
        return {
            "by": request.actor,
            "import_request": request.pk,
            "started_on": self.started_on.isoformat(),
        }

    def _restore_streamed(
        self, data: Mapping[str, Any], rules: ImportRules
    ) -> pipeline.Streamed | None:
        """Reuse the pass while its tarball is whole in the store and the policy is the same
        (under other rules, or an override granted since, the pass is done again)."""
        streamed = pipeline.Streamed.from_json(data)
        if streamed.layout != ARTIFACT_LAYOUT or streamed.scan.rules_digest != rules.digest():
            return None
        try:
            head = self.services.store.head(streamed.artifact.url)
        except StorageError:
            return None
        return streamed if head.size == streamed.artifact.size else None

    def _download(self, resolution: pipeline.Resolution) -> pipeline.Download:
        return self._stage(
            Stage.DOWNLOAD,
            lambda: pipeline.download_files(
                self.services.hub,
                resolution,
                self.work_dir / "snapshot",
                progress=self._progress(Stage.DOWNLOAD),
            ),
            total=resolution.total_bytes,
        )

    def _check(
        self, resolution: pipeline.Resolution, download: pipeline.Download
    ) -> pipeline.CheckResult:
        return self._stage(
            Stage.CHECK,
            lambda: pipeline.check_digests(
                resolution, download, progress=self._progress(Stage.CHECK)
            ),
            restore=lambda data: self._restore_check(data, download),
            dump=lambda value: {**value.to_json(), "stat": self._stat(download)},
            total=resolution.total_bytes,
        )

    def _scan(
        self, download: pipeline.Download, checked: pipeline.CheckResult, rules: ImportRules
    ) -> pipeline.ScanResult:
        return self._stage(
            Stage.SCAN,
            lambda: self._recording_findings(
                Stage.SCAN, pipeline.scan_pickles(download, checked, rules)
            ),
            # Judged under other rules (the policy changed, an override was granted): scan again.
            restore=lambda data: (
                scan
                if (scan := pipeline.ScanResult.from_json(data)).rules_digest == rules.digest()
                else None
            ),
            dump=lambda value: value.to_json(),
        )

    def _signing_key(self) -> tuple[SigningKey, TrustedTransitSigner]:
        """The trusted key version to sign with; reading it from Vault belongs to the signing
        stage (and so do its failures)."""
        save_progress(self.request, stage=Stage.SIGN_MODEL)
        transit = self.services.transit
        key = registry_actions.sync_signing_keys(transit, self.request.sign_key)
        return key, TrustedTransitSigner(transit, key)

    def _sign_model(
        self, checked: pipeline.CheckResult, signer: TrustedTransitSigner, key: SigningKey
    ) -> dict[str, Any]:
        return self._stage(
            Stage.SIGN_MODEL,
            lambda: pipeline.sign_model_files(checked, signer, key.public_key_pem),
            # Signed with another (older) key version: sign again with the current one.
            restore=lambda data: data["bundle"] if data["key"] == key.pk else None,
            dump=lambda value: {"bundle": value, "key": key.pk},
        )

    def _package(
        self,
        resolution: pipeline.Resolution,
        download: pipeline.Download,
        checked: pipeline.CheckResult,
        scan: pipeline.ScanResult,
        policy_record: dict[str, Any],
    ) -> pipeline.Packaged:
        request = self.request
        return self._stage(
            Stage.PACKAGE,
            lambda: pipeline.package_artifact(
                resolution,
                download,
                checked,
                model_name=request.model_name,
                version=request.version,
                endpoint=self.services.endpoint,
                out_dir=self.work_dir / "out",
                progress=self._progress(Stage.PACKAGE),
                scan=scan,
                policy_record=policy_record,
                imported=self._imported(),
                store=self.services.store if settings.AEGIS_STREAM_UPLOADS else None,
                import_id=request.pk,
                compress_workers=settings.AEGIS_PACKAGE_THREADS or None,
            ),
            restore=self._restore_packaged,
            dump=lambda value: value.to_json(),
            total=resolution.total_bytes,
        )

    def _attest(
        self,
        resolution: pipeline.Resolution,
        checked: pipeline.CheckResult,
        packaged: pipeline.Packaged,
        signer: TrustedTransitSigner,
        key: SigningKey,
        scan: pipeline.ScanResult,
        policy_record: dict[str, Any],
    ) -> dict[str, Any]:
        run_details = pipeline.RunDetails(
            builder_id=settings.AEGIS_BUILDER_ID,
            invocation_id=f"import-{self.request.pk}-{uuid.uuid4()}",
            started_on=self.started_on,
            finished_on=timezone.now(),
            actor=self.request.actor,
            endpoint=self.services.endpoint,
        )
        return self._stage(
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

    def _store(
        self,
        packaged: pipeline.Packaged,
        provenance: dict[str, Any],
        model_signature: dict[str, Any],
    ) -> pipeline.Stored:
        request = self.request
        return self._stage(
            Stage.STORE,
            lambda: pipeline.store_artifact(
                self.services.store,
                packaged,
                provenance,
                model_signature,
                model_name=request.model_name,
                version=request.version,
                import_id=request.pk,
                progress=self._progress(Stage.STORE),
            ),
            restore=lambda data: self._restore_stored(data, packaged),
            dump=lambda value: value.to_json(),
            total=packaged.size,
        )

    def _register(self, built: Built) -> ModelVersion:
        """Register the version; a stored artifact no version points to is removed."""
        try:
            return self._stage(Stage.REGISTER, lambda: self._register_version(built))
        except BaseException:
            self._remove_orphans(built.stored)
            raise

    def _register_version(self, built: Built) -> ModelVersion:
        request = self.request
        resolution = built.resolution
        with transaction.atomic():
            new = registry_actions.NewVersion(
                model_name=request.model_name,
                version=request.version,
                card=resolution.metadata,
                card_data=resolution.card_data,
                model_path=built.stored.artifact.url,
                sha256=built.packaged.sha256,
                size=built.packaged.size,
                manifest=[asdict(item) for item in built.checked.files],
                model_signature=built.model_signature,
                attestation_bundle=built.provenance,
                signing_key=built.key,
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
                    "policy": built.policy_record,
                    "layout": built.packaged.layout,
                },
                scan_results=built.scan.version_rows(),
            )
            version = registry_actions.register(new, actor=request.actor, user=request.requested_by)
            save_progress(request, model_version=version)
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
                    save_progress(self.request, content_key=key)
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
                _refuse_if_yanked(holder)
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
        if not packaged.current_layout:
            return None  # saved by older code (model.sig inside): package it again
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
