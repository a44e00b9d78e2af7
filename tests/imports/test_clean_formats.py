"""False positives (issue 15): a clean Keras model (.keras and .h5), a clean GGUF and a benign
PyTorch checkpoint made with only the usual globals import with no finding; a .h5 with a
Lambda layer is blocked and nothing is stored."""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import struct
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from imports.models import ImportRequest
from registry.models import ModelVersion
from tests.factories import imported
from tests.imports.scanners.test_keras_h5 import dense, h5_bytes, keras2_lambda
from tests.imports.test_chat_templates import BENIGN, gguf
from tests.imports.test_keras_code import keras_archive

pytestmark = pytest.mark.django_db

# --- a PyTorch state dict, pickled as torch.save pickles it (torch is not installed) ---------
# Protocol 2, the globals every checkpoint has, storages as persistent ids
# ('storage', torch.FloatStorage, key, 'cpu', numel), assembled opcode by opcode.


def global_name(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def text(value: str) -> bytes:
    data = value.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def small(value: int) -> bytes:
    return pickle.BININT1 + bytes([value])


def ints(values: tuple[int, ...]) -> bytes:
    return pickle.MARK + b"".join(small(value) for value in values) + pickle.TUPLE


def ordered_dict() -> bytes:
    return global_name("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE


def tensor(key: str, shape: tuple[int, ...], stride: tuple[int, ...], legacy: bool) -> bytes:
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)."""
    numel = 1
    for size in shape:
        numel *= size
    storage = (
        pickle.MARK
        + text("storage")
        + global_name("torch", "FloatStorage")
        + text(key)
        + text("cpu")
        + small(numel)
        + (pickle.NONE if legacy else b"")  # the legacy format's view metadata
        + pickle.TUPLE
        + pickle.BINPERSID
    )
    return (
        global_name("torch._utils", "_rebuild_tensor_v2")
        + pickle.MARK
        + storage
        + small(0)
        + ints(shape)
        + ints(stride)
        + pickle.NEWFALSE
        + ordered_dict()
        + pickle.TUPLE
        + pickle.REDUCE
    )


def parameter(tensor_opcodes: bytes) -> bytes:
    """torch._utils._rebuild_parameter(tensor, requires_grad, hooks)."""
    return (
        global_name("torch._utils", "_rebuild_parameter")
        + pickle.MARK
        + tensor_opcodes
        + pickle.NEWTRUE
        + ordered_dict()
        + pickle.TUPLE
        + pickle.REDUCE
    )


# linear.weight (2x2, storage "0"), linear.bias (2, storage "1")
STORAGES = {"0": 4, "1": 2}


def state_dict(
    keys: tuple[str, str] = ("0", "1"), *, legacy: bool = False, parameter_weight: bool = False
) -> bytes:
    """An OrderedDict of a Linear layer's tensors with its ``_metadata`` (set by BUILD), as
    ``torch.save(model.state_dict())`` pickles it; ``parameter_weight``: the weight as an
    ``nn.Parameter`` (``torch._utils._rebuild_parameter``), as when parameters themselves are
    saved rather than a state dict's detached tensors."""
    weight, bias = keys
    weight_opcodes = tensor(weight, (2, 2), (2, 1), legacy)
    metadata = (
        ordered_dict()
        + pickle.MARK
        + text("")
        + pickle.EMPTY_DICT
        + text("version")
        + small(1)
        + pickle.SETITEM
        + pickle.SETITEMS
    )
    return (
        pickle.PROTO
        + b"\x02"
        + ordered_dict()
        + pickle.MARK
        + text("linear.weight")
        + (parameter(weight_opcodes) if parameter_weight else weight_opcodes)
        + text("linear.bias")
        + tensor(bias, (2,), (1,), legacy)
        + pickle.SETITEMS
        + pickle.EMPTY_DICT
        + text("_metadata")
        + metadata
        + pickle.SETITEM
        + pickle.BUILD
        + pickle.STOP
    )


def torch_zip_checkpoint(data_pkl: bytes) -> bytes:
    """torch.save's zip format: archive/data.pkl, one file per storage, stored uncompressed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/.format_version", "1")
        archive.writestr("archive/.storage_alignment", "64")
        archive.writestr("archive/byteorder", "little")
        for key, numel in STORAGES.items():
            archive.writestr(f"archive/data/{key}", struct.pack(f"<{numel}f", *range(numel)))
        archive.writestr("archive/version", "3\n")
        archive.writestr("archive/.data/serialization_id", "1234567890123456789012345678901234")
    return buffer.getvalue()


LEGACY_KEYS = ("94227315651616", "94227315652864")  # str(storage._cdata) in the legacy format


def legacy_checkpoint() -> bytes:
    """torch.save(..., _use_new_zipfile_serialization=False): five things one after the other
    (the magic number, the protocol version, sys_info, the state dict, the sorted storage
    keys, each a protocol-2 pickle), then each storage's element count (int64) and raw bytes."""
    sys_info = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    head = b"".join(
        pickle.dumps(value, protocol=2) for value in (0x1950A86A20F9469CFC6C, 1001, sys_info)
    )
    keys = pickle.dumps(sorted(LEGACY_KEYS), protocol=2)
    storages = b"".join(
        struct.pack("<q", numel) + struct.pack(f"<{numel}f", *range(numel))
        for numel in STORAGES.values()
    )
    return head + state_dict(LEGACY_KEYS, legacy=True) + keys + storages


def loaded_shapes(data: bytes) -> dict[str, tuple[int, ...]]:
    """What a loader rebuilds from the state dict pickle: names and shapes. Only the usual
    globals resolve (to stand-ins); anything else is refused."""

    class StateDict(dict):  # as OrderedDict, it takes attributes (BUILD sets _metadata)
        pass

    stand_ins: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): StateDict,
        ("torch._utils", "_rebuild_tensor_v2"): lambda storage, offset, size, *rest: size,
        ("torch._utils", "_rebuild_parameter"): lambda value, *rest: value,
        ("torch", "FloatStorage"): "FloatStorage",
    }

    class Loader(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            return stand_ins[module, name]

        def persistent_load(self, pid: Any) -> Any:
            assert pid[0] == "storage" and pid[1] == "FloatStorage" and pid[3] == "cpu"
            return pid

    return dict(Loader(io.BytesIO(data)).load())


def test_the_checkpoints_are_what_torch_save_writes():
    data = state_dict(parameter_weight=True)
    listing = io.StringIO()
    pickletools.dis(data, out=listing)
    assert "GLOBAL     'torch._utils _rebuild_tensor_v2'" in listing.getvalue()
    assert "BINPERSID" in listing.getvalue()
    globals_used = {
        argument for opcode, argument, _ in pickletools.genops(data) if opcode.name == "GLOBAL"
    }
    assert globals_used == {
        "collections OrderedDict",
        "torch._utils _rebuild_tensor_v2",
        "torch._utils _rebuild_parameter",
        "torch FloatStorage",
    }
    assert loaded_shapes(data) == {"linear.weight": (2, 2), "linear.bias": (2,)}
    assert loaded_shapes(state_dict()) == loaded_shapes(data)

    legacy = io.BytesIO(legacy_checkpoint())
    assert pickle.load(legacy) == 0x1950A86A20F9469CFC6C
    assert pickle.load(legacy) == 1001
    assert pickle.load(legacy)["type_sizes"]["long"] == 4
    assert loaded_shapes(legacy.read()) == {"linear.weight": (2, 2), "linear.bias": (2,)}


# --- imports through the Hub double -------------------------------------------------------


REPOS: dict[str, dict[str, bytes | str]] = {
    "acme/keras-archive": {"model.keras": keras_archive([dense("in"), dense("out")])},
    "acme/keras-h5": {"model.h5": h5_bytes([dense("in"), dense("hidden"), dense("out")])},
    "acme/keras-h5-lambda": {"model.h5": h5_bytes([dense("in"), keras2_lambda("backdoor")])},
    "acme/gguf": {"model-q4.gguf": gguf(BENIGN)},
    "acme/torch": {"pytorch_model.bin": torch_zip_checkpoint(state_dict()), "config.json": "{}"},
    "acme/torch-parameter": {
        "pytorch_model.bin": torch_zip_checkpoint(state_dict(parameter_weight=True)),
        "config.json": "{}",
    },
    "acme/torch-legacy": {"pytorch_model.bin": legacy_checkpoint(), "config.json": "{}"},
}


@pytest.fixture
def repos(aegis, fresh_hub_double):
    for repo_id, files in REPOS.items():
        fresh_hub_double.add_repo(repo_id, files, card_data={"license": "mit"})
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    return fresh_hub_double


def record_of(request: ImportRequest) -> dict[str, Any]:
    """aegis.json, the import record stored beside the tarball."""
    return json.loads(Path(urlparse(request.result["record_url"]).path).read_bytes())


def stored(environment: Any) -> list[Path]:
    root = Path(environment.settings.AEGIS_ARTIFACT_ROOT)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


@pytest.mark.parametrize(
    ("repo_id", "model_file"),
    [
        ("acme/keras-archive", "model.keras"),
        ("acme/keras-h5", "model.h5"),
        ("acme/gguf", "model-q4.gguf"),
        ("acme/torch", "pytorch_model.bin"),
    ],
)
def test_a_clean_model_imports_with_no_finding(repos, repo_id, model_file):
    request = imported(repo_id)

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    record = record_of(request)
    assert record["scan"]["findings"] == []
    assert ModelVersion.objects.get().import_options["policy"]["findings"] == []
    # The file was read (by a format scanner, or the pickle scanners) and judged safe.
    judged = record["scan"]["formats"] + record["scan"]["files"]
    assert {item["verdict"] for item in judged if item["path"] == model_file} == {"safe"}


@pytest.mark.parametrize(
    "repo_id",
    [
        "acme/torch",
        "acme/torch-parameter",
        "acme/torch-legacy",
    ],
)
def test_a_benign_pytorch_checkpoint_is_judged_safe(repos, repo_id):
    request = imported(repo_id)

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    files = record_of(request)["scan"]["files"]
    assert [(item["path"], item["verdict"]) for item in files] == [("pytorch_model.bin", "safe")]


def test_an_h5_with_a_lambda_layer_is_blocked_and_nothing_is_stored(repos, aegis):
    request = imported("acme/keras-h5-lambda")

    assert request.status == ImportRequest.Status.FAILED
    assert request.error_code == "policy:keras_code"
    assert "model.h5" in request.error and "Lambda layer 'backdoor'" in request.error
    assert not ModelVersion.objects.exists()
    assert stored(aegis) == []
