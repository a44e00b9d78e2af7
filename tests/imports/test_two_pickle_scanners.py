"""Two pickle scanners (picklescan, fickling): a callable either one calls dangerous is dangerous;
every scanner's findings reach aegis.json, the signed statement and the version page."""

from __future__ import annotations

import base64
import io
import json
import pickle
import tracemalloc
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from devservers.hub_double import safetensors_bytes
from imports.models import ImportRequest
from imports.scanners.pickles import scan_file, scan_unproven
from imports.scanners.second_pickle import fickling_opinion
from registry.models import ModelVersion
from tests.factories import imported

pytestmark = pytest.mark.django_db


def calls(module: str, name: str, *, before: bytes = b"") -> bytes:
    """A protocol-2 pickle that calls module.name("a") (``before``: opcodes run first)."""
    return b"\x80\x02" + before + f"c{module}\n{name}\n".encode() + b"X\x01\x00\x00\x00a\x85R."


def torch_zip(data_pkl: bytes) -> bytes:
    """A checkpoint laid out as torch.save's zip format writes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/data/0", bytes(16))
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


# A nested-pickle attack: torch.storage._load_from_bytes unpickles its argument with torch.load.
# picklescan does not list it (an unknown global: suspicious, a warning under the default
# policy); fickling does.
NESTED = calls("torch.storage", "_load_from_bytes")


def test_a_callable_only_the_second_scanner_knows_makes_the_file_dangerous(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(torch_zip(NESTED))

    verdict = scan_file(path, "pytorch_model.bin", detected_by="zip with pickle")

    picklescan, fickling = verdict.opinions
    assert picklescan[0].startswith("picklescan ") and picklescan[1] == "suspicious"
    assert fickling[0].startswith("fickling ") and fickling[1] == "dangerous"
    assert verdict.verdict == "dangerous"
    assert "torch.storage._load_from_bytes" in verdict.globals
    assert "fickling:" in verdict.detail and "picklescan: suspicious" in verdict.detail


def test_both_scanners_agree_on_the_globals_of_real_checkpoints(tmp_path):
    usual = (
        b"\x80\x02ccollections\nOrderedDict\n)R"  # an empty state dict
        b"ctorch._utils\n_rebuild_tensor_v2\n0"
        b"ctorch\nFloatStorage\n0."
    )
    path = tmp_path / "model.pt"
    path.write_bytes(torch_zip(usual))
    verdict = scan_file(path, "model.pt", detected_by="zip with pickle")
    assert verdict.verdict == "safe"
    assert [opinion[1] for opinion in verdict.opinions] == ["safe", "safe"]


def test_either_scanner_calling_it_dangerous_is_enough(tmp_path):
    path = tmp_path / "p.pkl"
    path.write_bytes(calls("os", "system"))
    verdict = scan_unproven(path, "p.pkl")
    assert verdict is not None and verdict.verdict == "dangerous"
    assert [opinion[1] for opinion in verdict.opinions] == ["dangerous", "dangerous"]


def test_fickling_is_given_the_pickle_without_its_bulk_bytes(tmp_path):
    # 64 MiB of tensor bytes inside the pickle, then os.system: found, without holding them.
    size = 64 * 1024 * 1024
    bulk = b"B" + size.to_bytes(4, "little") + bytes(size) + b"0"  # BINBYTES, then POP
    path = tmp_path / "big.pkl"
    path.write_bytes(calls("os", "system", before=bulk))
    tracemalloc.start()
    try:
        opinion = fickling_opinion(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert opinion.verdict == "dangerous" and opinion.callables == ("os.system",)
    assert peak < 8 * 1024 * 1024


def test_what_is_not_pickle_after_the_pickles_ends_the_reading_not_the_verdict(tmp_path):
    legacy = tmp_path / "legacy.bin"  # torch.save's legacy layout: pickles, then raw storage
    legacy.write_bytes(
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + (16).to_bytes(8, "little")
        + b"\xff" * 16
    )
    assert fickling_opinion(legacy).verdict == "safe"
    plain = tmp_path / "a.npy"
    np.save(plain, np.arange(10))  # array bytes: no pickle
    assert fickling_opinion(plain).verdict == "safe"
    objects = tmp_path / "o.npy"
    np.save(objects, np.array([print], dtype=object), allow_pickle=True)
    assert fickling_opinion(objects).verdict == "dangerous"  # builtins.print, called by name
    garbage = tmp_path / "g.pkl"
    garbage.write_bytes(b"\x80\x02garbage")
    assert fickling_opinion(garbage).verdict == "dangerous"


@pytest.fixture
def repos(aegis, fresh_hub_double):
    fresh_hub_double.add_repo(
        "acme/nested-pickle",
        {"pytorch_model.bin": torch_zip(NESTED), "config.json": "{}"},
        card_data={"license": "mit"},
    )
    fresh_hub_double.add_repo(
        "acme/mixed",
        {
            "config.json": json.dumps({"auto_map": {"AutoModel": "modeling_x.XModel"}}),
            "modeling_x.py": "class XModel:\n    pass\n",
            "model.safetensors": safetensors_bytes(1),
            "extra.safetensors": b"\x08" + bytes(7) + b"not json",
        },
        card_data={"license": "mit"},
    )
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    return fresh_hub_double


def test_a_pickle_one_scanner_misses_blocks_the_import_and_nothing_is_stored(repos, aegis):
    request = imported("acme/nested-pickle")

    assert request.status == ImportRequest.Status.FAILED
    assert request.error_code == "policy:dangerous_pickle"
    assert "pytorch_model.bin" in request.error
    assert "torch.storage._load_from_bytes" in request.error
    assert not ModelVersion.objects.exists()
    root = Path(aegis.settings.AEGIS_ARTIFACT_ROOT)
    assert not root.exists() or not [path for path in root.rglob("*") if path.is_file()]


def test_findings_reach_aegis_json_the_statement_and_the_version_page(repos, alice_client):
    request = imported("acme/mixed")
    assert request.status == ImportRequest.Status.SUCCEEDED, request.error

    record = json.loads(Path(urlparse(request.result["record_url"]).path).read_bytes())
    findings = {(item["path"], item["rule"]): item for item in record["scan"]["findings"]}
    assert set(findings) == {
        ("config.json", "remote_code"),
        ("modeling_x.py", "remote_code"),
        ("extra.safetensors", "malformed_weights"),
    }
    malformed = findings["extra.safetensors", "malformed_weights"]
    assert malformed["severity"] == "warning" and malformed["scanner"].startswith("aegis ")
    assert "header" in malformed["evidence"]
    assert (
        record["scan"]["scanner"].startswith("picklescan ")
        and "fickling " in (record["scan"]["scanner"])
    )

    formats = {(item["path"], item["verdict"]) for item in record["scan"]["formats"]}
    assert formats == {("model.safetensors", "safe"), ("extra.safetensors", "warning")}

    version = ModelVersion.objects.get()
    statement = json.loads(base64.b64decode(version.attestation["dsseEnvelope"]["payload"]))
    byproducts = statement["predicate"]["runDetails"]["byproducts"]
    sha256 = {item["path"]: item["sha256"] for item in version.manifest}
    signed = {
        (item["annotations"]["rule"], item["digest"]["sha256"]): item["annotations"]
        for item in byproducts
        if item["name"].startswith("scan-finding/")
    }
    assert set(signed) == {
        ("remote_code", sha256["config.json"]),
        ("remote_code", sha256["modeling_x.py"]),
        ("malformed_weights", sha256["extra.safetensors"]),
    }
    assert (
        signed["malformed_weights", sha256["extra.safetensors"]]["scanner"]
        == (malformed["scanner"])
    )

    html = alice_client.get(version.get_absolute_url()).content.decode()
    assert 'data-path="extra.safetensors" data-verdict="warning"' in html
    assert 'data-path="model.safetensors" data-verdict="safe"' in html
    assert "<code>malformed_weights</code>" in html and malformed["scanner"] in html
