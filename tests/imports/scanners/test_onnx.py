"""ONNX models read by the protobuf wire format: external data a loader would read from outside
the model's directory, operators from custom domains, and files that are not ONNX at all; the
weights are skipped, never read."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

from imports.scanners import format_scanners
from imports.scanners import onnx as onnx_scanner
from imports.scanners.base import DANGEROUS, SUSPICIOUS, WARNING
from imports.scanners.onnx import MAX_DEPTH, OnnxScanner, location_problem, read_onnx
from registry.policy import RULE_MALFORMED_WEIGHTS, RULE_ONNX_CUSTOM_OPS, RULE_ONNX_EXTERNAL_DATA

SCANNER = OnnxScanner()


def weights(name: str = "w", shape: tuple[int, ...] = (4, 4)) -> TensorProto:
    return numpy_helper.from_array(np.ones(shape, dtype=np.float32), name)


def external(tensor: TensorProto, location: str) -> TensorProto:
    """The tensor, its data said to be in ``location`` (no file is written there)."""
    set_external_data(tensor, location=location, offset=0, length=64)
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    return tensor


def graph(
    nodes: list[onnx.NodeProto] | None = None,
    initializers: list[TensorProto] | None = None,
    name: str = "g",
) -> onnx.GraphProto:
    """x (1x4) times the initializer w, then the nodes given, each reading the last output."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y0"]), *(nodes or [])]
    last = nodes[-1].output[0]
    return helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, [1, 4])],
        initializers if initializers is not None else [weights()],
    )


def model(body: onnx.GraphProto, **extra: Any) -> onnx.ModelProto:
    opsets = [helper.make_opsetid("", 17), *extra.pop("opsets", [])]
    return helper.make_model(body, opset_imports=opsets, **extra)


def custom(op_type: str, domain: str, number: int = 1) -> onnx.NodeProto:
    return helper.make_node(op_type, [f"y{number - 1}"], [f"y{number}"], domain=domain)


def write(tmp_path: Path, data: onnx.ModelProto | bytes, name: str = "model.onnx") -> Path:
    """The model's bytes as they are: no external data file is written anywhere."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.SerializeToString())
    return path


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand."""
    size, encoded = len(payload), b""
    while size >= 0x80:
        encoded += bytes([size & 0x7F | 0x80])
        size >>= 7
    return bytes([number << 3 | 2]) + encoded + bytes([size]) + payload


def scan(path: Path, name: str = "model.onnx") -> dict[str, Any]:
    """The findings by rule (one at most per rule and file)."""
    findings = SCANNER.scan(path, name)
    assert all(item.path == name and item.scanner.startswith("aegis onnx ") for item in findings)
    by_rule = {item.rule: item for item in findings}
    assert len(by_rule) == len(findings)
    return by_rule


def test_it_reads_onnx_files_only():
    assert SCANNER.applies_to("model.onnx") and SCANNER.applies_to("onnx/Decoder.ONNX")
    assert not SCANNER.applies_to("model.onnx_data") and not SCANNER.applies_to("model.ort")
    assert [scanner.name for scanner in format_scanners("onnx/model.onnx")] == ["onnx"]


def test_a_clean_model_with_inline_weights_has_no_finding(tmp_path):
    path = write(tmp_path, model(graph()))
    onnx.checker.check_model(str(path))  # a model ONNX itself takes
    assert scan(path) == {}


def test_a_clean_model_with_external_data_beside_it_has_no_finding(tmp_path):
    path = tmp_path / "onnx" / "model.onnx"
    path.parent.mkdir()
    body = graph(initializers=[weights("w"), weights("b", (64, 64))])
    onnx.save(model(body), path, save_as_external_data=True, location="model.onnx_data")
    assert (path.parent / "model.onnx_data").exists()
    onnx.load(str(path))  # ONNX loads it, external data and all
    assert scan(path, "onnx/model.onnx") == {}


