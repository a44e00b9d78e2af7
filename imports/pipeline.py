"""The import pipeline: one function per stage, explicit inputs, a frozen dataclass out.

No Django request, RQ or database code lives here (``imports.runner`` drives the stages and
records their outcomes), so each stage runs the same from a job, the CLI or a test.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aegis_catalog.lib.hub import HubClient, HubFile, HubModel
from aegis_catalog.lib.storage import ArtifactStore, StorageError, StoredObject
from imports.packaging import PackageResult, package_snapshot
from registry import attestation
from registry.attestation import SignedDigest
from registry.card import CardMetadata

Progress = Callable[[int, int], None]
Signer = Callable[[bytes], SignedDigest]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill", ".npy")
AEGIS_RECORD_FORMAT = "https://aegis-catalog.dev/import-record/v1"


class PipelineError(Exception):
    """A stage refused to go on; the message says why in words a person can act on."""

    code = "pipeline_error"


class PreflightError(PipelineError):
    code = "preflight"


class DigestMismatch(PipelineError):
    code = "digest_mismatch"


class UnsafeModelFile(PipelineError):
    code = "scan_rejected"


class StoreError(PipelineError):
    code = "store"


def _noop_progress(done: int, total: int) -> None:
    return None


# --- 1. resolve ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    repo_id: str
    revision: str
    commit: str
    commit_time: str  # ISO 8601, UTC: the tarball's fixed mtime
    files: tuple[HubFile, ...]
    card_data: dict[str, Any]
    metadata: CardMetadata
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self.files)

    @property
    def mtime(self) -> int:
        return int(datetime.fromisoformat(self.commit_time).timestamp())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Resolution:
        values = dict(data)
        values["files"] = tuple(HubFile(**item) for item in values["files"])
        meta = dict(values["metadata"])
        for key in ("tags", "datasets", "languages"):
            meta[key] = tuple(meta[key])
        values["metadata"] = CardMetadata(**meta)
        values["include"] = tuple(values.get("include", ()))
        values["exclude"] = tuple(values.get("exclude", ()))
        return cls(**values)


def _as_list(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value if item is not None and str(item) != "")
    return (str(value),)


def card_metadata(model: HubModel) -> CardMetadata:
    """The registry's card fields from the card's YAML, falling back to the Hub's own fields."""
    card = model.card_data or {}
    gated = model.gated
    gated_value = (
        "no" if not gated else (str(gated) if str(gated) in ("auto", "manual") else "auto")
    )
    base_models = _as_list(card.get("base_model"))
    return CardMetadata(
        author=str(model.author or model.repo_id.split("/", 1)[0]),
        license=", ".join(_as_list(card.get("license"))) or (model.license or ""),
        pipeline_tag=str(card.get("pipeline_tag") or model.pipeline_tag or ""),
        library_name=str(card.get("library_name") or model.library_name or ""),
        base_model=", ".join(base_models),
        tags=_as_list(card.get("tags")) or tuple(model.tags),
        datasets=_as_list(card.get("datasets")),
        languages=_as_list(card.get("language")),
        gated=gated_value,
    )


