"""A safetensors file is proven by its whole header, checked against the file, not by its first
bytes; only a proven one skips the pickle scan."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save

from imports import pipeline
from imports.pipeline.check import CheckedFile, CheckResult
from imports.pipeline.download import Download
from imports.scanners import pickles
from imports.scanners.safetensors import NotSafetensors, check_safetensors, proven_by_head
from registry.policy import ImportRules


def raw(header: dict, data: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_real_file_is_proven(tmp_path):
    tensors: dict[str, np.ndarray] = {
        "w": np.zeros((3, 4), dtype=np.float32),
        "b": np.arange(5, dtype=np.int64),
    }
    path = write(tmp_path, "model.safetensors", save(tensors, metadata={"format": "pt"}))
    assert check_safetensors(path) == 2


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


BROKEN = [
    (b"\x80\x03B\x02\x00\x00\x00\x00{0cos\nsystem\n", "header length"),
    (struct.pack("<Q", 4) + b"[1] ", "not a JSON object"),
    (raw({"a": F32, "b": {**F32, "data_offsets": [4, 12]}}, b"\0" * 12), "overlap"),
    (raw({"a": F32, "b": {**F32, "data_offsets": [12, 20]}}, b"\0" * 20), "gap"),
    (raw({"a": {**F32, "shape": [3]}}, b"\0" * 8), "do not hold"),
    (raw({"a": F32}, b"\0" * 8 + b"cos\nsystem\n"), "cover 8 of the file's 19"),
    (raw({"a": {**F32, "dtype": "OBJECT"}}, b"\0" * 8), "unknown dtype"),
    (raw({"__metadata__": {"n": 1}, "a": F32}, b"\0" * 8), "map of strings"),
    (struct.pack("<Q", 25) + b'{"a": 1, "a": 2}         ', "twice"),
    (struct.pack("<Q", 200_000) + b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
]


@pytest.mark.parametrize(("data", "reason"), BROKEN)
def test_a_file_breaking_a_rule_is_not_proven(tmp_path, data, reason):
    with pytest.raises(NotSafetensors, match=reason):
        check_safetensors(write(tmp_path, "model.safetensors", data))


def test_a_proven_file_is_not_run_through_the_pickle_scanner(tmp_path, monkeypatch):
    real = write(tmp_path, "model.safetensors", save({"w": np.ones((8, 8), dtype=np.float16)}))
    hidden = write(tmp_path, "other.safetensors", b"cos\nsystem\n(S'id'\ntR.")
    scanned: list[str] = []
    scan = pickles.scan_unproven

    def recording(path: Path, name: str, **kwargs: object) -> object:
        scanned.append(name)
        return scan(path, name, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline.scan, "scan_unproven", recording)
    files = [
        CheckedFile(path.name, path.stat().st_size, "0" * 64, "", "") for path in (real, hidden)
    ]
    result = pipeline.scan_pickles(
        Download(paths={path.name: path for path in (real, hidden)}),
        CheckResult(files=tuple(files)),
        ImportRules(pickle_policy="warn_only"),
    )
    assert scanned == ["other.safetensors"]
    assert [(item.path, item.verdict) for item in result.verdicts] == [
        ("other.safetensors", "dangerous")
    ]


def test_a_pickle_saved_as_safetensors_is_not_proven(tmp_path):
    with pytest.raises(NotSafetensors):
        check_safetensors(write(tmp_path, "m.safetensors", pickle.dumps({"w": 1}, protocol=4)))


@pytest.mark.parametrize(("data", "reason"), BROKEN)
def test_its_first_bytes_prove_nothing_the_file_would_not(data, reason):
    # What a download keeps in memory (its first chunk) is judged as the whole file would be.
    assert not proven_by_head(len(data), data)


def test_its_first_bytes_prove_a_real_file_only_when_they_hold_the_whole_header():
    data = save({"w": np.arange(1000, dtype=np.float32)}, metadata={"format": "pt"})
    length = 8 + struct.unpack("<Q", data[:8])[0]

    assert proven_by_head(len(data), data[:length])  # the header, none of the tensor
    assert not proven_by_head(len(data), data[: length - 1])  # the header goes on
    assert not proven_by_head(len(data) + 4, data[:length])  # 4 bytes after the tensors