@pytest.mark.parametrize("location", ["weights/w.bin", "./w.bin", "sub/../w.bin", "a/b/../../w"])
def test_a_location_inside_the_models_directory_is_fine(location):
    assert location_problem(location) is None


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("../../etc/passwd", "leaves the model's directory"),
        ("..", "leaves the model's directory"),
        ("sub/../../w.bin", "leaves the model's directory"),
        ("..\\..\\Windows\\win.ini", "leaves the model's directory"),
        ("/etc/passwd", "is an absolute path"),
        ("C:\\Windows\\win.ini", "is an absolute path"),
        ("c:w.bin", "is an absolute path"),
        ("\\\\server\\share\\w.bin", "is an absolute path"),
        ("", "names no file"),
        ("w.bin\x00.txt", "holds a NUL byte"),
        ("a/" * 20_000 + "w.bin", "is longer than any path"),
    ],
)
def test_a_location_outside_the_models_directory_is_named(location, why):
    assert (location_problem(location) or "").startswith(why)


def test_external_data_leaving_the_directory_is_dangerous(tmp_path):
    hostile = external(weights("encoder.weight"), "../../etc/passwd")
    path = write(tmp_path, model(graph(initializers=[hostile])))

    finding = scan(path)[RULE_ONNX_EXTERNAL_DATA]

    assert finding.severity == DANGEROUS
    assert "'encoder.weight'" in finding.evidence and "'../../etc/passwd'" in finding.evidence
    assert "leaves the model's directory" in finding.evidence


@pytest.mark.parametrize("location", ["/etc/passwd", "C:\\secrets\\key.bin", "\\\\host\\s\\w"])
def test_an_absolute_location_is_dangerous(tmp_path, location):
    path = write(tmp_path, model(graph(initializers=[external(weights(), location)])))

    finding = scan(path)[RULE_ONNX_EXTERNAL_DATA]

    assert finding.severity == DANGEROUS
    assert repr(location) in finding.evidence and "is an absolute path" in finding.evidence


def test_a_tensor_stored_externally_without_a_location_is_dangerous(tmp_path):
    tensor = weights()
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    path = write(tmp_path, model(graph(initializers=[tensor])))
    assert "names no file" in scan(path)[RULE_ONNX_EXTERNAL_DATA].evidence


def hostile_constant(location: str) -> onnx.NodeProto:
    value = external(weights("const"), location)
    return helper.make_node("Constant", [], ["c"], value=value)


def if_node(branch: onnx.GraphProto) -> onnx.NodeProto:
    return helper.make_node("If", ["cond"], ["y1"], then_branch=branch, else_branch=branch)


def branch(*nodes: onnx.NodeProto, initializers: list[TensorProto] | None = None) -> Any:
    out = nodes[-1].output[0] if nodes else "t"
    return helper.make_graph(
        list(nodes) or [helper.make_node("Identity", ["t"], ["out"])],
        "branch",
        [],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 4])],
        initializers or [],
    )


def test_external_data_is_found_in_constants_subgraphs_and_functions(tmp_path):
    function = helper.make_function(
        "local.fn",
        "Twice",
        ["a"],
        ["b"],
        [hostile_constant("../f.bin")],
        [helper.make_opsetid("", 17)],
    )
    body = graph(
        [
            hostile_constant("../constant.bin"),
            if_node(branch(initializers=[external(weights("t"), "/subgraph.bin")])),
        ]
    )
    path = write(tmp_path, model(body, functions=[function]))

    evidence = scan(path)[RULE_ONNX_EXTERNAL_DATA].evidence

    for location in ("'../constant.bin'", "'/subgraph.bin'", "'../f.bin'"):
        assert location in evidence


