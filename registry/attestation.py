"""Signed statements in standard formats: DSSE envelopes inside Sigstore bundles.

Two statements are signed for every import:

* an OpenSSF model-signing statement over the files of ``model/`` (written as
  ``model.sig``), which the ``model_signing`` CLI verifies with
  ``model_signing verify key <dir>/model --signature model.sig --public_key key.pem``;
* an in-toto SLSA v1 provenance statement whose subject is the artifact tarball (built by
  ``registry.slsa``).

No private key is handled here. A *signer* is any callable that receives the
SHA-256 digest of the DSSE pre-authentication encoding (PAE) and returns a DER
signature (Vault Transit with ``prehashed=true``). Verification works offline
from a PEM public key. This module is plain Python (no Django, no network).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
MODEL_SIGNING_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
SLSA_PROVENANCE_PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
HF_IMPORT_BUILD_TYPE = "https://aegis-catalog.dev/hf-import/v1"

# What `model_signing` (1.1.1) ignores when it hashes a model directory with its
# default `--ignore-git-paths`: these names, relative to the model directory,
# and everything below them. Hugging Face repositories always carry
# `.gitattributes`, so this matters for every import.
MODEL_SIGNING_GIT_PATHS: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class AttestationError(Exception):
    """Base class of every error raised by this module."""


class InvalidStatementInput(AttestationError):
    """The values given to build a statement are not usable (bad path, digest, time)."""


class MalformedBundle(AttestationError):
    """The bundle or its statement does not have the expected shape."""


class MalformedPublicKey(AttestationError):
    """The public key is not a PEM SubjectPublicKeyInfo of a supported type."""


class BadSignature(AttestationError):
    """The signature does not verify with the given public key."""


class KeyMismatch(BadSignature):
    """The bundle names (by hint) a different public key than the one given."""


@dataclass(frozen=True)
class SignedDigest:
    """What a signer returns: a DER signature and the key version that made it."""

    der: bytes
    key_name: str
    key_version: int


Signer = Callable[[bytes], SignedDigest]


@dataclass(frozen=True)
class SignedStatement:
    """A signed bundle plus which key (name, version, fingerprint) signed it."""

    bundle: dict[str, Any]
    key_name: str
    key_version: int
    key_fingerprint: str


# --------------------------------------------------------------------------- DSSE


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``.

    Lengths are byte lengths in ASCII decimal (see the DSSE protocol).
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def statement_payload(statement: Mapping[str, Any]) -> bytes:
    """The deterministic JSON bytes signed for a statement (sorted keys, compact)."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("utf-8")


# ----------------------------------------------------------------- model signing


def check_relative_path(path: str) -> None:
    if not path or path.startswith("/") or "\x00" in path or "\\" in path:
        raise InvalidStatementInput(f"file path {path!r} must be relative and use '/' separators")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidStatementInput(
            f"file path {path!r} must not contain empty, '.' or '..' components"
        )