def resolve_revision(
    hub: HubClient,
    repo_id: str,
    revision: str,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Resolution:
    """Pin the revision to its commit and list the files the patterns select."""
    model = hub.model_info(repo_id, revision)
    files = hub.select_files(model, include, exclude)
    return Resolution(
        repo_id=model.repo_id,
        revision=revision,
        commit=model.commit,
        commit_time=model.commit_time.isoformat(),
        files=tuple(files),
        card_data=json.loads(json.dumps(model.card_data or {}, default=str)),
        metadata=card_metadata(model),
        include=tuple(include),
        exclude=tuple(exclude),
    )


# --- 2. preflight -------------------------------------------------------------------------


@dataclass(frozen=True)
class Preflight:
    needed_bytes: int
    free_bytes: int


def preflight(
    resolution: Resolution,
    *,
    work_dir: Path,
    min_free_bytes: int,
    max_import_bytes: int,
    has_hub_token: bool,
) -> Preflight:
    """Refuse early what would fail late: too big, not enough disk, gated without a token."""
    total = resolution.total_bytes
    if total > max_import_bytes:
        raise PreflightError(
            f"{resolution.repo_id}@{resolution.commit[:12]} selects {total:,} bytes, above the "
            f"limit of {max_import_bytes:,} (AEGIS_MAX_IMPORT_BYTES); "
            "narrow it with --include/--exclude"
        )
    if resolution.metadata.gated != "no" and not has_hub_token:
        raise PreflightError(
            f"{resolution.repo_id} is gated: set HF_TOKEN to a token that was granted access"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work_dir).free
    # The snapshot, then the tarball beside it (at most about the same size again).
    needed = 2 * total + min_free_bytes
    if free < needed:
        raise PreflightError(
            f"not enough disk space in {work_dir}: {free:,} bytes free, {needed:,} needed "
            f"(twice the {total:,} bytes selected, plus AEGIS_MIN_FREE_BYTES)"
        )
    return Preflight(needed_bytes=needed, free_bytes=free)


# --- 3. download --------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    paths: dict[str, Path]


def download_files(
    hub: HubClient, resolution: Resolution, dest: Path, *, progress: Progress = _noop_progress
) -> Download:
    """Fetch exactly the selected files at the pinned commit; files already complete are kept."""
    paths = hub.download(
        resolution.repo_id,
        resolution.commit,
        dest,
        [item.path for item in resolution.files],
        progress=progress,
    )
    return Download(paths=dict(paths))


# --- 4. check -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedFile:
    path: str
    size: int
    sha256: str
    hub_digest: str
    hub_digest_kind: str  # "lfs-sha256" or "git-blob-sha1"


@dataclass(frozen=True)
class CheckResult:
    files: tuple[CheckedFile, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckResult:
        return cls(files=tuple(CheckedFile(**item) for item in data["files"]))

    @property
    def sha256_by_path(self) -> dict[str, str]:
        return {item.path: item.sha256 for item in self.files}


def _hash_file(path: Path, progress: Callable[[int], None]) -> tuple[str, str, int]:
    """sha256 and git blob sha1 of a file in one read."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    read = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            sha256.update(chunk)
            blob.update(chunk)
            read += len(chunk)
            progress(len(chunk))
    return sha256.hexdigest(), blob.hexdigest(), read


def check_digests(
    resolution: Resolution, download: Download, *, progress: Progress = _noop_progress
) -> CheckResult:
    """Compare every downloaded file with the Hub's digest: LFS sha256, or the git blob id."""
    total = resolution.total_bytes
    done = 0
    checked: list[CheckedFile] = []

    def advance(count: int) -> None:
        nonlocal done
        done += count
        progress(done, total)

    for expected in resolution.files:
        path = download.paths.get(expected.path)
        if path is None or not path.is_file():
            raise DigestMismatch(f"{expected.path} was not downloaded")
        sha256, blob_id, size = _hash_file(path, advance)
        if size != expected.size:
            raise DigestMismatch(
                f"{expected.path}: downloaded {size:,} bytes, the Hub lists {expected.size:,}"
            )
        if expected.lfs_sha256:
            if sha256 != expected.lfs_sha256:
                raise DigestMismatch(
                    f"{expected.path}: sha256 {sha256} differs from the Hub's LFS sha256 "
                    f"{expected.lfs_sha256}; the download was corrupted or tampered with"
                )
            hub_digest, kind = expected.lfs_sha256, "lfs-sha256"
        else:
            if blob_id != expected.blob_id:
                raise DigestMismatch(
                    f"{expected.path}: git blob id {blob_id} differs from the Hub's "
                    f"{expected.blob_id}; the download was corrupted or tampered with"
                )
            hub_digest, kind = expected.blob_id, "git-blob-sha1"
        checked.append(CheckedFile(expected.path, size, sha256, hub_digest, kind))
    return CheckResult(files=tuple(sorted(checked, key=lambda item: item.path)))


# --- 5. scan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanVerdict:
    path: str
    scanner: str
    verdict: str  # "clean", "dangerous", "error", "not-applicable"
    detail: str = ""


@dataclass(frozen=True)
class ScanResult:
    verdicts: tuple[ScanVerdict, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScanResult:
        return cls(verdicts=tuple(ScanVerdict(**item) for item in data["verdicts"]))


def is_pickle_format(path: str) -> bool:
    return path.lower().endswith(PICKLE_SUFFIXES)


def scan_pickles(download: Download, checked: CheckResult) -> ScanResult:
    """Scan pickle-based files with picklescan; dangerous imports stop the import."""
    from picklescan.scanner import scan_file_path

    verdicts: list[ScanVerdict] = []
    rejected: list[str] = []
    for item in checked.files:
        if not is_pickle_format(item.path):
            continue
        result = scan_file_path(str(download.paths[item.path]))
        dangerous = sorted(
            {
                f"{found.module}.{found.name}"
                for found in result.globals
                if getattr(found.safety, "value", str(found.safety)) == "dangerous"
            }
        )
        if result.scan_err:
            verdicts.append(
                ScanVerdict(item.path, "picklescan", "error", "the file could not be parsed")
            )
            rejected.append(f"{item.path} (unparseable)")
        elif dangerous or result.issues_count:
            detail = "dangerous imports: " + ", ".join(dangerous or ["unknown"])
            verdicts.append(ScanVerdict(item.path, "picklescan", "dangerous", detail))
            rejected.append(f"{item.path} ({detail})")
        else:
            imported = sorted({f"{found.module}.{found.name}" for found in result.globals})
            verdicts.append(
                ScanVerdict(item.path, "picklescan", "clean", "imports: " + ", ".join(imported))
            )
    if rejected:
        raise UnsafeModelFile(
            "the pickle scanner refused " + "; ".join(rejected) + ": loading it could run code"
        )
    return ScanResult(verdicts=tuple(verdicts))


# --- 6. sign the model files (model.sig) ----------------------------------------------------


def sign_model_files(checked: CheckResult, signer: Signer, public_key_pem: str) -> dict[str, Any]:
    """The OpenSSF model-signing bundle over ``model/``, signed through Transit."""
    statement = attestation.model_signing_statement(
        [(item.path, item.sha256) for item in checked.files]
    )
    return attestation.sign_statement(statement, signer, public_key_pem)


# --- 7. package ---------------------------------------------------------------------------


def artifact_basename(model_name: str, version: str) -> str:
    return f"{model_name}-{version}"


def import_record(
    resolution: Resolution, checked: CheckResult, *, model_name: str, version: str, endpoint: str
) -> dict[str, Any]:
    """aegis.json: what was imported. Only facts fixed by the commit and the options, so the
    tarball stays byte-reproducible (who and when live in the signed provenance instead)."""
    return {
        "format": AEGIS_RECORD_FORMAT,
        "model": {"name": model_name, "version": version},
        "source": {
            "endpoint": endpoint,
            "repo_id": resolution.repo_id,
            "revision": resolution.revision,
            "commit": resolution.commit,
            "commit_time": resolution.commit_time,
            "include": list(resolution.include),
            "exclude": list(resolution.exclude),
        },
        "files": [
            {
                "path": item.path,
                "size": item.size,
                "sha256": item.sha256,
                "hub_digest": item.hub_digest,
                "hub_digest_kind": item.hub_digest_kind,
            }
            for item in checked.files
        ],
        "card": asdict(resolution.metadata),
        "card_data": resolution.card_data,
    }


def canonical_json(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


@dataclass(frozen=True)
class Packaged:
    path: Path
    sha256: str
    size: int
    record: bytes
    model_sig: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "size": self.size,
            "record": self.record.decode(),
            "model_sig": self.model_sig.decode(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Packaged:
        return cls(
            path=Path(data["path"]),
            sha256=data["sha256"],
            size=data["size"],
            record=data["record"].encode(),
            model_sig=data["model_sig"].encode(),
        )


def package_artifact(
    resolution: Resolution,
    download: Download,
    checked: CheckResult,
    model_signature: Mapping[str, Any],
    *,
    model_name: str,
    version: str,
    endpoint: str,
    out_dir: Path,
    progress: Progress = _noop_progress,
) -> Packaged:
    """The byte-reproducible tar.gz: ``model/``, ``model.sig`` and ``aegis.json``."""
    base = artifact_basename(model_name, version)
    record = canonical_json(
        import_record(
            resolution, checked, model_name=model_name, version=version, endpoint=endpoint
        )
    )
    model_sig = attestation.bundle_to_bytes(dict(model_signature))
    out_dir.mkdir(parents=True, exist_ok=True)
    result: PackageResult = package_snapshot(
        out_dir / f"{base}.tar.gz",
        root_name=base,
        model_files={item.path: download.paths[item.path] for item in checked.files},
        extra_members={"model.sig": model_sig, "aegis.json": record},
        mtime=resolution.mtime,
        progress=progress,
        expected_sha256=checked.sha256_by_path,
    )
    return Packaged(
        path=result.path, sha256=result.sha256, size=result.size, record=record, model_sig=model_sig
    )


# --- 8. attest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunDetails:
    builder_id: str
    invocation_id: str
    started_on: datetime
    finished_on: datetime
    actor: str
    endpoint: str


def attest_artifact(
    resolution: Resolution,
    checked: CheckResult,
    packaged: Packaged,
    run: RunDetails,
    signer: Signer,
    public_key_pem: str,
) -> dict[str, Any]:
    """The in-toto SLSA v1 provenance statement over the tarball digest, signed through Transit."""
    statement = attestation.provenance_statement(
        artifact_name=packaged.path.name,
        artifact_sha256=packaged.sha256,
        repo_id=resolution.repo_id,
        commit=resolution.commit,
        hub_endpoint=run.endpoint,
        revision_requested=resolution.revision,
        include=list(resolution.include),
        exclude=list(resolution.exclude),
        files=[asdict(item) for item in checked.files],
        builder_id=run.builder_id,
        invocation_id=run.invocation_id,
        started_on=run.started_on,
        finished_on=run.finished_on,
        actor=run.actor,
    )
    return attestation.sign_statement(statement, signer, public_key_pem)


# --- 9. store -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    artifact: StoredObject
    attestation: StoredObject
    record: StoredObject

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.artifact.url, self.attestation.url, self.record.url)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stored:
        return cls(**{key: StoredObject(**value) for key, value in data.items()})


def storage_prefix(model_name: str, version: str, import_id: int) -> str:
    """Keys carry the import's id: no import ever overwrites another one's objects."""
    return f"{model_name}/{version}/import-{import_id}"


def store_artifact(
    store: ArtifactStore,
    packaged: Packaged,
    attestation_bundle: Mapping[str, Any],
    *,
    model_name: str,
    version: str,
    import_id: int,
    progress: Progress = _noop_progress,
) -> Stored:
    """Upload the tarball, its attestation beside it, and aegis.json; remove them on failure."""
    prefix = storage_prefix(model_name, version, import_id)
    name = packaged.path.name
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        progress(done, packaged.size)

    written: list[str] = []
    try:
        artifact = store.put_file(
            packaged.path,
            f"{prefix}/{name}",
            sha256=packaged.sha256,
            content_type="application/gzip",
            progress=advance,
        )
        written.append(artifact.url)
        bundle_bytes = attestation.bundle_to_bytes(dict(attestation_bundle))
        bundle = store.put_bytes(
            bundle_bytes,
            f"{prefix}/{name}.sigstore.json",
            sha256=hashlib.sha256(bundle_bytes).hexdigest(),
            content_type="application/json",
        )
        written.append(bundle.url)
        record = store.put_bytes(
            packaged.record,
            f"{prefix}/aegis.json",
            sha256=hashlib.sha256(packaged.record).hexdigest(),
            content_type="application/json",
        )
        written.append(record.url)
    except BaseException:
        for url in written:
            store.delete(url)
        raise
    return Stored(artifact=artifact, attestation=bundle, record=record)


def stored_still_present(store: ArtifactStore, stored: Stored, packaged: Packaged) -> bool:
    """Whether a retried import can skip the store stage: the tarball is there, same size."""
    try:
        head = store.head(stored.artifact.url)
    except StorageError:
        return False
    return head.size == packaged.size and store.exists(stored.attestation.url)
