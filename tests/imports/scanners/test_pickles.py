"""The pickle scanner: pickle content found by name, first bytes or imports, and a verdict per
file naming the imports; files that hide a pickle behind their name or first bytes."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
from safetensors.numpy import save

from imports.scanners.pickles import pickle_content, scan_file, scan_unproven


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo owned",))


class Print:
    def __reduce__(self):
        return (print, ("hello",))


# A protocol-0 pickle: plain text, no 0x80 first byte; pickle.loads runs os.system("id").
PROTOCOL_0 = b"cos\nsystem\n(S'id'\ntR."
# A protocol-3 pickle whose first bytes pass a first-bytes safetensors test: PROTO 3, then a
# BINBYTES of 2 bytes (b"\x00{", so byte 8 is "{"), POP, then the payload; its first 8 bytes
# read as a header length of 37,880,704 bytes, which fits once the file is padded past it
# (pickle.loads stops at STOP and ignores the rest).
LOOKALIKE_HEAD = b"\x80\x03B\x02\x00\x00\x00\x00{0"
SAFETENSORS_LOOKALIKE = LOOKALIKE_HEAD + pickle.dumps(RunsCode(), protocol=2)[2:]
SAFETENSORS_LOOKALIKE += b"\0" * (int.from_bytes(LOOKALIKE_HEAD[:8], "little") + 8)
BYPASS_NAMES = [
    "weights.dat",
    "model.data",
    "classifier.sav",
    "x.p",
    "weights",
    "model.safetensors",
]


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


def test_the_bypass_files_really_run_code_when_loaded(monkeypatch):
    import posix

    ran: list[str] = []
    monkeypatch.setattr(os, "system", ran.append)
    monkeypatch.setattr(posix, "system", ran.append)
    pickle.loads(PROTOCOL_0)
    pickle.loads(SAFETENSORS_LOOKALIKE)
    assert ran == ["id", "echo owned"]


def test_the_lookalike_passes_a_first_bytes_safetensors_test(tmp_path):
    head_length = int.from_bytes(SAFETENSORS_LOOKALIKE[:8], "little")
    assert head_length <= len(SAFETENSORS_LOOKALIKE) - 8
    assert SAFETENSORS_LOOKALIKE[8:9] == b"{"


def test_it_finds_pickles_by_their_bytes_whatever_their_name(tmp_path):
    import numpy as np

    assert pickle_content(write(tmp_path, "weights", pickle.dumps([1], protocol=4)))
    assert pickle_content(torch_zip(tmp_path, "model.data", {"a": 1})) == "zip with pickle"
    assert pickle_content(write(tmp_path, "model.safetensors", SAFETENSORS_LOOKALIKE))
    tensors = save({"w": np.zeros((300, 300), dtype=np.float32)})
    assert pickle_content(write(tmp_path, "real.safetensors", tensors)) == ""
    assert pickle_content(write(tmp_path, "config.json", b'{"a": 1}')) == ""
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as archive:
        archive.writestr("readme.txt", "no pickle")
    assert pickle_content(tmp_path / "plain.zip") == ""


@pytest.mark.parametrize("name", BYPASS_NAMES)
@pytest.mark.parametrize(
    "payload", [PROTOCOL_0, SAFETENSORS_LOOKALIKE], ids=["proto0", "lookalike"]
)
def test_a_pickle_hidden_by_its_name_and_first_bytes_is_dangerous(tmp_path, name, payload):
    verdict = scan_unproven(write(tmp_path, name, payload), name)
    assert verdict is not None
    assert verdict.verdict == "dangerous"
    assert any(name.endswith(("os.system", "os.system)")) for name in verdict.globals)
    assert "system" in verdict.detail


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("config.json", b'{"architectures": ["BertModel"], "hidden_size": 768}'),
        ("README.md", b"---\nlicense: mit\n---\n# A model\n"),
        ("vocab.txt", b"[PAD]\n[UNK]\n[CLS]\nthe\nof\n"),
        ("merges.txt", b"#version: 0.2\nt h\nth e\n"),
    ],
)
def test_a_file_that_is_no_pickle_gets_no_verdict(tmp_path, name, data):
    assert scan_unproven(write(tmp_path, name, data), name) is None


def test_a_pickle_calling_os_system_is_dangerous_and_named(tmp_path):
    path = write(tmp_path, "pytorch_model.bin", pickle.dumps({"w": RunsCode()}, protocol=2))
    result = scan_file(path, "pytorch_model.bin", detected_by="extension")
    assert result.verdict == "dangerous"
    assert result.globals == ("posix.system (os.system)",)
    assert "posix.system" in result.detail


def test_a_pytorch_zip_with_a_dangerous_pickle_is_dangerous(tmp_path):
    path = torch_zip(tmp_path, "model.pt", {"w": RunsCode()})
    assert scan_file(path, "model.pt", detected_by="zip").verdict == "dangerous"


def test_plain_weights_are_safe(tmp_path):
    path = write(tmp_path, "w.bin", pickle.dumps({"w": [[0.5, 1.0]]}, protocol=2))
    result = scan_file(path, "w.bin", detected_by="extension")
    assert (result.verdict, result.globals) == ("safe", ())


def test_a_stream_that_cannot_be_parsed_to_its_end_is_dangerous(tmp_path):
    path = write(tmp_path, "broken.pkl", b"\x80\x02not a pickle at all")
    result = scan_file(path, "broken.pkl", detected_by="extension")
    assert result.verdict == "dangerous"
    assert "could not be parsed to its end" in result.detail


def test_a_safe_import_followed_by_garbage_is_dangerous(tmp_path):
    stream = pickle.dumps({"w": [1.0]}, protocol=2)[:-1] + b"\xff\xfe garbage"
    verdict = scan_unproven(write(tmp_path, "weights.pkl", stream), "weights.pkl")
    assert verdict is not None and verdict.verdict == "dangerous"


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_suspicious_import_is_named(tmp_path, protocol):
    path = write(tmp_path, "p.pkl", pickle.dumps(Print(), protocol=protocol))
    result = scan_file(path, "p.pkl", detected_by="extension")
    assert result.verdict in ("suspicious", "dangerous")
    assert any("print" in name for name in result.globals)


def test_bytes_picklescan_raises_on_are_unparseable_not_an_internal_error(tmp_path):
    from imports.scanners.pickles import scan_file, scan_unproven

    path = tmp_path / "weights.safetensors"
    path.write_bytes(b"\x93" + bytes(64))  # STACK_GLOBAL with nothing on the stack
    assert scan_unproven(path, "weights.safetensors") is None  # not pickle content at all
    verdict = scan_file(path, "weights.pkl", detected_by="extension")
    assert verdict.verdict == "dangerous"  # as a pickle it cannot be followed to its end


def test_an_empty_file_is_no_pickle_and_picklescan_failing_on_it_is_no_internal_error(tmp_path):
    from imports.pipeline.scan import scan_one
    from imports.scanners.pickles import scan_file

    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    assert scan_one(path, "empty.bin", "") is None  # named like a pickle, holds none
    # picklescan itself seeks before the start of an empty stream (EINVAL): unparseable.
    assert scan_file(path, "empty.bin", detected_by="extension").verdict == "dangerous"