def check_sha256(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SHA256_HEX.match(value):
        raise InvalidStatementInput(f"{what} must be 64 lowercase hex characters, got {value!r}")
    return value


def is_ignored_by_model_signing(
    path: str, ignore_paths: Iterable[str] = MODEL_SIGNING_GIT_PATHS
) -> bool:
    """Whether ``model_signing`` skips ``path`` (relative to the model dir) when hashing.

    A path is skipped when it equals an ignore path or lies below one, compared
    component by component like ``pathlib.Path.is_relative_to``.
    """
    parts = path.split("/")
    for ignored in ignore_paths:
        ignored_parts = ignored.strip("/").split("/")
        if parts[: len(ignored_parts)] == ignored_parts:
            return True
    return False


def _model_signing_sort_key(path: str) -> tuple[str, ...]:
    # model_signing sorts `PurePosixPath`s, which compare component by component
    # ("a/b" sorts before "a-b"), not as plain strings.
    return tuple(path.split("/"))


def model_signing_statement(
    files: Sequence[tuple[str, str]],
    *,
    subject_name: str = "model",
    ignore_paths: Iterable[str] = MODEL_SIGNING_GIT_PATHS,
) -> dict[str, Any]:
    """Build the OpenSSF model-signing (v1.0 predicate) in-toto statement for a model dir.

    ``files`` are ``(path, sha256 hex)`` pairs, paths relative to the model
    directory with ``/`` separators.

    Git housekeeping files are left out of the manifest: ``model_signing``
    1.1.1's verifier (CLI default ``--ignore-git-paths``) never hashes
    ``.git``, ``.gitattributes``, ``.github`` or ``.gitignore`` at the top of the
    model dir, and it *also* skips every path recorded in
    ``predicate.serialization.ignore_paths`` of the signature. A manifest that
    listed ``.gitattributes`` would therefore fail verification with "Missing
    files". So every file under the git paths or under ``ignore_paths`` is
    excluded from ``resources``, and the union of both lists is recorded
    (sorted) in ``ignore_paths``. Such files remain covered by the artifact
    tarball digest and the provenance statement, just not by ``model.sig``.

    Resources are sorted like the library sorts them (path components), and the
    subject digest is SHA-256 over the concatenated raw per-file digests in that
    order, so the statement equals what ``model_signing.hashing`` computes.
    """
    recorded = sorted({p.strip("/") for p in (*MODEL_SIGNING_GIT_PATHS, *ignore_paths)})
    for ignored in recorded:
        check_relative_path(ignored)
    seen: dict[str, str] = {}
    for path, digest in files:
        check_relative_path(path)
        check_sha256(digest, f"sha256 of {path!r}")
        if path in seen:
            raise InvalidStatementInput(f"file path {path!r} is listed twice")
        seen[path] = digest
    kept = sorted(
        (p for p in seen if not is_ignored_by_model_signing(p, recorded)),
        key=_model_signing_sort_key,
    )
    root = hashlib.sha256()
    resources = []
    for path in kept:
        root.update(bytes.fromhex(seen[path]))
        resources.append({"name": path, "algorithm": "sha256", "digest": seen[path]})
    return {
        "_type": IN_TOTO_STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": root.hexdigest()}}],
        "predicateType": MODEL_SIGNING_PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": recorded,
            },
            "resources": resources,
        },
    }


def statement_subject_digest(statement: Mapping[str, Any]) -> str:
    """The sha256 hex of the statement's single subject."""
    try:
        subjects = statement["subject"]
        if not isinstance(subjects, list) or len(subjects) != 1:
            raise MalformedBundle(f"statement must have exactly one subject, got {subjects!r}")
        digest = subjects[0]["digest"]["sha256"]
    except (KeyError, TypeError) as error:
        raise MalformedBundle(f"statement subject has no sha256 digest ({error})") from error
    if not isinstance(digest, str) or not _SHA256_HEX.match(digest):
        raise MalformedBundle(f"statement subject digest {digest!r} is not a sha256 hex")
    return digest


def statement_files(statement: Mapping[str, Any]) -> dict[str, str]:
    """``path -> sha256`` of a model-signing statement, after checking its subject digest."""
    if statement.get("predicateType") != MODEL_SIGNING_PREDICATE_TYPE:
        raise MalformedBundle(
            f"expected predicateType {MODEL_SIGNING_PREDICATE_TYPE}, "
            f"got {statement.get('predicateType')!r}"
        )
    try:
        resources = statement["predicate"]["resources"]
        serialization_method = statement["predicate"]["serialization"]["method"]
    except (KeyError, TypeError) as error:
        raise MalformedBundle(f"model-signing predicate is incomplete ({error})") from error
    if serialization_method != "files" or not isinstance(resources, list):
        raise MalformedBundle(
            f"only per-file model-signing manifests are supported, got {serialization_method!r}"
        )
    files: dict[str, str] = {}
    root = hashlib.sha256()
    for resource in resources:
        if not isinstance(resource, dict) or resource.get("algorithm") != "sha256":
            raise MalformedBundle(f"resource {resource!r} is not a sha256 resource descriptor")
        name, digest = resource.get("name"), resource.get("digest")
        if not isinstance(name, str) or not isinstance(digest, str):
            raise MalformedBundle(f"resource {resource!r} has no usable name and digest")
        if not _SHA256_HEX.match(digest):
            raise MalformedBundle(f"resource {resource!r} has no usable name and digest")
        if name in files:
            raise MalformedBundle(f"resource {name!r} is listed twice")
        files[name] = digest
        root.update(bytes.fromhex(digest))
    if root.hexdigest() != statement_subject_digest(statement):
        raise MalformedBundle(
            "model-signing statement is inconsistent: its subject digest does not match "
            "the listed resources"
        )
    return files


