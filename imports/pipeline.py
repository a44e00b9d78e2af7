"""The import pipeline: one function per stage, explicit inputs, a frozen dataclass out.

No Django request, RQ or database code lives here (``imports.runner`` drives the stages and
records their outcomes), so each stage runs the same from a job, the CLI or a test.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aegis_catalog.lib.hub import HubClient, HubFile, HubModel
from aegis_catalog.lib.storage import ArtifactStore, StorageError, StoredObject, Upload
from imports.formats import is_pickle_format
from imports.packaging import PackageResult, package_snapshot
from registry import attestation, policy
from registry.attestation import SignedDigest
from registry.card import CardMetadata
from registry.policy import ImportRules, PolicyFinding, PolicyViolation

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Signer = Callable[[bytes], SignedDigest]

AEGIS_RECORD_FORMAT = "https://aegis-catalog.dev/import-record/v1"


class PipelineError(Exception):
    """A stage refused to go on; the message says why in words a person can act on."""

    code = "pipeline_error"


class PreflightError(PipelineError):
    code = "preflight"


class DigestMismatch(PipelineError):
    code = "digest_mismatch"


class UnsafeModelFile(PolicyViolation, PipelineError):
    """The scan found pickle content the policy refuses (``code`` is ``policy:<rule>``)."""


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
    commit: str = "",
) -> Resolution:
    """Pin the revision to its commit and list the files the patterns select. A ``commit``
    pinned when the import was requested is read instead of where the revision is now."""
    model = hub.model_info(repo_id, commit or revision)
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
    findings: tuple[PolicyFinding, ...] = ()


# Beyond the snapshot and the tarball: gzip can grow incompressible data a little, and the
# work dir also holds model.sig, aegis.json and the Hub client's temporary files.
DISK_MARGIN_RATIO = 0.05


def disk_space_needed(total_bytes: int, min_free_bytes: int) -> tuple[int, int]:
    """(bytes needed, margin): the snapshot, the tarball beside it, a margin, and the reserve."""
    margin = int(total_bytes * DISK_MARGIN_RATIO) + min_free_bytes
    return 2 * total_bytes + margin, margin


def preflight(
    resolution: Resolution,
    *,
    work_dir: Path,
    min_free_bytes: int,
    rules: ImportRules,
    has_hub_token: bool,
) -> Preflight:
    """Refuse early what would fail late or break the policy, before any file is downloaded:
    a floating revision when commits are required, the card's license, the size, pickle files
    under "safetensors only", a gated repo without a token, not enough disk space."""
    total = resolution.total_bytes
    findings = policy.check_before_download(
        repo_id=f"{resolution.repo_id}@{resolution.commit[:12]}",
        revision=resolution.revision,
        licenses=policy.card_licenses(resolution.card_data, resolution.metadata.license),
        file_sizes={item.path: item.size for item in resolution.files},
        pickle_paths=[item.path for item in resolution.files if is_pickle_format(item.path)],
        rules=rules,
    )
    if resolution.metadata.gated != "no" and not has_hub_token:
        raise PreflightError(
            f"{resolution.repo_id} is gated: set HF_TOKEN to a token that was granted access"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work_dir).free
    needed, margin = disk_space_needed(total, min_free_bytes)
    if free < needed:
        raise PreflightError(
            f"not enough disk space in {work_dir}: {free:,} bytes free, {needed:,} needed "
            f"(snapshot {total:,} + tarball {total:,} + margin {margin:,}, which includes "
            f"AEGIS_MIN_FREE_BYTES {min_free_bytes:,}); free space or point AEGIS_WORK_DIR "
            "at a larger disk"
        )
    return Preflight(needed_bytes=needed, free_bytes=free, findings=tuple(findings))


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


HASH_CHUNK = 4 * 1024 * 1024
CHECK_WORKERS = 2


def _hash_file(
    path: Path, progress: Callable[[int], None], *, blob_id: bool = True
) -> tuple[str, str, int]:
    """sha256 (and, when asked, the git blob sha1) of a file in one read."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False) if blob_id else None
    read = 0
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(HASH_CHUNK):
            sha256.update(chunk)
            if blob is not None:
                blob.update(chunk)
            read += len(chunk)
            progress(len(chunk))
    return sha256.hexdigest(), blob.hexdigest() if blob is not None else "", read


