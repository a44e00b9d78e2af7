"""Repos that need trust_remote_code: found, recorded with digests, and judged by the policy."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from urllib.parse import urlparse

import pytest

from devservers.hub_double import safetensors_bytes
from imports import actions
from imports.jobs import run_import
from imports.models import ImportRequest
from imports.scanners.remote_code import RemoteCode, find_remote_code
from registry.actions import grant_policy_override
from registry.models import ImportPolicy, ModelVersion
from tests.factories import imported

pytestmark = pytest.mark.django_db

MODELING = "import os\n\nclass XModel:\n    def __init__(self):\n        os.system('id')\n"
CONFIG = {"model_type": "x", "auto_map": {"AutoModel": "modeling_x.XModel"}}


@pytest.fixture
def remote_repo(aegis, fresh_hub_double):
    fresh_hub_double.add_repo(
        "acme/remote-x",
        {
            "config.json": json.dumps(CONFIG),
            "modeling_x.py": MODELING,
            "model.safetensors": safetensors_bytes(1),
        },
        card_data={"license": "mit"},
    )
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    return fresh_hub_double


def set_remote_code_rule(answer: str) -> None:
    policy = ImportPolicy.current()
    policy.remote_code = answer
    policy.save()


def stored_record(request: ImportRequest) -> dict:
    return json.loads(Path(urlparse(request.result["record_url"]).path).read_bytes())


def stored_files(environment) -> list[Path]:
    root = Path(environment.settings.AEGIS_ARTIFACT_ROOT)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def test_it_finds_python_files_and_every_auto_map_form(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "auto_map": {
            "AutoConfig": "configuration_x.XConfig",
            "AutoTokenizer": ["tokenization_x.XTokenizer", None],
            "AutoModel": "other/repo--modeling_x.XModel",
        }
    }))  # fmt: skip
    broken = tmp_path / "tokenizer_config.json"
    broken.write_text("{not json")
    files = {"config.json": config, "tokenizer_config.json": broken, "src/Helper.PY": config}

    found = find_remote_code(files, {"src/Helper.PY": "ab" * 32})

    assert found is not None
    assert found.python_files == (("src/Helper.PY", "ab" * 32),)
    assert found.auto_map == (
        ("config.json", "AutoConfig", "configuration_x.XConfig"),
        ("config.json", "AutoModel", "other/repo--modeling_x.XModel"),
        ("config.json", "AutoTokenizer", "tokenization_x.XTokenizer"),
    )
    assert "other/repo--modeling_x.XModel" in found.describe()
    assert RemoteCode.from_json(found.to_json()) == found
    assert find_remote_code({"config.json": broken}, {}) is None


def test_by_default_it_imports_with_a_warning_and_records_the_code_with_its_digest(remote_repo):
    request = imported("acme/remote-x")

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    record = stored_record(request)
    assert record["scan"]["remote_code"]["python_files"] == [
        {"path": "modeling_x.py", "sha256": hashlib.sha256(MODELING.encode()).hexdigest()}
    ]
    assert record["scan"]["remote_code"]["auto_map"] == [
        {"config": "config.json", "class": "AutoModel", "code": "modeling_x.XModel"}
    ]
    [finding] = [item for item in record["policy"]["findings"] if item["rule"] == "remote_code"]
    assert finding["outcome"] == "warned"
    assert "modeling_x.py" in finding["reason"] and "trust_remote_code" in finding["reason"]
    version = ModelVersion.objects.get()
    statement = json.loads(base64.b64decode(version.attestation["dsseEnvelope"]["payload"]))
    internal = statement["predicate"]["buildDefinition"]["internalParameters"]
    assert "remote_code" in {item["rule"] for item in internal["policy"]["findings"]}


def test_a_blocking_rule_stops_the_import_and_stores_nothing_until_overridden(
    remote_repo, aegis, rosa
):
    set_remote_code_rule("block")

    request = imported("acme/remote-x")

    assert request.status == ImportRequest.Status.FAILED
    assert request.error_code == "policy:remote_code"
    assert "modeling_x.py" in request.error and "AutoModel" in request.error
    assert not ModelVersion.objects.exists()
    assert stored_files(aegis) == []

    grant_policy_override(request, reason="reviewed modeling_x.py", actor="rosa", user=rosa)
    actions.retry_import(request, actor="alice", enqueue=False)
    run_import(request.pk)
    request.refresh_from_db()
    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    assert stored_record(request)["policy"]["overrides"] == [
        {"rule": "remote_code", "reason": "reviewed modeling_x.py", "granted_by": "rosa"}
    ]


def test_allowed_remote_code_is_still_recorded_but_not_a_finding(remote_repo):
    set_remote_code_rule("allow")

    request = imported("acme/remote-x")

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    record = stored_record(request)
    assert record["scan"]["remote_code"]["python_files"][0]["path"] == "modeling_x.py"
    assert "remote_code" not in {item["rule"] for item in record["policy"]["findings"]}


def test_the_hub_model_page_warns_about_python_files_as_the_policy_would(remote_repo, bob_client):
    html = bob_client.get("/hub/acme/remote-x/").content.decode()
    assert "Import policy warning (remote_code)" in html
    assert "1 Python file(s): modeling_x.py" in html

    set_remote_code_rule("block")
    html = bob_client.get("/hub/acme/remote-x/").content.decode()
    assert "The import policy blocks this model (remote_code)" in html


def test_python_source_is_not_taken_for_a_pickle_but_a_pickle_named_py_is(tmp_path):
    from imports.pipeline.scan import scan_one

    source = tmp_path / "modeling_x.py"
    source.write_text(MODELING)  # "import os" reads as a protocol-0 INST opcode
    disguised = tmp_path / "weights.py"
    disguised.write_bytes(b"cos\nsystem\n(S'id'\ntR.")

    assert scan_one(source, "modeling_x.py", "") is None
    verdict = scan_one(disguised, "weights.py", "")
    assert verdict is not None and verdict.verdict == "dangerous"