# ---------------------------------------------------------------- keys, bundles

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def _load_public_key(pem: str) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode("utf-8"))
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise MalformedPublicKey(
            f"public key is not a readable PEM public key ({error})"
        ) from error
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise MalformedPublicKey(
            f"public key type {type(key).__name__} is not supported (use ECDSA, RSA or Ed25519)"
        )
    return key


def _fingerprint(key: PublicKey) -> str:
    spki_pem = key.public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    return hashlib.sha256(spki_pem).hexdigest()


def public_key_fingerprint(pem: str) -> str:
    """Hex sha256 of the key's SubjectPublicKeyInfo PEM as ``cryptography`` writes it.

    This is the bundle's ``verificationMaterial.publicKey.hint``, computed as
    ``model_signing`` computes it, so the PEM's own line wrapping does not matter.
    """
    return _fingerprint(_load_public_key(pem))


def _verify_signature(key: PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            try:
                key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
                key.verify(signature, message, pss, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def sign_statement_with_details(
    statement: Mapping[str, Any], signer: Signer, public_key_pem: str
) -> SignedStatement:
    """Sign ``statement`` and also say which key version signed it.

    The signer receives sha256(PAE(payload)). The returned signature is checked
    against ``public_key_pem`` before anything is returned, so a signer that
    used another key (or key version) is caught here, not by a later verifier.
    """
    key = _load_public_key(public_key_pem)
    payload = statement_payload(statement)
    pae_bytes = pae(IN_TOTO_PAYLOAD_TYPE, payload)
    signed = signer(hashlib.sha256(pae_bytes).digest())
    if not _verify_signature(key, signed.der, pae_bytes):
        raise BadSignature(
            f"the signature from key {signed.key_name!r} version {signed.key_version} does not "
            "verify with the public key given for it; refresh the trusted keys from Vault"
        )
    fingerprint = _fingerprint(key)
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": fingerprint}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signed.der).decode("ascii"), "keyid": ""}],
        },
    }
    return SignedStatement(
        bundle=bundle,
        key_name=signed.key_name,
        key_version=signed.key_version,
        key_fingerprint=fingerprint,
    )


def sign_statement(
    statement: Mapping[str, Any], signer: Signer, public_key_pem: str
) -> dict[str, Any]:
    """Sign ``statement`` into a Sigstore bundle (v0.3, DSSE envelope, public-key hint)."""
    return sign_statement_with_details(statement, signer, public_key_pem).bundle


def bundle_to_bytes(bundle: Mapping[str, Any]) -> bytes:
    """Stable JSON bytes of a bundle: sorted keys, 2-space indent, trailing newline."""
    return (json.dumps(bundle, sort_keys=True, indent=2) + "\n").encode("utf-8")