def _hash_files(
    files: Sequence[tuple[HubFile, Path]], progress: Progress, total: int
) -> dict[str, tuple[str, str, int]]:
    """Hash files on a few threads (hashlib releases the GIL); progress from this thread."""
    lock = threading.Lock()
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        with lock:
            done += count

    with ThreadPoolExecutor(max_workers=CHECK_WORKERS, thread_name_prefix="aegis-check") as pool:
        futures = {
            # The git blob id is only compared for files the Hub does not keep in LFS.
            expected.path: pool.submit(_hash_file, path, advance, blob_id=not expected.lfs_sha256)
            for expected, path in files
        }
        pending = set(futures.values())
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                progress(done, total)
                for future in finished:
                    future.result()  # a file that could not be read stops the check
        finally:
            for future in pending:
                future.cancel()
        return {name: future.result() for name, future in futures.items()}


def check_digests(
    resolution: Resolution, download: Download, *, progress: Progress = _noop_progress
) -> CheckResult:
    """Compare every downloaded file with the Hub's digest: LFS sha256, or the git blob id."""
    checked: list[CheckedFile] = []
    located: list[tuple[HubFile, Path]] = []
    for expected in resolution.files:
        path = download.paths.get(expected.path)
        if path is None or not path.is_file():
            raise DigestMismatch(f"{expected.path} was not downloaded")
        located.append((expected, path))
    digests = _hash_files(located, progress, resolution.total_bytes)
    for expected in resolution.files:
        sha256, blob_id, size = digests[expected.path]
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


SCANNER = "picklescan"
# picklescan names the module a pickle imports as written in the pickle: os.system pickled on
# Linux reads "posix.system". Shown with the name people know.
_MODULE_ALIASES = {"posix": "os", "nt": "os", "__builtin__": "builtins"}


@dataclass(frozen=True)
class ScanVerdict:
    path: str
    scanner: str
    verdict: str  # "safe", "suspicious", "dangerous"
    detail: str = ""
    globals: tuple[str, ...] = ()  # the offending imports: dangerous and suspicious ones
    detected_by: str = "extension"  # "extension", "magic bytes" or "zip with pickle"
    sha256: str = ""


@dataclass(frozen=True)
class ScanResult:
    verdicts: tuple[ScanVerdict, ...]
    findings: tuple[PolicyFinding, ...] = ()
    scanner_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScanResult:
        verdicts = []
        for item in data["verdicts"]:
            values = dict(item)
            values["globals"] = tuple(values.get("globals") or ())
            verdicts.append(ScanVerdict(**values))
        return cls(
            verdicts=tuple(verdicts),
            findings=tuple(PolicyFinding.from_json(item) for item in data.get("findings", ())),
            scanner_version=str(data.get("scanner_version", "")),
        )

    def verdicts_json(self) -> list[dict[str, Any]]:
        return [{**asdict(item), "globals": list(item.globals)} for item in self.verdicts]


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    # safetensors: an 8-byte little-endian header length, then a JSON object.
    if len(head) < 10:
        return False
    header_length = int.from_bytes(head[:8], "little")
    return 2 <= header_length <= size - 8 and head[8:9] == b"{"


def pickle_content(path: Path) -> str:
    """How a file is recognised as pickle-based by its bytes, or "" when it is not.

    Pickle protocol 2+ starts with PROTO (0x80, then the protocol number); PyTorch's zip
    format is a zip archive holding a ``*.pkl`` (``data.pkl``); numpy's ``.npy`` can hold
    pickled objects. Names do not matter here: a pickle called ``weights.dat`` is found.
    """
    import zipfile

    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(16)
    is_proto = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    if is_proto and not _looks_like_safetensors(head, size):
        return "magic bytes"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return ""
        if any(name.endswith((".pkl", ".pickle", "/data.pkl")) for name in names):
            return "zip with pickle"
    if head.startswith(b"\x93NUMPY"):
        return "magic bytes"
    return ""


