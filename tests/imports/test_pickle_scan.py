"""The scan stage: pickle content found by its bytes, and a verdict per file with the imports."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
from safetensors.numpy import save

from imports import pipeline


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo owned",))


class Print:
    def __reduce__(self):
        return (print, ("hello",))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def torch_zip(tmp_path: Path, name: str, payload: object) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
        archive.writestr("archive/version", "3\n")
    return path


def test_it_finds_pickles_by_their_bytes_whatever_their_name(tmp_path):
    import numpy as np

    assert pipeline.pickle_content(write(tmp_path, "weights", pickle.dumps([1], protocol=4)))
    assert pipeline.pickle_content(torch_zip(tmp_path, "model.data", {"a": 1})) == (
        "zip with pickle"
    )
    tensors = save({"w": np.zeros((300, 300), dtype=np.float32)})
    assert pipeline.pickle_content(write(tmp_path, "model.safetensors", tensors)) == ""
    assert pipeline.pickle_content(write(tmp_path, "config.json", b'{"a": 1}')) == ""
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as archive:
        archive.writestr("readme.txt", "no pickle")
    assert pipeline.pickle_content(tmp_path / "plain.zip") == ""


def test_a_pickle_calling_os_system_is_dangerous_and_named(tmp_path):
    path = write(tmp_path, "pytorch_model.bin", pickle.dumps({"w": RunsCode()}, protocol=2))
    result = pipeline.scan_file(path, "pytorch_model.bin", detected_by="extension")
    assert result.verdict == "dangerous"
    assert result.globals == ("posix.system (os.system)",)
    assert "posix.system" in result.detail


def test_a_pytorch_zip_with_a_dangerous_pickle_is_dangerous(tmp_path):
    path = torch_zip(tmp_path, "model.pt", {"w": RunsCode()})
    assert pipeline.scan_file(path, "model.pt", detected_by="zip").verdict == "dangerous"


def test_plain_weights_are_safe(tmp_path):
    path = write(tmp_path, "w.bin", pickle.dumps({"w": [[0.5, 1.0]]}, protocol=2))
    result = pipeline.scan_file(path, "w.bin", detected_by="extension")
    assert (result.verdict, result.globals) == ("safe", ())


def test_a_stream_that_cannot_be_parsed_is_suspicious(tmp_path):
    path = write(tmp_path, "broken.pkl", b"\x80\x02not a pickle at all")
    result = pipeline.scan_file(path, "broken.pkl", detected_by="extension")
    assert result.verdict == "suspicious"
    assert "could not be parsed" in result.detail


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_suspicious_import_is_named(tmp_path, protocol):
    path = write(tmp_path, "p.pkl", pickle.dumps(Print(), protocol=protocol))
    result = pipeline.scan_file(path, "p.pkl", detected_by="extension")
    assert result.verdict in ("suspicious", "dangerous")
    assert any("print" in name for name in result.globals)