def test_a_custom_domain_node_is_a_warning(tmp_path):
    nodes = [custom("Backdoor", "com.acme", 1), custom("Gelu", "com.microsoft", 2)]
    opsets = [helper.make_opsetid("com.acme", 3), helper.make_opsetid("com.microsoft", 1)]
    path = write(tmp_path, model(graph(nodes), opsets=opsets))

    finding = scan(path)[RULE_ONNX_CUSTOM_OPS]

    assert finding.severity == WARNING
    assert finding.evidence == "operators from custom domains: 'com.acme' (opset 3): 'Backdoor'"


def test_a_custom_domain_inside_an_if_subgraph_is_found(tmp_path):
    inner = helper.make_node("Hidden", ["x"], ["inner"], domain="ai.onnx.contrib")
    path = write(tmp_path, model(graph([if_node(branch(inner))])))
    assert "'ai.onnx.contrib': 'Hidden'" in scan(path)[RULE_ONNX_CUSTOM_OPS].evidence


def test_a_function_the_model_defines_is_no_custom_operator(tmp_path):
    twice = helper.make_function(
        "local.fn",
        "Twice",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", 17)],
    )
    opsets = [helper.make_opsetid("local.fn", 1)]
    uses = graph([custom("Twice", "local.fn")])
    path = write(tmp_path, model(uses, functions=[twice], opsets=opsets))
    assert scan(path) == {}

    # the same domain, an operator no function defines: from elsewhere
    other = graph([custom("Twice", "local.fn", 1), custom("Thrice", "local.fn", 2)])
    path = write(tmp_path, model(other, functions=[twice], opsets=opsets))
    assert "'local.fn' (opset 1): 'Thrice'" in scan(path)[RULE_ONNX_CUSTOM_OPS].evidence


def test_a_truncated_file_is_not_a_valid_onnx_file(tmp_path):
    data = model(graph([custom("Backdoor", "com.acme")])).SerializeToString()
    path = write(tmp_path, data[: len(data) - 20])

    findings = scan(path)

    malformed = findings[RULE_MALFORMED_WEIGHTS]
    assert malformed.severity == WARNING
    assert malformed.evidence.startswith("not a valid ONNX file: a field of ")
    assert "runs past the end of the file" in malformed.evidence


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "it holds no graph"),
        (b"\x08\x08", "it holds no graph"),  # ir_version 8, nothing else
        (b"GGUF\x03\x00\x00\x00" + bytes(32), "wire type 7"),
        (b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "a number longer than ten bytes"),
        (b"\x08\x80", "a number runs past the end"),
        (b"\x3a\x05\x0a", "a field of 5 bytes runs past the end of the file"),
        (
            b"\x3a\x02\x0a\x05\x08\x01\x08\x01",
            "a field of 5 bytes runs past the end of its message",
        ),
        (b"\x00\x01", "a field numbered 0"),
        (b"\x0c", "the end of a group (field 1) that was never started"),
        (b"\x0b\x14\x0c", "the end of a group (field 2) that was never started"),
    ],
)
def test_bytes_that_are_not_onnx_are_named_as_such(tmp_path, data, why):
    path = write(tmp_path, data)
    findings = scan(path)
    assert list(findings) == [RULE_MALFORMED_WEIGHTS]
    assert why in findings[RULE_MALFORMED_WEIGHTS].evidence
    if why != "it holds no graph":  # protobuf's own parser refuses the bytes too
        with pytest.raises(DecodeError):
            onnx.ModelProto().ParseFromString(data)


def test_groups_protobuf_skips_are_skipped_and_the_scan_goes_on(tmp_path):
    hostile = model(graph(initializers=[external(weights(), "../w.bin")]))
    group = b"\x0b" + b"\x08\x01" + b"\x13\x0a\x00\x14" + b"\x0c"  # field 1 {1: 1, 2 {1: ""}}
    data = group + hostile.SerializeToString()
    parsed = onnx.ModelProto()
    parsed.ParseFromString(data)
    assert parsed.graph.initializer[0].external_data[0].value == "../w.bin"

    assert list(scan(write(tmp_path, data))) == [RULE_ONNX_EXTERNAL_DATA]