def _display_global(name: str) -> str:
    module, _, attribute = name.partition(".")
    alias = _MODULE_ALIASES.get(module)
    return f"{name} ({alias}.{attribute})" if alias else name


def scan_file(path: Path, name: str, *, detected_by: str, sha256: str = "") -> ScanVerdict:
    """One file's verdict: dangerous or suspicious imports named; unparseable is suspicious."""
    import logging

    from picklescan.scanner import scan_file_path

    unparseable: list[str] = []

    class _ParseFailures(logging.Handler):
        # picklescan reports a stream it cannot parse only in its log.
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if str(path) in message and (
                "could not parse" in message or "parsing pickle" in message
            ):
                unparseable.append(message)

    handler = _ParseFailures(level=logging.WARNING)
    scanner_log = logging.getLogger("picklescan")
    scanner_log.addHandler(handler)
    try:
        result = scan_file_path(str(path))
    finally:
        scanner_log.removeHandler(handler)

    def named(level: str) -> tuple[str, ...]:
        return tuple(
            sorted(
                {
                    _display_global(f"{found.module}.{found.name}")
                    for found in result.globals
                    if getattr(found.safety, "value", str(found.safety)) == level
                }
            )
        )

    dangerous, suspicious = named("dangerous"), named("suspicious")
    if dangerous or (result.issues_count and not suspicious):
        offending = dangerous or ("unknown code",)
        return ScanVerdict(
            name, SCANNER, "dangerous", "dangerous imports: " + ", ".join(offending),
            globals=tuple(sorted({*offending, *suspicious})), detected_by=detected_by,
            sha256=sha256,
        )  # fmt: skip
    if suspicious or result.scan_err or unparseable:
        reasons = []
        if suspicious:
            reasons.append("suspicious imports: " + ", ".join(suspicious))
        if result.scan_err or unparseable:
            reasons.append("the pickle stream could not be parsed to its end")
        return ScanVerdict(
            name, SCANNER, "suspicious", "; ".join(reasons), globals=suspicious,
            detected_by=detected_by, sha256=sha256,
        )  # fmt: skip
    imported = sorted({f"{found.module}.{found.name}" for found in result.globals})
    return ScanVerdict(
        name, SCANNER, "safe", "imports: " + (", ".join(imported) or "none"),
        detected_by=detected_by, sha256=sha256,
    )  # fmt: skip


