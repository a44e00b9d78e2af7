"""A version's downloads (the artifact and the files stored beside it: its attestation, its
model signature, aegis.json; and the public key) as attachments, the same for the provenance
page and the API."""

from __future__ import annotations

import base64
import hashlib

from django.http import (
    FileResponse,
    HttpResponse,
)
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header

from aegis_catalog import services
from registry import slsa
from registry.attestation import statement_of
from registry.models import ModelVersion
from registry.provenance import (
    artifact_name,
    attestation_bytes,
    model_signature_bytes,
    model_signature_name,
    public_key_bytes,
    record_url,
)

JSON_TYPE = "application/json"
STREAM_BLOCK_SIZE = 1024 * 1024  # read from S3 per chunk of a streamed download
MAX_RECORD_BYTES = 16 * 1024 * 1024  # aegis.json is a few kB; anything this large is not one
# Every download answer (and the refusal of a yanked artifact) says the version's status.
STATUS_HEADER = "X-Aegis-Version-Status"
# The query parameter with which an auditor or registry admin asks for a yanked artifact.
ALLOW_YANKED = "allow_yanked"


def download_names(item: ModelVersion) -> dict[str, str]:
    """File names offered for each download: unique per version, so several can sit side by
    side in one folder."""
    prefix = f"{item.model.name}-{item.version}"
    name = artifact_name(item)
    return {
        "artifact": name,
        "attestation": f"{name}.sigstore.json",
        "model-sig": model_signature_name(item),  # <artifact>.model.sig, as beside it
        "record": f"{prefix}.aegis.json",
        "public-key": f"{item.signing_key.name}-v{item.signing_key.version}.pub.pem",
    }


def _attachment(content: bytes, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Content-Length"] = str(len(content))
    return response


def _stored_file(url: str, filename: str, content_type: str) -> FileResponse:
    """A stored object as an attachment, streamed as it is read: a local file as it is (the
    server may send it with sendfile), an S3 object straight from its GET, so a multi-GB
    artifact starts at once and is never copied to disk first. A local file is read only
    inside the artifact directory."""
    stream, size = services.served_store_for(url).open_read(url)
    response = FileResponse(
        stream, as_attachment=True, filename=filename, content_type=content_type
    )
    response["Content-Length"] = str(size)  # a stream that cannot seek does not tell its size
    response.block_size = STREAM_BLOCK_SIZE
    return response


class VersionNotApproved(Exception):
    """A version awaiting approval (its artifact is not downloadable yet: 409) or rejected (its
    stored files were removed: 410)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _refuse_unapproved(item: ModelVersion, kind: str) -> None:
    label = f"{item.model.name} {item.version}"
    if item.status == ModelVersion.Status.AWAITING and kind == "artifact":
        raise VersionNotApproved(
            f"{label} awaits approval by a registry admin: its artifact is not downloadable "
            "until it is approved",
            409,
        )
    if item.status == ModelVersion.Status.REJECTED and kind in ("artifact", "record"):
        reason = f" ({item.status_reason})" if item.status_reason else ""
        raise VersionNotApproved(
            f"{label} was rejected{reason}: its stored files were removed", 410
        )


class VersionYanked(Exception):
    """The artifact of a yanked version, asked for without an auditor's explicit override."""


def yanked_message(item: ModelVersion) -> str:
    reason = f" ({item.status_reason.strip()})" if item.status_reason.strip() else ""
    return (
        f"{item.model.name} {item.version} was yanked{reason}; its artifact is not served. "
        "An auditor or registry admin can still download it by asking explicitly "
        f"(?{ALLOW_YANKED}=1); its provenance files stay available."
    )


def download_response(
    item: ModelVersion, kind: str, *, allow_yanked: bool = False
) -> HttpResponseBase:
    """One of a version's downloads (a key of ``download_names``) as an attachment, with the
    version's status in ``X-Aegis-Version-Status``. Raises VersionNotApproved for the artifact of
    a version awaiting approval or the stored files of a rejected one, VersionYanked for the
    artifact of a
    yanked version unless ``allow_yanked`` (the caller checked who asks), ObjectNotFound or
    StorageError when a stored object cannot be read."""
    if kind == "artifact" and item.status == ModelVersion.Status.YANKED and not allow_yanked:
        raise VersionYanked(yanked_message(item))
    _refuse_unapproved(item, kind)
    response = _download(item, kind)
    response[STATUS_HEADER] = item.status
    return response


def _download(item: ModelVersion, kind: str) -> HttpResponseBase:
    filename = download_names(item)[kind]
    if kind == "attestation":
        return _attachment(attestation_bytes(item), filename, JSON_TYPE)
    if kind == "model-sig":
        return _attachment(model_signature_bytes(item), filename, JSON_TYPE)
    if kind == "public-key":
        return _attachment(public_key_bytes(item), filename, "application/x-pem-file")
    if kind == "record":
        return _attachment(signed_record(item), filename, JSON_TYPE)
    response = _stored_file(item.model_path, filename, "application/gzip")
    # RFC 9530: what the registry says the bytes are, for the client to compare.
    digest = base64.b64encode(bytes.fromhex(item.sha256)).decode()
    response["Repr-Digest"] = f"sha-256=:{digest}:"
    return response


class RecordMismatch(Exception):
    """The aegis.json in storage is not the one the version's provenance statement signs."""


def signed_record(item: ModelVersion) -> bytes:
    """aegis.json as stored beside the tarball, once its sha256 is the one the registered
    provenance statement signs (statements made before records were signed name none: the file
    is served as stored). RecordMismatch otherwise; ObjectNotFound or StorageError when it
    cannot be read."""
    url = record_url(item)
    stream, size = services.served_store_for(url).open_read(url)
    with stream:
        if size > MAX_RECORD_BYTES:
            raise RecordMismatch(f"{url} is {size} bytes, not an import record")
        content = stream.read(MAX_RECORD_BYTES + 1)
    expected = slsa.record_digest(statement_of(item.attestation))
    actual = hashlib.sha256(content).hexdigest()
    if expected is not None and actual != expected:
        raise RecordMismatch(
            f"the aegis.json in storage (sha256 {actual}) is not the import record the "
            f"provenance statement signs (sha256 {expected}); it is not served"
        )
    return content