def test_long_strings_are_cut_not_refused(tmp_path):
    long_op = custom("X" * 70_000, "com.acme")
    long_path = external(weights("w"), "a/" * 20_000 + "w.bin")
    path = write(tmp_path, model(graph([long_op], initializers=[long_path])))

    findings = scan(path)

    assert "'XXXXX" in findings[RULE_ONNX_CUSTOM_OPS].evidence
    assert len(findings[RULE_ONNX_CUSTOM_OPS].evidence) < 1000
    assert "is longer than any path" in findings[RULE_ONNX_EXTERNAL_DATA].evidence


def test_a_file_with_more_fields_than_the_scan_reads_is_not_taken_as_checked(tmp_path, monkeypatch):
    nodes = [helper.make_node("Relu", [f"y{i}"], [f"y{i + 1}"]) for i in range(50)]
    path = write(tmp_path, model(graph(nodes)))
    monkeypatch.setattr(onnx_scanner, "MAX_FIELDS", 100)

    finding = scan(path)[RULE_ONNX_EXTERNAL_DATA]

    assert finding.severity == SUSPICIOUS
    assert "the scan stopped after 100 fields" in finding.evidence


def nested_subgraphs(levels: int) -> bytes:
    """ModelProto bytes: a graph whose node's attribute holds a graph, ``levels`` deep."""
    body = b""
    for _ in range(levels):
        body = field(1, field(5, field(6, body)))  # graph.node.attribute.g
    return field(7, body)


def test_nesting_deeper_than_protobuf_takes_is_refused(tmp_path):
    assert scan(write(tmp_path, nested_subgraphs(MAX_DEPTH // 3 - 1))) == {}
    deep = scan(write(tmp_path, nested_subgraphs(MAX_DEPTH // 3 + 1)))
    assert f"nested more than {MAX_DEPTH} deep" in deep[RULE_MALFORMED_WEIGHTS].evidence


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=512), cut=st.integers(min_value=0, max_value=400))
def test_no_bytes_make_the_scan_raise(data, cut):
    valid = model(graph([custom("Op", "com.acme")]), opsets=[]).SerializeToString()
    for candidate in (data, valid[:cut], valid[:cut] + data):
        contents = read_onnx(io.BytesIO(candidate), len(candidate))
        assert contents.malformed is None or isinstance(contents.malformed, str)


class CountingFile(io.FileIO):
    """A file that counts the bytes read from it."""

    bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer: Any, /) -> int:
        count = super().readinto(buffer) or 0
        self.bytes_read += count
        return count


@pytest.fixture
def model_with_a_64_mib_initializer(tmp_path):
    big = numpy_helper.from_array(np.zeros(16 * 1024 * 1024, dtype=np.float32), "big")
    hostile = external(weights("after.big"), "../../etc/shadow")
    body = graph([custom("Op", "com.acme")], initializers=[weights(), big, hostile])
    path = write(tmp_path, model(body))
    del big, body
    assert path.stat().st_size > 64 * 1024 * 1024
    return path


def test_the_weights_are_skipped_not_read(model_with_a_64_mib_initializer):
    path = model_with_a_64_mib_initializer
    with CountingFile(path) as handle:
        contents = read_onnx(handle, path.stat().st_size)

    # what lies after the 64 MiB of raw_data (the next initializer) was read ...
    assert contents.malformed is None
    assert [item[:2] for item in contents.external] == [("after.big", "../../etc/shadow")]
    # ... and the raw_data was not
    assert handle.bytes_read < 512 * 1024

    tracemalloc.start()
    try:
        findings = scan(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert set(findings) == {RULE_ONNX_EXTERNAL_DATA, RULE_ONNX_CUSTOM_OPS}
    assert peak < 4 * 1024 * 1024
