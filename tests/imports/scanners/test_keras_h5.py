"""HDF5 Keras models (.h5, .hdf5; tf.keras's .keras with the v3 format off): Python code in the
root attributes model_config and training_config is found; only those attributes are read, a
bounded number of bytes, in a child process; a file HDF5 cannot open is no model, one that
hangs or crashes the HDF5 library is judged unread and the worker goes on.

``keras_problem`` runs the HDF5 reading in a child; the tests that watch what is read call
``hdf5_problem_here``, the same reading in this process."""

from __future__ import annotations

import base64
import io
import json
import marshal
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from imports.scanners import format_scanners, keras
from imports.scanners.base import DANGEROUS
from imports.scanners.keras import (
    MAX_CONFIG_BYTES,
    HDF5ReaderFailed,
    KerasScanner,
    hdf5_problem_here,
    hdf5_superblock_offset,
    keras_problem,
)

# Child code that dies as a crashing HDF5 library would: set as keras.HDF5_CHILD_CODE, it tells
# whether a child was started at all.
CRASHING_CHILD = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"


def dense(name: str) -> dict[str, Any]:
    return {"class_name": "Dense", "config": {"name": name, "units": 4, "activation": "relu"}}


def keras2_lambda(name: str) -> dict[str, Any]:
    """A Lambda layer as tf.keras 2 serialises it: ``function`` is [base64 marshalled code,
    defaults, closure] (the code of ``lambda x: x * 2``; never run here)."""
    code = base64.b64encode(marshal.dumps((lambda x: x * 2).__code__)).decode()
    return {
        "class_name": "Lambda",
        "config": {
            "name": name,
            "function": [code, None, None],
            "function_type": "lambda",
            "module": "__main__",
            "output_shape": None,
            "output_shape_type": "raw",
            "arguments": {},
        },
    }


def tf_op_lambda(name: str, function: str) -> dict[str, Any]:
    return {"class_name": "TFOpLambda", "config": {"name": name, "function": function}}


