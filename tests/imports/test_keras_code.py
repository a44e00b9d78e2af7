"""A .keras model whose config carries Python code (a Lambda layer) blocks the import; a plain
one imports."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from imports.models import ImportRequest
from imports.scanners.keras import keras_problem
from registry.models import ModelVersion
from tests.factories import imported

pytestmark = pytest.mark.django_db


def dense(name: str) -> dict:
    return {"module": "keras.layers", "class_name": "Dense", "config": {"name": name, "units": 4}}


def lambda_layer(name: str) -> dict:
    """A Keras 3 Lambda layer, its function marshalled as Keras writes it (never run here)."""
    function = {"class_name": "__lambda__", "config": {"code": "4wAAAAAAAAAA", "defaults": None}}
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {"name": name, "function": function},
    }


def keras_archive(layers: list[dict]) -> bytes:
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "sequential", "layers": layers},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64))
    return buffer.getvalue()


@pytest.fixture
def keras_repos(aegis, fresh_hub_double):
    fresh_hub_double.add_repo(
        "acme/keras-lambda",
        {"model.keras": keras_archive([dense("in"), lambda_layer("backdoor"), dense("out")])},
        card_data={"license": "mit"},
    )
    fresh_hub_double.add_repo(
        "acme/keras-plain",
        {"model.keras": keras_archive([dense("in"), dense("out")])},
        card_data={"license": "mit"},
    )
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    return fresh_hub_double


def test_it_finds_lambda_layers_and_serialised_functions(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(keras_archive([lambda_layer("backdoor")]))
    problem = keras_problem(path, "m.keras") or ""
    assert "Lambda layer 'backdoor'" in problem and "serialised Python function" in problem
    legacy = {"class_name": "Lambda", "config": {"name": "old", "function_type": "lambda"}}
    path.write_bytes(keras_archive([legacy]))
    assert "Lambda layer 'old'" in (keras_problem(path, "m.keras") or "")
    path.write_bytes(keras_archive([dense("a")]))
    assert keras_problem(path, "m.keras") is None
    assert keras_problem(path, "m.zip") is None  # by name only: .keras


def test_a_lambda_layer_blocks_the_import_and_nothing_is_stored(keras_repos, aegis):
    request = imported("acme/keras-lambda")

    assert request.status == ImportRequest.Status.FAILED
    assert request.error_code == "policy:keras_code"
    assert "model.keras" in request.error and "Lambda layer 'backdoor'" in request.error
    assert not ModelVersion.objects.exists()
    root = Path(aegis.settings.AEGIS_ARTIFACT_ROOT)
    assert not root.exists() or not [path for path in root.rglob("*") if path.is_file()]


def test_a_plain_keras_model_imports_without_a_finding(keras_repos):
    request = imported("acme/keras-plain")

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    findings = ModelVersion.objects.get().import_options["policy"]["findings"]
    assert "keras_code" not in {item["rule"] for item in findings}
