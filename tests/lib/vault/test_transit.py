"""TransitClient against a real OpenBao dev server: signing, verification, keys, errors, health."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from aegis_catalog.lib.vault import (
    TransitClient,
    VaultConfig,
    VaultKeyNotFound,
    VaultKeyVersionRetired,
    VaultPermissionDenied,
    VaultSigningError,
    VaultUnreachable,
    VaultUnsupportedKeyType,
)
from tests.lib.vault.support import (
    DEFAULT_KEY_NAME,
    DIGEST,
    MESSAGE,
    closed_port,
    openssl_verifies,
    root_client,
    verify_ecdsa,
)

if TYPE_CHECKING:
    from devservers.openbao import OpenBaoServer


# -- token auth, signing and verification ---------------------------------------------------


def test_it_signs_a_digest_that_cryptography_and_openssl_verify(
    openbao: OpenBaoServer, tmp_path: Path
) -> None:
    client = root_client(openbao)

    signature = client.sign_digest(DEFAULT_KEY_NAME, DIGEST)
    info = client.read_public_keys(DEFAULT_KEY_NAME)
    pem = info.version(signature.key_version).public_key_pem

    assert signature.key_name == DEFAULT_KEY_NAME
    assert signature.key_version == info.latest_version
    assert signature.der[0] == 0x30  # ASN.1 SEQUENCE, not the JWS r||s form
    assert verify_ecdsa(pem, signature.der)
    assert openssl_verifies(tmp_path, pem, signature.der, MESSAGE)
    assert not openssl_verifies(tmp_path, pem, signature.der, MESSAGE + b"tampered")
    assert not verify_ecdsa(pem, signature.der, hashlib.sha256(b"other").digest())


def test_it_asks_vault_to_verify_and_gets_false_for_a_wrong_signature(
    openbao: OpenBaoServer, transit_key: str
) -> None:
    client = root_client(openbao)
    signature = client.sign_digest(transit_key, DIGEST)

    assert client.verify_digest(transit_key, DIGEST, signature.der, signature.key_version)
    other_digest = hashlib.sha256(b"something else").digest()
    assert not client.verify_digest(transit_key, other_digest, signature.der, 1)


def test_it_lists_every_version_after_rotation_and_hides_retired_ones(
    openbao: OpenBaoServer, transit_key: str
) -> None:
    client = root_client(openbao)
    first = client.read_public_keys(transit_key)

    client.rotate_key(transit_key)
    rotated = client.rotate_key(transit_key)

    assert first.type == "ecdsa-p256"
    assert [v.version for v in first.versions] == [1]
    assert rotated.latest_version == 3
    assert [v.version for v in rotated.versions] == [1, 2, 3]
    assert len({v.public_key_pem for v in rotated.versions}) == 3
    assert rotated.version(1).public_key_pem == first.version(1).public_key_pem
    assert all(v.algorithm == "ecdsa-p256" for v in rotated.versions)
    assert all(v.created_at is not None and v.created_at.tzinfo for v in rotated.versions)

    openbao.set_min_decryption_version(transit_key, 2)
    retired = client.read_public_keys(transit_key)

    assert retired.min_decryption_version == 2
    assert [v.version for v in retired.versions] == [2, 3]


def test_it_signs_with_an_explicit_older_key_version(
    openbao: OpenBaoServer, transit_key: str
) -> None:
    client = root_client(openbao)
    openbao.rotate(transit_key)
    info = client.read_public_keys(transit_key)

    old = client.sign_digest(transit_key, DIGEST, key_version=1)
    latest = client.sign_digest(transit_key, DIGEST)

    assert (old.key_version, latest.key_version) == (1, 2)
    assert verify_ecdsa(info.version(1).public_key_pem, old.der)
    assert not verify_ecdsa(info.version(2).public_key_pem, old.der)
    assert verify_ecdsa(info.version(2).public_key_pem, latest.der)


def test_it_reports_retired_and_future_key_versions(
    openbao: OpenBaoServer, transit_key: str
) -> None:
    client = root_client(openbao)
    old = client.sign_digest(transit_key, DIGEST)
    openbao.rotate(transit_key)
    openbao.set_min_decryption_version(transit_key, 2)

    with pytest.raises(VaultKeyVersionRetired, match="too old"):
        client.verify_digest(transit_key, DIGEST, old.der, 1)
    with pytest.raises(VaultKeyVersionRetired):
        client.sign_digest(transit_key, DIGEST, key_version=1)
    with pytest.raises(VaultSigningError, match="higher than the latest key version") as raised:
        client.sign_digest(transit_key, DIGEST, key_version=7)
    assert not isinstance(raised.value, VaultKeyVersionRetired)


def test_it_creates_and_rotates_keys_through_the_client(openbao: OpenBaoServer) -> None:
    client = root_client(openbao)

    created = client.create_key("client-made-key")
    again = client.create_key("client-made-key")
    rotated = client.rotate_key("client-made-key")

    assert created.latest_version == again.latest_version == 1
    assert rotated.latest_version == 2
    with pytest.raises(VaultSigningError, match=r"already exists .* with type ecdsa-p256"):
        client.create_key("client-made-key", "rsa-2048")


def test_it_signs_with_rsa_keys_using_pkcs1v15(openbao: OpenBaoServer, tmp_path: Path) -> None:
    openbao.create_key("rsa-signing-key", "rsa-2048")
    client = root_client(openbao)

    signature = client.sign_digest("rsa-signing-key", DIGEST)
    pem = client.read_public_keys("rsa-signing-key").version(1).public_key_pem
    public_key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(public_key, rsa.RSAPublicKey)

    public_key.verify(signature.der, DIGEST, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    assert openssl_verifies(tmp_path, pem, signature.der, MESSAGE)


def test_it_converts_ed25519_keys_to_pem_and_refuses_to_sign_digests_with_them(
    openbao: OpenBaoServer,
) -> None:
    raw = openbao.create_key("ed-key", "ed25519")["keys"]["1"]["public_key"]
    client = root_client(openbao)

    info = client.read_public_keys("ed-key")
    public_key = serialization.load_pem_public_key(info.version(1).public_key_pem.encode())

    assert info.versions[0].algorithm == "ed25519"
    assert isinstance(public_key, Ed25519PublicKey)
    assert public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) == base64.b64decode(raw)
    with pytest.raises(VaultUnsupportedKeyType, match="'ed-key' is of type ed25519"):
        client.sign_digest("ed-key", DIGEST)


def test_it_refuses_keys_that_have_no_public_half(openbao: OpenBaoServer) -> None:
    openbao.create_key("symmetric-key", "aes256-gcm96")

    with pytest.raises(VaultUnsupportedKeyType, match="aes256-gcm96"):
        root_client(openbao).read_public_keys("symmetric-key")


def test_it_rejects_input_that_is_not_a_sha256_digest(openbao: OpenBaoServer) -> None:
    with pytest.raises(VaultSigningError, match="32 bytes, got 7"):
        root_client(openbao).sign_digest(DEFAULT_KEY_NAME, b"message")


# -- errors --------------------------------------------------------------------------------


def test_it_reports_a_refused_token_without_revealing_it(openbao: OpenBaoServer) -> None:
    wrong_token = "s.not-a-real-token-1234567890"
    client = TransitClient(VaultConfig(addr=openbao.addr, token=wrong_token))

    with pytest.raises(VaultPermissionDenied) as raised:
        client.sign_digest(DEFAULT_KEY_NAME, DIGEST)

    message = str(raised.value)
    assert message == (
        f"Vault at {openbao.addr} refused the token for transit key "
        f"'{DEFAULT_KEY_NAME}': permission denied"
    )
    assert wrong_token not in message
    assert wrong_token not in repr(raised.value.__cause__) + repr(raised.value.__context__)


def test_it_reports_a_token_whose_policy_does_not_cover_signing(
    openbao: OpenBaoServer,
) -> None:
    openbao.write_policy("read-only", 'path "transit/keys/*" { capabilities = ["read"] }')
    client = TransitClient(
        VaultConfig(addr=openbao.addr, token=openbao.create_token(policies=["read-only"]))
    )

    assert client.read_public_keys(DEFAULT_KEY_NAME).latest_version >= 1
    with pytest.raises(VaultPermissionDenied, match="permission denied"):
        client.sign_digest(DEFAULT_KEY_NAME, DIGEST)


def test_it_reports_a_missing_key(openbao: OpenBaoServer) -> None:
    client = root_client(openbao)
    expected = f"transit key 'no-such-key' does not exist at {openbao.addr}/v1/transit"

    with pytest.raises(VaultKeyNotFound) as on_read:
        client.read_public_keys("no-such-key")
    with pytest.raises(VaultKeyNotFound) as on_sign:
        client.sign_digest("no-such-key", DIGEST)

    assert str(on_read.value) == expected
    assert str(on_sign.value) == expected


def test_it_reports_a_key_deleted_after_the_client_first_used_it(
    openbao: OpenBaoServer, transit_key: str
) -> None:
    client = root_client(openbao)
    signature = client.sign_digest(transit_key, DIGEST)
    openbao.api("POST", f"transit/keys/{transit_key}/config", {"deletion_allowed": True})
    openbao.api("DELETE", f"transit/keys/{transit_key}")
    expected = f"transit key '{transit_key}' does not exist at {openbao.addr}/v1/transit"

    # Transit answers 400 (not 404) for sign and verify with a missing key.
    with pytest.raises(VaultKeyNotFound) as on_sign:
        client.sign_digest(transit_key, DIGEST)
    with pytest.raises(VaultKeyNotFound) as on_verify:
        client.verify_digest(transit_key, DIGEST, signature.der, 1)

    assert str(on_sign.value) == expected
    assert str(on_verify.value) == expected


def test_it_reports_a_missing_transit_mount(openbao: OpenBaoServer) -> None:
    client = root_client(openbao, transit_mount="not-mounted")

    with pytest.raises(VaultKeyNotFound, match="no handler for route"):
        client.read_public_keys(DEFAULT_KEY_NAME)


def test_it_reports_an_unreachable_vault(tmp_path: Path) -> None:
    addr = f"http://127.0.0.1:{closed_port()}"
    client = TransitClient(VaultConfig(addr=addr, token="t-secret", timeout=2))

    with pytest.raises(VaultUnreachable) as on_sign:
        client.sign_digest(DEFAULT_KEY_NAME, DIGEST)
    with pytest.raises(VaultUnreachable) as on_health:
        client.health()
    approle = TransitClient(
        VaultConfig(addr=addr, auth_method="approle", role_id="r", secret_id="s", timeout=2)
    )
    with pytest.raises(VaultUnreachable):
        approle.read_public_keys(DEFAULT_KEY_NAME)

    assert str(on_sign.value) == f"Vault at {addr} is unreachable: connection refused"
    assert str(on_health.value) == str(on_sign.value)


# -- health, namespaces, TLS ---------------------------------------------------------------


def test_it_reports_health(openbao: OpenBaoServer) -> None:
    health = TransitClient(VaultConfig(addr=openbao.addr)).health()

    assert health["address"] == openbao.addr
    assert health["initialized"] is True
    assert health["sealed"] is False
    assert health["version"].startswith("2.")


def test_it_reports_a_sealed_vault(fresh_openbao: OpenBaoServer) -> None:
    client = root_client(fresh_openbao)
    client.read_public_keys(DEFAULT_KEY_NAME)
    fresh_openbao.api("PUT", "sys/seal")

    health = client.health()

    assert (health["initialized"], health["sealed"]) == (True, True)
    with pytest.raises(VaultUnreachable, match=r"^Vault at http://127\.0\.0\.1:\d+ is sealed"):
        client.sign_digest(DEFAULT_KEY_NAME, DIGEST)


def test_it_sends_the_namespace_to_vault(openbao: OpenBaoServer) -> None:
    openbao.create_namespace("team-a")
    openbao.enable_transit(namespace="team-a")
    openbao.create_key("team-key", namespace="team-a")
    in_namespace = root_client(openbao, namespace="team-a")
    at_root = root_client(openbao)

    signature = in_namespace.sign_digest("team-key", DIGEST)
    info = in_namespace.read_public_keys("team-key")

    assert verify_ecdsa(info.version(1).public_key_pem, signature.der)
    assert info.version(1).public_key_pem != (
        at_root.read_public_keys(DEFAULT_KEY_NAME).version(1).public_key_pem
    )
    with pytest.raises(VaultKeyNotFound):
        at_root.read_public_keys("team-key")
    with pytest.raises(VaultKeyNotFound, match="namespace 'no-such-team'"):
        root_client(openbao, namespace="no-such-team").read_public_keys("team-key")
    # sys/health refuses namespaces; the client leaves the header off for it.
    assert in_namespace.health()["sealed"] is False


def test_it_trusts_vault_over_tls_only_with_the_configured_ca_bundle(
    openbao_tls: OpenBaoServer,
) -> None:
    server = openbao_tls
    trusting = TransitClient(
        VaultConfig(addr=server.addr, token=server.root_token, ca_bundle=str(server.ca_bundle))
    )
    untrusting = TransitClient(VaultConfig(addr=server.addr, token=server.root_token))

    signature = trusting.sign_digest(DEFAULT_KEY_NAME, DIGEST)
    pem = trusting.read_public_keys(DEFAULT_KEY_NAME).version(1).public_key_pem

    assert server.addr.startswith("https://")
    assert verify_ecdsa(pem, signature.der)
    with pytest.raises(VaultUnreachable, match="TLS verification failed"):
        untrusting.sign_digest(DEFAULT_KEY_NAME, DIGEST)
