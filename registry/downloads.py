"""A version's downloads (artifact, attestation, model.sig, aegis.json, public key) as
attachments, the same for the provenance page and the API."""

from __future__ import annotations

import base64

from django.http import (
    FileResponse,
    HttpResponse,
)
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header

from aegis_catalog import services
from aegis_catalog.lib.storage import ObjectNotFound, StorageError, parse_url
from registry.models import ModelVersion
from registry.provenance import (
    artifact_name,
    attestation_bytes,
    model_signature_bytes,
    public_key_bytes,
    record_url,
)

JSON_TYPE = "application/json"
STREAM_BLOCK_SIZE = 1024 * 1024  # read from S3 per chunk of a streamed download


def download_names(item: ModelVersion) -> dict[str, str]:
    """File names offered for each download: unique per version, so several can sit side by
    side in one folder."""
    prefix = f"{item.model.name}-{item.version}"
    name = artifact_name(item)
    return {
        "artifact": name,
        "attestation": f"{name}.sigstore.json",
        "model-sig": f"{prefix}.model.sig",
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
    artifact starts at once and is never copied to disk first."""
    parsed = parse_url(url)
    if parsed.scheme == "file":
        assert parsed.path is not None
        try:
            handle = parsed.path.open("rb")
        except FileNotFoundError as error:
            raise ObjectNotFound(f"{url} does not exist") from error
        except OSError as error:
            raise StorageError(f"{url} cannot be read: {error.strerror or error}") from error
        return FileResponse(
            handle, as_attachment=True, filename=filename, content_type=content_type
        )
    stream, size = services.store_for(url).open_read(url)
    response = FileResponse(
        stream, as_attachment=True, filename=filename, content_type=content_type
    )
    response["Content-Length"] = str(size)  # a stream that cannot seek does not tell its size
    response.block_size = STREAM_BLOCK_SIZE
    return response


def download_response(item: ModelVersion, kind: str) -> HttpResponseBase:
    """One of a version's downloads (a key of ``download_names``) as an attachment. Raises
    ObjectNotFound or StorageError when a stored object cannot be read."""
    filename = download_names(item)[kind]
    if kind == "attestation":
        return _attachment(attestation_bytes(item), filename, JSON_TYPE)
    if kind == "model-sig":
        return _attachment(model_signature_bytes(item), filename, JSON_TYPE)
    if kind == "public-key":
        return _attachment(public_key_bytes(item), filename, "application/x-pem-file")
    url, content_type = (
        (item.model_path, "application/gzip")
        if kind == "artifact"
        else (record_url(item), JSON_TYPE)
    )
    response = _stored_file(url, filename, content_type)
    if kind == "artifact":
        # RFC 9530: what the registry says the bytes are, for the client to compare.
        digest = base64.b64encode(bytes.fromhex(item.sha256)).decode()
        response["Repr-Digest"] = f"sha-256=:{digest}:"
    return response
