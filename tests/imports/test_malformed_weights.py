"""A .safetensors file its own loader would refuse is named, and the policy decides."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from imports.models import ImportRequest
from imports.scanners.safetensors import safetensors_problem
from registry.models import ImportPolicy, ModelVersion
from tests.factories import imported

pytestmark = pytest.mark.django_db


def safetensors_with(tensors: dict[str, dict], data: bytes) -> bytes:
    header = json.dumps(tensors).encode()
    return struct.pack("<Q", len(header)) + header + data


# Two F32 tensors of 4 elements sharing the same 16 bytes, then 16 bytes nobody owns.
OVERLAPPING = safetensors_with(
    {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
    },
    bytes(32),
)


@pytest.fixture
def broken_repo(aegis, fresh_hub_double):
    fresh_hub_double.add_repo(
        "acme/overlapping",
        {"config.json": "{}", "model.safetensors": OVERLAPPING},
        card_data={"license": "mit"},
    )
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    return fresh_hub_double


def one_f32_tensor(shape: list[int]) -> bytes:
    return safetensors_with(
        {"a": {"dtype": "F32", "shape": shape, "data_offsets": [0, 16]}}, bytes(16)
    )


def test_it_names_what_is_wrong_with_a_safetensors_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(OVERLAPPING)
    assert "overlap" in (safetensors_problem(path, "model.safetensors") or "")

    path.write_bytes(one_f32_tensor([8]))
    problem = safetensors_problem(path, "x.safetensors") or ""
    assert "do not hold a F32 tensor of shape [8]" in problem

    path.write_bytes(one_f32_tensor([4]))
    assert safetensors_problem(path, "x.safetensors") is None
    assert safetensors_problem(path, "weights.bin") is None  # not named safetensors


def set_rule(answer: str) -> None:
    policy = ImportPolicy.current()
    policy.malformed_weights = answer
    policy.save()


def test_overlapping_tensors_block_the_import_and_nothing_is_stored(broken_repo, aegis):
    set_rule("block")

    request = imported("acme/overlapping")

    assert request.status == ImportRequest.Status.FAILED
    assert request.error_code == "policy:malformed_weights"
    assert "model.safetensors" in request.error and "overlap" in request.error
    assert not ModelVersion.objects.exists()
    stored = Path(aegis.settings.AEGIS_ARTIFACT_ROOT)
    assert not stored.exists() or not [path for path in stored.rglob("*") if path.is_file()]


def test_by_default_it_warns_imports_and_records_the_problem(broken_repo):
    request = imported("acme/overlapping")

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    version = ModelVersion.objects.get()
    findings = version.import_options["policy"]["findings"]
    [finding] = [item for item in findings if item["rule"] == "malformed_weights"]
    assert finding["outcome"] == "warned" and "model.safetensors" in finding["reason"]
