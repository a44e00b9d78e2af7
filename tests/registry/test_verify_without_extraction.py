"""``verify_model_artifact(..., extract=False)``: the signed digest, one read, no extraction."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import verify
from registry.verify import verify_model_artifact

pytestmark = pytest.mark.django_db


def test_it_checks_signature_key_digest_and_yank_without_extracting(imported, tmp_path):
    path = Path(imported.model_path.removeprefix("file://"))

    result = verify_model_artifact(str(path), extract=False, extract_to=tmp_path / "out")

    assert result.check_names == [
        "fetch", "attestation_signature", "key_not_revoked", "digest", "not_yanked",
    ]  # fmt: skip
    assert result.sha256 == imported.sha256
    assert not (tmp_path / "out").exists()


def test_it_still_refuses_a_tampered_tarball_without_extracting(imported):
    path = Path(imported.model_path.removeprefix("file://"))
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))

    with pytest.raises(verify.DigestMismatch):
        verify_model_artifact(str(path), extract=False)
    with pytest.raises(TypeError, match="needs the extraction"):
        verify_model_artifact(str(path), extract=False, load=True)
