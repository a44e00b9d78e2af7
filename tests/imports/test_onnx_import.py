"""ONNX models through the whole import: external data pointing outside the model's directory
blocks it and nothing is stored; a clean model with its weights in model.onnx_data imports with
no finding; an operator from a custom domain is warned about and recorded in aegis.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

from imports.models import ImportRequest
from registry.models import ModelVersion, RegisteredModel
from tests.factories import imported

pytestmark = pytest.mark.django_db


def matmul_model(*extra_nodes: onnx.NodeProto, weights: TensorProto | None = None) -> Any:
    """x (1x4) times the 4x4 initializer w, then ``extra_nodes``."""
    if weights is None:
        weights = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), *extra_nodes]
    body = helper.make_graph(
        nodes,
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, [1, 4])],
        [weights],
    )
    opsets = [helper.make_opsetid("", 17)]
    if extra_nodes:
        opsets.append(helper.make_opsetid("com.acme", 1))
    return helper.make_model(body, opset_imports=opsets)


def reading_passwd() -> bytes:
    """A model whose weights are said to be in ../../../etc/passwd (nothing written there)."""
    weights = numpy_helper.from_array(np.zeros((4, 4), dtype=np.float32), "w")
    set_external_data(weights, location="../../../etc/passwd", offset=0, length=64)
    weights.data_location = TensorProto.EXTERNAL
    weights.ClearField("raw_data")
    return bytes(matmul_model(weights=weights).SerializeToString())


def with_external_data(directory: Path) -> dict[str, bytes]:
    """model.onnx and model.onnx_data as onnx.save writes them."""
    path = directory / "model.onnx"
    onnx.save(
        matmul_model(),
        path,
        save_as_external_data=True,
        location="model.onnx_data",
        size_threshold=0,  # the 64 bytes of w too
    )
    return {name: (directory / name).read_bytes() for name in ("model.onnx", "model.onnx_data")}


@pytest.fixture
def onnx_repos(aegis, fresh_hub_double, tmp_path):
    saved = tmp_path / "saved"
    saved.mkdir()
    custom = helper.make_node("Scramble", ["y"], ["z"], domain="com.acme")
    repos = {
        "acme/onnx-passwd": {"model.onnx": reading_passwd()},
        "acme/onnx-clean": with_external_data(saved),
        "acme/onnx-custom": {"model.onnx": matmul_model(custom).SerializeToString()},
    }
    for repo_id, files in repos.items():
        fresh_hub_double.add_repo(repo_id, files, card_data={"license": "mit"})
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    return fresh_hub_double


def record_of(request: ImportRequest) -> dict[str, Any]:
    """aegis.json, the import record stored beside the tarball."""
    return json.loads(Path(urlparse(request.result["record_url"]).path).read_bytes())


def test_external_data_outside_the_model_blocks_the_import_and_nothing_is_stored(onnx_repos, aegis):
    request = imported("acme/onnx-passwd")

    assert request.status == ImportRequest.Status.FAILED
    assert request.error_code == "policy:onnx_external_data"
    assert "model.onnx" in request.error and "'../../../etc/passwd'" in request.error
    assert not ModelVersion.objects.exists() and not RegisteredModel.objects.exists()
    root = Path(aegis.settings.AEGIS_ARTIFACT_ROOT)
    assert not root.exists() or not [path for path in root.rglob("*") if path.is_file()]


def test_a_clean_model_with_its_weights_beside_it_imports_with_no_finding(onnx_repos):
    request = imported("acme/onnx-clean")

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    assert record_of(request)["scan"]["findings"] == []
    version = ModelVersion.objects.get()
    assert version.import_options["policy"]["findings"] == []
    assert {item["path"] for item in version.manifest} == {
        "README.md",
        "model.onnx",
        "model.onnx_data",
    }


def test_a_custom_operator_is_warned_about_and_recorded(onnx_repos):
    request = imported("acme/onnx-custom")

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    [finding] = record_of(request)["scan"]["findings"]
    assert (finding["path"], finding["rule"], finding["severity"]) == (
        "model.onnx",
        "onnx_custom_ops",
        "warning",
    )
    assert "'com.acme' (opset 1): 'Scramble'" in finding["evidence"]
    assert finding["scanner"].startswith("aegis onnx ")
    policy = ModelVersion.objects.get().import_options["policy"]["findings"]
    [warned] = [item for item in policy if item["rule"] == "onnx_custom_ops"]
    assert warned["outcome"] == "warned" and "model.onnx" in warned["reason"]