TRAINING = {
    "loss": "mean_squared_error",
    "metrics": [[{"class_name": "MeanMetricWrapper", "config": {"name": "mae"}}]],
    "optimizer_config": {"class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.001}},
}


def keras2_h5(
    target: Any,
    layers: list[dict[str, Any]],
    *,
    training: dict[str, Any] | None = TRAINING,
    kernel_elements: int = 16,
    **file_options: Any,
) -> None:
    """An HDF5 model laid out as tf.keras 2 saves one: the configs as JSON bytes in root
    attributes, each Dense layer's kernel in model_weights/<layer>/<layer>/kernel:0."""
    model = {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}
    with h5py.File(target, "w", **file_options) as file:
        file.attrs["backend"] = "tensorflow"
        file.attrs["keras_version"] = "2.15.0"
        file.attrs["model_config"] = json.dumps(model).encode()
        if training is not None:
            file.attrs["training_config"] = json.dumps(training).encode()
        weights = file.create_group("model_weights")
        names = [layer["config"]["name"] for layer in layers]
        weights.attrs["layer_names"] = np.array([name.encode() for name in names])
        for layer in layers:
            name = layer["config"]["name"]
            group = weights.create_group(name)
            if layer["class_name"] == "Dense":
                group.create_dataset(f"{name}/kernel:0", data=np.ones(kernel_elements, "<f4"))
                group.attrs["weight_names"] = np.array([f"{name}/kernel:0".encode()])


def h5_bytes(layers: list[dict[str, Any]], **options: Any) -> bytes:
    buffer = io.BytesIO()
    keras2_h5(buffer, layers, **options)
    return buffer.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


class ReadLog:
    """Installs a BoundedReader that logs each read as (offset, length)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads: list[tuple[int, int]] = []
        log = self

        class Logged(keras.BoundedReader):
            def readinto(self, buffer: Any) -> int:
                offset = self.tell()
                count = super().readinto(buffer)  # a read over the budget raises: not logged
                log.reads.append((offset, count))
                return count

        monkeypatch.setattr(keras, "BoundedReader", Logged)

    @property
    def total(self) -> int:
        return sum(length for _, length in self.reads)


def test_it_finds_a_keras2_lambda_layer_in_model_config(tmp_path):
    path = write(tmp_path, "model.h5", h5_bytes([dense("in"), keras2_lambda("backdoor")]))

    [finding] = KerasScanner().scan(path, "model.h5")

    assert (finding.path, finding.rule, finding.severity) == ("model.h5", "keras_code", DANGEROUS)
    assert finding.evidence.startswith("its model_config carries Python code")
    assert "Lambda layer 'backdoor'" in finding.evidence
    assert "a serialised Python function in 'backdoor'" in finding.evidence
    assert finding.scanner.startswith("aegis keras ")


def test_it_finds_a_tf_op_lambda_and_names_what_it_calls(tmp_path):
    layers = [dense("in"), tf_op_lambda("tf.io.write_file", "io.write_file")]
    path = write(tmp_path, "model.hdf5", h5_bytes(layers))

    problem = hdf5_problem_here(path) or ""

    assert "TFOpLambda layer 'tf.io.write_file' calling 'io.write_file'" in problem


def test_it_finds_any_layer_whose_function_is_a_serialised_lambda(tmp_path):
    custom = {"class_name": "MyLayer", "config": {"name": "mine", "function_type": "lambda"}}
    shaped = {"class_name": "Reshaper", "config": {"name": "shape", "output_shape_type": "lambda"}}
    path = write(tmp_path, "model.h5", h5_bytes([custom, shaped]))

    problem = hdf5_problem_here(path) or ""

    assert "serialised Python function in 'mine'" in problem
    assert "serialised Python function in 'shape'" in problem


def test_it_finds_code_in_the_training_config(tmp_path):
    # load_model compiles by default: the loss is rebuilt by deserialize_keras_object, which
    # unmarshals a __lambda__ (Keras 3 without safe_mode).
    training = {**TRAINING, "loss": {"class_name": "__lambda__", "config": {"code": "4wAA"}}}
    path = write(tmp_path, "model.h5", h5_bytes([dense("in")], training=training))

    problem = hdf5_problem_here(path) or ""

    assert problem.startswith("its training_config carries Python code")
    assert "model_config" not in problem


def test_a_clean_model_has_no_finding(tmp_path):
    path = write(tmp_path, "model.h5", h5_bytes([dense("in"), dense("hidden"), dense("out")]))

    assert keras_problem(path, "model.h5") is None
    assert KerasScanner().scan(path, "model.h5") == []


def test_a_weights_only_file_has_no_finding(tmp_path):
    # tf_model.h5 as transformers writes it (save_weights): no model_config at all.
    path = tmp_path / "tf_model.h5"
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.array([b"bert"])
        file.create_dataset("bert/embeddings/weight:0", data=np.ones(64, "<f4"))

    assert keras_problem(path, "tf_model.h5") is None


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(lambda text: text.encode(), id="variable-length bytes (h5py 3, Keras 2)"),
        pytest.param(lambda text: text, id="variable-length str"),
        pytest.param(lambda text: np.bytes_(text.encode()), id="fixed-length (h5py 2)"),
    ],
)
def test_each_way_a_string_attribute_is_stored_is_read(tmp_path, stored):
    path = tmp_path / "model.h5"
    config = {"class_name": "Sequential", "config": {"layers": [keras2_lambda("backdoor")]}}
    with h5py.File(path, "w") as file:
        file.attrs["model_config"] = stored(json.dumps(config))

    assert "Lambda layer 'backdoor'" in (hdf5_problem_here(path) or "")


def test_a_keras_name_holding_hdf5_is_read_as_hdf5(tmp_path):
    # tf.keras with the v3 format off saves HDF5 as model.keras, and loads it as HDF5.
    path = write(tmp_path, "model.keras", h5_bytes([keras2_lambda("backdoor")]))

    assert "Lambda layer 'backdoor'" in (keras_problem(path, "model.keras") or "")


def test_a_superblock_after_a_user_block_is_found(tmp_path):
    path = tmp_path / "model.h5"
    keras2_h5(path, [keras2_lambda("backdoor")], userblock_size=1024)
    assert path.read_bytes()[:8] != keras.HDF5_SIGNATURE

    assert hdf5_superblock_offset(path) == 1024
    assert "Lambda layer 'backdoor'" in (keras_problem(path, "model.h5") or "")


def test_the_signature_elsewhere_is_not_hdf5(tmp_path):
    # HDF5 looks at 0, 512, 1024, 2048...; at 100 it is not found, and h5py refuses the file.
    data = bytes(100) + h5_bytes([keras2_lambda("backdoor")])
    path = write(tmp_path, "model.h5", data)

    assert hdf5_superblock_offset(path) is None
    assert keras_problem(path, "model.h5") is None
    with pytest.raises(OSError):
        h5py.File(path, "r")


def torch_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": [1.0]}, protocol=2))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(pickle.dumps({"layers": ["Lambda"]}, protocol=2), id="a pickle"),
        pytest.param(torch_zip(), id="a zip"),
        pytest.param(b"\x89HDF\r\n", id="a signature cut short"),
    ],
)
def test_an_h5_that_is_not_hdf5_is_not_opened(tmp_path, monkeypatch, data):
    monkeypatch.setattr(keras, "HDF5_CHILD_CODE", CRASHING_CHILD)
    path = write(tmp_path, "model.h5", data)

    assert keras_problem(path, "model.h5") is None  # no child started: h5py never saw it


@pytest.mark.parametrize("keep", [8, 600, 2048, 4096])
def test_a_broken_hdf5_file_is_no_model_and_no_error(tmp_path, keep):
    whole = h5_bytes([keras2_lambda("backdoor")], kernel_elements=4096)
    path = write(tmp_path, "model.h5", whole[:keep] + b"\xff" * 64)

    assert hdf5_problem_here(path) is None


def test_a_disk_error_is_raised_not_taken_for_a_broken_file(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, "model.h5", h5_bytes([dense("in")]))

    # The HDF5 library can crash at the exit of a process in which a read of it failed: the
    # failing disk is given to the reader in a process of its own, as the scan does.
    script = textwrap.dedent(
        """
        import errno, io, json, sys
        from pathlib import Path
        from imports.scanners import keras

        class FailingDisk(io.BufferedIOBase):
            def __init__(self, raw):
                self.raw_file = raw
            def seek(self, offset, whence=io.SEEK_SET):
                return self.raw_file.seek(offset, whence)
            def tell(self):
                return self.raw_file.tell()
            def readinto(self, buffer):
                raise OSError(errno.EIO, "Input/output error")

        class OnFailingDisk(keras.BoundedReader):
            def __init__(self, raw):
                super().__init__(FailingDisk(raw))

        keras.BoundedReader = OnFailingDisk
        try:
            keras.hdf5_problem_here(Path(sys.argv[1]))
        except OSError as error:
            sys.stdout.write(f"raised {error}\\n")
        keras._hdf5_child(sys.argv[1])  # the child's side: the error as its answer, then exit
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=keras.PROJECT_ROOT, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    raised, answer_text = done.stdout.split("\n", 1)
    assert raised == "raised [Errno 5] Input/output error"
    answer = json.loads(answer_text)
    assert answer == {"disk_error": f"{path}: [Errno 5] Input/output error"}

    # ...which the parent raises.
    child = f"import sys, json; sys.stdout.write(json.dumps({answer!r}))"
    monkeypatch.setattr(keras, "HDF5_CHILD_CODE", child)
    with pytest.raises(OSError, match="Input/output error"):
        keras_problem(path, "model.h5")


@pytest.mark.parametrize(
    "fixed_length", [pytest.param(False, id="variable-length"), pytest.param(True, id="fixed")]
)
def test_a_config_over_the_bound_is_not_read_and_is_a_finding(tmp_path, monkeypatch, fixed_length):
    log = ReadLog(monkeypatch)
    path = tmp_path / "model.h5"
    text = b'{"class_name": "Sequential", "pad": "' + b" " * (MAX_CONFIG_BYTES * 3) + b'"}'
    # A fixed-length string over 64 KiB needs HDF5's dense attribute storage (libver latest).
    with h5py.File(path, "w", libver="latest") as file:
        file.attrs["model_config"] = np.bytes_(text) if fixed_length else text
        file.attrs["training_config"] = json.dumps(TRAINING).encode()

    problem = hdf5_problem_here(path)

    assert problem == f"its model_config attribute is over {MAX_CONFIG_BYTES:,} bytes; not read"
    assert keras_problem(path, "model.h5") == problem
    assert path.stat().st_size > len(text)
    # What was read: never the whole config, and not more than the bound and some metadata.
    assert log.total < MAX_CONFIG_BYTES + keras.MAX_HDF5_METADATA_BYTES
    assert max(length for _, length in log.reads) <= MAX_CONFIG_BYTES + (1 << 20)


def test_a_big_config_within_the_bound_is_read(tmp_path):
    padding = "x" * (MAX_CONFIG_BYTES // 2)
    layers = [dense("in"), {**keras2_lambda("backdoor"), "pad": padding}]
    path = write(tmp_path, "model.h5", h5_bytes(layers))

    assert "Lambda layer 'backdoor'" in (hdf5_problem_here(path) or "")


def test_only_the_config_attributes_are_read_never_the_weights(tmp_path, monkeypatch):
    log = ReadLog(monkeypatch)
    path = tmp_path / "model.h5"
    kernel = 8 * 1024 * 1024  # 32 MiB of float32 weights
    keras2_h5(path, [dense("big"), keras2_lambda("backdoor")], kernel_elements=kernel)
    with h5py.File(path, "r") as file:
        dataset = file["model_weights/big/big/kernel:0"].id
        start, length = dataset.get_offset(), dataset.get_storage_size()
    assert length == kernel * 4

    assert "Lambda layer 'backdoor'" in (hdf5_problem_here(path) or "")

    assert not [(at, size) for at, size in log.reads if at < start + length and start < at + size]
    assert log.total < 64 * 1024
    assert path.stat().st_size > length


def test_it_applies_to_keras_h5_and_hdf5_names():
    scanner = KerasScanner()
    assert all(scanner.applies_to(name) for name in ("m.keras", "tf_model.h5", "W.HDF5"))
    assert not scanner.applies_to("model.safetensors") and not scanner.applies_to("h5")
    assert [type(item) for item in format_scanners("dir/model.h5")] == [KerasScanner]


def test_a_keras_archive_is_still_read_and_an_h5_zip_is_not(tmp_path):
    layer = {"class_name": "Lambda", "config": {"name": "zipped", "function_type": "lambda"}}
    config = {"class_name": "Sequential", "config": {"layers": [layer]}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", json.dumps(config).encode("utf-16"))
    archive_path = write(tmp_path, "m.keras", buffer.getvalue())
    h5_named = write(tmp_path, "m.h5", buffer.getvalue())

    # json.loads reads UTF-16 bytes as Keras does; a zip named .h5 is loaded as HDF5 (or not).
    assert "Lambda layer 'zipped'" in (keras_problem(archive_path, "m.keras") or "")
    assert keras_problem(h5_named, "m.h5") is None


def hanging_hdf5() -> bytes:
    """A model whose global heap (where variable-length strings live) ends with a free-space
    object of size 0: HDF5 2.0 decoding the heap never gets past it, holding the interpreter."""
    data = bytearray(h5_bytes([dense("in")]))
    heap = data.index(b"GCOL")
    at = heap + 16  # "GCOL", version, reserved, collection size
    while (index := int.from_bytes(data[at : at + 2], "little")) != 0:
        size = int.from_bytes(data[at + 8 : at + 16], "little")
        at += 16 + (size + 7) // 8 * 8  # index, references, reserved, size; data padded to 8
    assert index == 0 and int.from_bytes(data[at + 8 : at + 16], "little") > 0
    data[at + 8 : at + 16] = bytes(8)
    return bytes(data)


def test_a_file_that_hangs_the_hdf5_library_is_judged_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(keras, "HDF5_READ_SECONDS", 3)
    path = write(tmp_path, "model.h5", hanging_hdf5())

    [finding] = KerasScanner().scan(path, "model.h5")

    assert finding.evidence == "the HDF5 library did not finish reading it in 3 s; not read"
    assert finding.rule == "keras_code"


def test_a_file_that_crashes_the_hdf5_library_is_judged_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(keras, "HDF5_CHILD_CODE", CRASHING_CHILD)
    path = write(tmp_path, "model.h5", h5_bytes([dense("in")]))

    problem = keras_problem(path, "model.h5")

    assert problem == "the HDF5 library crashed reading it (SIGSEGV); not read"


def test_a_child_that_cannot_run_is_an_error_not_a_verdict(tmp_path, monkeypatch):
    monkeypatch.setattr(keras, "HDF5_CHILD_CODE", "import no_such_module_here")
    path = write(tmp_path, "model.h5", h5_bytes([dense("in")]))

    with pytest.raises(HDF5ReaderFailed, match="No module named 'no_such_module_here'"):
        keras_problem(path, "model.h5")


def test_the_child_gets_no_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("VAULT_TOKEN", "s.secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    child = "import os, json, sys; sys.stdout.write(json.dumps({'problem': ' '.join(os.environ)}))"
    monkeypatch.setattr(keras, "HDF5_CHILD_CODE", child)
    path = write(tmp_path, "model.h5", h5_bytes([dense("in")]))

    names = (keras_problem(path, "model.h5") or "").split()

    assert "VAULT_TOKEN" not in names and "AWS_SECRET_ACCESS_KEY" not in names
    assert "PATH" in names