def _b64decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedBundle(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise MalformedBundle(f"{what} is not valid base64 ({error})") from error


def _check_bundle_shape(bundle: Any) -> None:
    if not isinstance(bundle, dict):
        raise MalformedBundle("bundle must be a JSON object")
    if bundle.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise MalformedBundle(
            f"bundle mediaType must be {BUNDLE_MEDIA_TYPE}, got {bundle.get('mediaType')!r}"
        )
    material = bundle.get("verificationMaterial")
    if not isinstance(material, dict):
        raise MalformedBundle("bundle has no verificationMaterial object")
    public_key = material.get("publicKey")
    if public_key is not None and (
        not isinstance(public_key, dict) or not isinstance(public_key.get("hint", ""), str | None)
    ):
        raise MalformedBundle("bundle verificationMaterial.publicKey must hold a string hint")
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise MalformedBundle("bundle has no dsseEnvelope object")
    if not isinstance(envelope.get("payloadType"), str):
        raise MalformedBundle("bundle dsseEnvelope has no payloadType")
    _b64decode(envelope.get("payload"), "dsseEnvelope.payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise MalformedBundle("bundle dsseEnvelope has no signatures")
    for index, entry in enumerate(signatures):
        if not isinstance(entry, dict):
            raise MalformedBundle(f"dsseEnvelope.signatures[{index}] must be an object")
        _b64decode(entry.get("sig"), f"dsseEnvelope.signatures[{index}].sig")


def statement_of(bundle: Any) -> dict[str, Any]:
    """The statement a stored bundle carries, decoded (not verified); {} when it has none."""
    try:
        loaded = load_bundle(bundle_to_bytes(bundle or {}))
        statement = json.loads(base64.b64decode(loaded["dsseEnvelope"]["payload"], validate=True))
    except (AttestationError, binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        return {}
    return statement if isinstance(statement, dict) else {}


def load_bundle(data: bytes) -> dict[str, Any]:
    """Parse and shape-check bundle JSON bytes (no signature check)."""
    try:
        bundle = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise MalformedBundle(f"bundle is not valid JSON ({error})") from error
    _check_bundle_shape(bundle)
    return bundle


def bundle_key_hint(bundle: Mapping[str, Any]) -> str | None:
    """The public-key hint (fingerprint) recorded in the bundle, if any."""
    material = bundle.get("verificationMaterial")
    if not isinstance(material, dict) or not isinstance(material.get("publicKey"), dict):
        return None
    hint = material["publicKey"].get("hint")
    return hint if isinstance(hint, str) and hint else None


def pae_bytes_of_bundle(bundle: Mapping[str, Any]) -> bytes:
    """The exact bytes the bundle's signature covers (DSSE PAE of its payload)."""
    _check_bundle_shape(bundle)
    envelope = bundle["dsseEnvelope"]
    return pae(envelope["payloadType"], _b64decode(envelope["payload"], "dsseEnvelope.payload"))


def signature_der_of_bundle(bundle: Mapping[str, Any]) -> bytes:
    """The first DSSE signature of the bundle, as raw DER bytes."""
    _check_bundle_shape(bundle)
    return _b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"], "signature")


def verify_bundle(bundle: Mapping[str, Any], public_key_pem: str) -> dict[str, Any]:
    """Verify a bundle's DSSE signature with ``public_key_pem``; return the decoded statement.

    Raises ``KeyMismatch`` when the bundle's hint names another key,
    ``BadSignature`` when no signature verifies over the PAE, and
    ``MalformedBundle`` for shape errors (checked before any signature).
    """
    _check_bundle_shape(bundle)
    key = _load_public_key(public_key_pem)
    fingerprint = _fingerprint(key)
    hint = bundle_key_hint(bundle)
    if hint is not None and hint != fingerprint:
        raise KeyMismatch(
            f"bundle was signed by the key with fingerprint {hint}, "
            f"not by the given key {fingerprint}"
        )
    envelope = bundle["dsseEnvelope"]
    if envelope["payloadType"] != IN_TOTO_PAYLOAD_TYPE:
        raise MalformedBundle(
            f"payloadType must be {IN_TOTO_PAYLOAD_TYPE}, got {envelope['payloadType']!r}"
        )
    payload = _b64decode(envelope["payload"], "dsseEnvelope.payload")
    pae_bytes = pae(envelope["payloadType"], payload)
    signatures = [_b64decode(entry["sig"], "signature") for entry in envelope["signatures"]]
    if not any(_verify_signature(key, signature, pae_bytes) for signature in signatures):
        raise BadSignature(
            f"the bundle's signature does not verify with the key {fingerprint}: "
            "the statement or signature was altered"
        )
    try:
        statement = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as error:
        raise MalformedBundle(f"signed payload is not JSON ({error})") from error
    if not isinstance(statement, dict) or statement.get("_type") != IN_TOTO_STATEMENT_TYPE:
        raise MalformedBundle(f"signed payload is not an in-toto {IN_TOTO_STATEMENT_TYPE}")
    return statement