def scan_pickles(download: Download, checked: CheckResult, rules: ImportRules) -> ScanResult:
    """Scan every pickle-based file (by name or by its bytes) and apply the pickle policy.

    Verdicts: safe, suspicious (suspicious imports, or a stream that cannot be parsed) and
    dangerous (imports that run code, such as ``os.system``). The policy decides what stops
    the import (see ``registry.policy.check_pickle_verdicts``).
    """
    from importlib.metadata import version as package_version

    verdicts: list[ScanVerdict] = []
    for item in checked.files:
        local = download.paths[item.path]
        detected = pickle_content(local)
        if not detected and not is_pickle_format(item.path):
            continue
        verdicts.append(
            scan_file(local, item.path, detected_by=detected or "extension", sha256=item.sha256)
        )
    verdict_dicts = [{**asdict(item), "globals": list(item.globals)} for item in verdicts]
    try:
        findings = policy.check_pickle_verdicts(verdict_dicts, rules)
    except PolicyViolation as error:
        raise UnsafeModelFile(error.rule, error.reason) from None
    return ScanResult(
        verdicts=tuple(verdicts),
        findings=tuple(findings),
        scanner_version=f"{SCANNER} {package_version('picklescan')}",
    )


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
    resolution: Resolution,
    checked: CheckResult,
    *,
    model_name: str,
    version: str,
    endpoint: str,
    scan: ScanResult | None = None,
    policy_record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """aegis.json: what was imported. Only facts fixed by the commit and the options, so the
    tarball stays byte-reproducible (who and when live in the signed provenance instead).

    ``scan`` adds the pickle scanner's verdict per file; ``policy_record`` the import policy in
    force, its warnings and any override (rule, reason, who granted it)."""
    record = {
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
    if scan is not None:
        record["scan"] = {"scanner": scan.scanner_version, "files": scan.verdicts_json()}
    if policy_record is not None:
        record["policy"] = {
            "rules": dict(policy_record.get("rules") or {}),
            "findings": list(policy_record.get("findings") or []),
            "overrides": [
                {key: item[key] for key in ("rule", "reason", "granted_by") if key in item}
                for item in policy_record.get("overrides") or []
            ],
        }
    return record


def canonical_json(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


@dataclass(frozen=True)
class Packaged:
    # The work copy of the tarball; None when it was only streamed into the store.
    path: Path | None
    sha256: str
    size: int
    record: bytes
    model_sig: bytes
    # The tarball as streamed into the store while it was packaged (None: not streamed).
    # Recorded with the stage's output, so a failed import's upload is found on retry.
    artifact: StoredObject | None = None
    name: str = ""  # the tarball's file name (from path when not given)

    def __post_init__(self) -> None:
        if not self.name:
            if self.path is None:
                raise ValueError("a packaged tarball needs a name or a path")
            object.__setattr__(self, "name", self.path.name)
        if self.path is None and self.artifact is None:
            raise ValueError("a packaged tarball is in the work directory, the store, or both")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": None if self.path is None else str(self.path),
            "sha256": self.sha256,
            "size": self.size,
            "record": self.record.decode(),
            "model_sig": self.model_sig.decode(),
            "artifact": asdict(self.artifact) if self.artifact else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Packaged:
        artifact = data.get("artifact")
        return cls(
            name=data.get("name", ""),
            path=None if data.get("path") is None else Path(data["path"]),
            sha256=data["sha256"],
            size=data["size"],
            record=data["record"].encode(),
            model_sig=data["model_sig"].encode(),
            artifact=StoredObject(**artifact) if artifact else None,
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
    scan: ScanResult | None = None,
    policy_record: Mapping[str, Any] | None = None,
    store: ArtifactStore | None = None,
    import_id: int | None = None,
    compress_workers: int | None = None,
) -> Packaged:
    """The byte-reproducible tar.gz: ``model/``, ``model.sig`` and ``aegis.json``.

    With ``store`` (and ``import_id``), the tarball is streamed into the store as it is
    written (an S3 multipart upload, parts in parallel) and nothing is written to the work
    directory: the store stage has nothing left to upload, and no byte is written twice. The
    stream is a shortcut, not a requirement: if the store fails during it, the partial upload
    is discarded and the tarball is packaged again into ``out_dir`` (it is byte-reproducible),
    for the store stage to upload with its retries and its error messages, as it would have
    without streaming.
    """
    base = artifact_basename(model_name, version)
    record = canonical_json(
        import_record(
            resolution,
            checked,
            model_name=model_name,
            version=version,
            endpoint=endpoint,
            scan=scan,
            policy_record=policy_record,
        )
    )
    model_sig = attestation.bundle_to_bytes(dict(model_signature))
    name = f"{base}.tar.gz"

    def package(out_path: Path | None, upload: _StreamedUpload | None) -> PackageResult:
        return package_snapshot(
            out_path,
            root_name=base,
            model_files={item.path: download.paths[item.path] for item in checked.files},
            extra_members={"model.sig": model_sig, "aegis.json": record},
            mtime=resolution.mtime,
            progress=progress,
            expected_sha256=checked.sha256_by_path,
            upload=upload,
            compress_workers=compress_workers,
        )

    artifact: StoredObject | None = None
    result: PackageResult | None = None
    if store is not None and import_id is not None:
        input_bytes = sum(item.size for item in checked.files) + len(record) + len(model_sig)
        upload = _StreamedUpload.open(
            store,
            f"{storage_prefix(model_name, version, import_id)}/{name}",
            expected_size=input_bytes,
        )
        if upload.active:
            try:
                result = package(None, upload)
                artifact = upload.complete(sha256=result.sha256)
            except _StreamFailed:
                pass
            except BaseException:
                upload.abort()
                raise
            if artifact is None:
                result = None
                logger.warning("packaging %s again into the work directory, to upload after", name)
    if result is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        result = package(out_dir / name, None)
    return Packaged(
        path=result.path,
        sha256=result.sha256,
        size=result.size,
        record=record,
        model_sig=model_sig,
        artifact=artifact,
        name=name,
    )


class _StreamFailed(Exception):
    """The store failed while the tarball streamed into it (logged; the upload is aborted)."""


class _StreamedUpload:
    """A store upload fed by the packager. A store failure aborts the upload and stops the
    packaging with ``_StreamFailed``, so it can be done again into a file instead."""

    def __init__(self, upload: Upload | None) -> None:
        self._upload = upload

    @property
    def active(self) -> bool:
        return self._upload is not None

    @classmethod
    def open(cls, store: ArtifactStore, key: str, *, expected_size: int) -> _StreamedUpload:
        try:
            upload = store.open_upload(
                key, content_type="application/gzip", expected_size=expected_size
            )
        except Exception:
            logger.warning(
                "cannot stream %s into the store; it is uploaded after", key, exc_info=True
            )
            upload = None
        return cls(upload)

    def write(self, data: bytes) -> None:
        if self._upload is None:
            raise _StreamFailed("the upload was aborted")
        try:
            self._upload.write(data)
        except Exception as error:
            logger.warning(
                "streaming %s failed; it is uploaded after", self._upload.url, exc_info=True
            )
            self.abort()
            raise _StreamFailed(str(error)) from error

    def complete(self, *, sha256: str) -> StoredObject | None:
        if self._upload is None:
            return None
        try:
            return self._upload.complete(sha256=sha256)
        except Exception:
            logger.warning(
                "streaming %s failed; it is uploaded after", self._upload.url, exc_info=True
            )
            self.abort()
            return None

    def abort(self) -> None:
        if self._upload is not None:
            self._upload.abort()
            self._upload = None


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
    scan: ScanResult | None = None,
    policy_record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The in-toto SLSA v1 provenance statement over the tarball digest, signed through Transit.

    The policy in force (with overrides: rule, reason, who, when) goes in
    ``buildDefinition.internalParameters.policy``; each scanned file's verdict is a
    ``runDetails.byproducts`` entry."""
    statement = attestation.provenance_statement(
        artifact_name=packaged.name,
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
        policy=policy_record,
        scan=(
            {"scanner": scan.scanner_version, "files": scan.verdicts_json()}
            if scan is not None
            else None
        ),
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
    """Upload the tarball (unless it was streamed there while packaging and is still there),
    its attestation beside it, and aegis.json; remove them on failure."""
    prefix = storage_prefix(model_name, version, import_id)
    name = packaged.name
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        progress(done, packaged.size)

    written: list[str] = []
    try:
        artifact = streamed_artifact(store, packaged, store.url_for(f"{prefix}/{name}"))
        if artifact is None:
            if packaged.path is None:
                raise StoreError(
                    f"{name} was streamed into the store while it was packaged, but it is no "
                    "longer there; retry the import to package and upload it again"
                )
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


def streamed_artifact(
    store: ArtifactStore, packaged: Packaged, url: str | None = None
) -> StoredObject | None:
    """The tarball streamed into this store while packaging (at ``url``, when given), if it is
    still there whole."""
    if packaged.artifact is None or url not in (None, packaged.artifact.url):
        return None
    try:
        head = store.head(packaged.artifact.url)
    except StorageError:
        return None
    return packaged.artifact if head.size == packaged.size else None


def stored_still_present(store: ArtifactStore, stored: Stored, packaged: Packaged) -> bool:
    """Whether a retried import can skip the store stage: the tarball is there, same size."""
    try:
        head = store.head(stored.artifact.url)
    except StorageError:
        return False
    return head.size == packaged.size and store.exists(stored.attestation.url)
