"""ONNX models: tensors whose external data lies outside the model's directory, and operators
from domains no standard runtime ships.

An ONNX file is one protobuf message, ``ModelProto`` (field numbers from onnx/onnx.proto). A
tensor may keep its bytes in another file, named by the ``location`` entry of its
``external_data``; ``onnx.load`` and ONNX Runtime join that location to the model's directory
and read it, so ``../../../etc/passwd`` or ``/home/user/.ssh/id_rsa`` makes loading the model
read, and carry into its weights, a file of the machine that loads it. Operators from a domain
the runtime does not ship (``com.acme``) run only with a custom-operator library loaded beside
the model: native code from elsewhere.

The file is read by the protobuf wire format, streaming, 64 KiB at a time: only the messages
that can hold tensors, nodes or functions are descended into; every other field (weights in
``raw_data`` or ``float_data``, doc strings, shapes) is skipped, and one longer than what is
left of the bytes at hand is passed by seeking, never read. Nesting depth, the number of fields
and the length of the strings read are bounded. A file that breaks the wire format is not a
valid ONNX file (a malformed-weights finding): protobuf's parser refuses it too, so no loader
reads a tensor of it. A file too big to read to its end is not taken as checked.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from imports.scanners.base import DANGEROUS, SUSPICIOUS, WARNING, Finding, own_scanner
from registry.policy import RULE_MALFORMED_WEIGHTS, RULE_ONNX_CUSTOM_OPS, RULE_ONNX_EXTERNAL_DATA

# Above the nesting protobuf's own parsers accept by default (C++ and upb: 100), so the scan
# reads every file a loader would read to its end.
MAX_DEPTH = 128
# The fields read in the messages descended into (nodes, attributes, tensor headers); a large
# transformer graph has a few hundred thousand, a 200,000-node graph about 3 million.
MAX_FIELDS = 10_000_000
# A string longer than this is kept cut to it (a location that long is no path: see
# MAX_PATH_BYTES); no exporter writes a name that long.
MAX_STRING_BYTES = 64 * 1024
# Longer than any path an operating system opens (Linux 4 KiB, Windows 32,767 characters).
MAX_PATH_BYTES = 32 * 1024
WINDOW_BYTES = 64 * 1024  # read at a time: a field longer than what is left of it is skipped
MAX_LOCATIONS = 16  # the location entries of one tensor kept (the first ones and the last)
MAX_RECORDED = 1000  # distinct problems kept for the evidence (each is counted)
SHOWN = 5  # how many of them the evidence names

# The operator domains ONNX Runtime's standard build registers itself: the ONNX domains (""
# and its alias "ai.onnx", "ai.onnx.ml", and the training domains ONNX defines), and ONNX
# Runtime's own contrib operators ("com.microsoft", its NCHWc layout ops and experimental
# ops). Left out on purpose: "org.pytorch.aten" (runs PyTorch's ATen, only in builds with
# ATen support and PyTorch beside them), "ai.onnx.contrib" (onnxruntime-extensions, a library
# to register), and vendor domains that exist only with one execution provider
# ("com.microsoft.dml", "com.intel.ai", "com.xilinx").
STANDARD_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.training",
        "ai.onnx.preview.training",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
    }
)

# Protobuf wire types; groups (3, 4) are deprecated and never written by ONNX, but protobuf's
# parsers still skip them as unknown fields, and so does the scan.
_VARINT, _FIXED64, _LENGTH, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5
_FIXED_SIZES = {_FIXED64: 8, _FIXED32: 4}
_STRING, _NUMBER = "string", "number"
_DATA_LOCATION_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

# The fields read, by message: a message kind to descend into, a string or a number to keep.
# ModelProto: graph 7, opset_import 8, training_info 20, functions 25. TrainingInfoProto:
# initialization 1, algorithm 2. GraphProto: node 1, initializer 5, sparse_initializer 15.
# SparseTensorProto: values 1, indices 2. NodeProto: op_type 4, attribute 5, domain 7.
# AttributeProto: t 5, g 6, tensors 10, graphs 11 (the subgraphs of If, Loop, Scan),
# sparse_tensor 22, sparse_tensors 23. TensorProto: name 8, external_data 13, data_location
# 14. StringStringEntryProto: key 1, value 2. FunctionProto: name 1, node 7, domain 10,
# attribute_proto 11. OperatorSetIdProto: domain 1, version 2.
_SCHEMA: dict[str, dict[int, str]] = {
    "model": {7: "main graph", 8: "opset", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "main graph": {1: "node", 5: "tensor", 15: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "node": {4: _STRING, 5: "attribute", 7: _STRING},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "tensor": {8: _STRING, 13: "entry", 14: _NUMBER},
    "entry": {1: _STRING, 2: _STRING},
    "function": {1: _STRING, 7: "node", 10: _STRING, 11: "attribute"},
    "opset": {1: _STRING, 2: _NUMBER},
}

_DRIVE = re.compile(r"[A-Za-z]:")


class NotOnnx(ValueError):
    """The file breaks the protobuf wire format, or holds no graph; the message says how."""


class TooBig(ValueError):
    """The file holds more than the scan reads; the message says what."""


@dataclass
class _Fields:
    """The kept fields of one message being read."""

    strings: dict[int, str] = field(default_factory=dict)
    numbers: dict[int, int] = field(default_factory=dict)
    locations: list[str] = field(default_factory=list)  # a tensor's external-data locations


@dataclass
class OnnxContents:
    """What the scan needs from an ONNX file."""

    has_graph: bool = False
    # (tensor name, location, why) of the tensors whose external data a loader would read
    # from outside the model's directory (the first MAX_RECORDED), and how many there are
    external: list[tuple[str, str, str]] = field(default_factory=list)
    external_count: int = 0
    # (domain, op_type) of the nodes from a domain outside STANDARD_DOMAINS, and of every
    # function the model defines (the first MAX_RECORDED of each)
    operators: set[tuple[str, str]] = field(default_factory=set)
    functions: set[tuple[str, str]] = field(default_factory=set)
    opsets: dict[str, int] = field(default_factory=dict)
    malformed: str | None = None  # why protobuf's parser would refuse the file
    unfinished: str | None = None  # why the scan stopped before the end of the file


def _decoded(data: bytes) -> str:
    # surrogateescape: an invalid byte never turns into a "/" or "\\" the path check would see
    return data.decode("utf-8", errors="surrogateescape")


class _Wire:
    """The protobuf wire format read from a file handle through a window of its bytes: a
    field skipped past the window is never read (the next read seeks past it)."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size = size
        self.window = b""
        self.start = 0  # where in the file the window starts
        self.index = 0  # the position in the window
        self.fields = 0

    @property
    def position(self) -> int:
        return self.start + self.index

    def _fill(self, size: int) -> None:
        """Hold the next ``size`` bytes in the window."""
        if len(self.window) - self.index >= size:
            return
        position = self.start + self.index
        self.handle.seek(position)
        chunks, wanted = [], max(size, WINDOW_BYTES)
        while wanted > 0 and (chunk := self.handle.read(wanted)):
            chunks.append(chunk)
            wanted -= len(chunk)
        self.window, self.start, self.index = b"".join(chunks), position, 0
        if len(self.window) < size:
            raise NotOnnx("the file ends inside a field")

    def _read(self, size: int) -> bytes:
        self._fill(size)
        index = self.index
        self.index = index + size
        return self.window[index : index + size]

    def _skip(self, size: int, end: int) -> None:
        if self.position + size > end:
            raise NotOnnx(f"a field of {size:,} bytes runs past the end of its message")
        self.index += size

    def varint(self, end: int) -> int:
        window, index = self.window, self.index
        if index < len(window) and self.start + index < end and window[index] < 0x80:
            self.index = index + 1  # the common case: a one-byte number inside the window
            return window[index]
        return self._long_varint(end)

    def _long_varint(self, end: int) -> int:
        available = min(10, end - self.position)
        if available <= 0:
            raise NotOnnx("a number runs past the end of its message")
        self._fill(available)
        window, index = self.window, self.index
        result = 0
        for shift in range(0, 7 * available, 7):
            byte = window[index]
            index += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.index = index
                return result & 0xFFFF_FFFF_FFFF_FFFF
        if available < 10:
            raise NotOnnx("a number runs past the end of its message")
        raise NotOnnx("a number longer than ten bytes")

    def length(self, end: int) -> int:
        """A length-delimited field's length, checked against the end of its message."""
        size = self.varint(end)
        if self.position + size > end:
            where = "the file" if end == self.size else "its message"
            raise NotOnnx(f"a field of {size:,} bytes runs past the end of {where}")
        return size

    def string(self, end: int) -> str:
        """A string field, cut to its first MAX_STRING_BYTES."""
        size = self.length(end)
        data = self._read(min(size, MAX_STRING_BYTES))
        self._skip(size - len(data), end)
        return _decoded(data)

    def skip(self, number: int, wire: int, end: int, depth: int) -> None:
        """Pass a field not read: a number, bytes, a fixed-size value or a group."""
        if wire == _VARINT:
            self.varint(end)
        elif wire == _LENGTH:
            self._skip(self.length(end), end)
        elif wire in _FIXED_SIZES:
            self._skip(_FIXED_SIZES[wire], end)
        elif wire == _START_GROUP:
            self._skip_group(number, end, depth + 1)
        elif wire == _END_GROUP:
            raise NotOnnx(f"the end of a group (field {number}) that was never started")
        else:
            raise NotOnnx(f"a field of wire type {wire}, which protobuf does not have")

    def _skip_group(self, number: int, end: int, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise NotOnnx(f"messages nested more than {MAX_DEPTH} deep")
        while True:
            tag = self.tag(end)
            if tag == (number << 3 | _END_GROUP):
                return
            self.skip(tag >> 3, tag & 7, end, depth)

    def tag(self, end: int) -> int:
        """The next field's tag (its number and wire type), counted against MAX_FIELDS."""
        self.fields += 1
        if self.fields > MAX_FIELDS:
            raise TooBig(f"{MAX_FIELDS:,} fields")
        tag = self.varint(end)
        if tag >> 3 == 0:
            raise NotOnnx("a field numbered 0")
        return tag


class _Reader(_Wire):
    """Reads the kept fields of an ONNX file (``_SCHEMA``), skipping everything else."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        super().__init__(handle, size)
        self.contents = OnnxContents()
        self._finish: dict[str, Callable[[_Fields, _Fields], None]] = {
            "main graph": self._main_graph,
            "node": self._node,
            "tensor": self._tensor,
            "entry": self._entry,
            "function": self._function,
            "opset": self._opset,
        }

    def message(self, kind: str, end: int, depth: int) -> _Fields:
        """Read one message of ``kind`` up to ``end``: keep its strings and numbers, descend
        into the messages of ``_SCHEMA`` and skip every other field."""
        if depth > MAX_DEPTH:
            raise NotOnnx(f"messages nested more than {MAX_DEPTH} deep")
        schema, fields = _SCHEMA[kind], _Fields()
        while self.start + self.index < end:
            tag = self.tag(end)
            number, wire = tag >> 3, tag & 7
            target = schema.get(number)
            if target is None or wire != (_VARINT if target == _NUMBER else _LENGTH):
                # a field not read (or of a wire type its parser would not take for it)
                self.skip(number, wire, end, depth)
            elif target == _NUMBER:
                fields.numbers[number] = self.varint(end)
            elif target == _STRING:
                fields.strings[number] = self.string(end)
            else:
                size = self.length(end)
                child = self.message(target, self.position + size, depth + 1)
                if target in self._finish:
                    self._finish[target](child, fields)
        return fields

    def _main_graph(self, graph: _Fields, parent: _Fields) -> None:
        self.contents.has_graph = True

    def _node(self, node: _Fields, parent: _Fields) -> None:
        domain = node.strings.get(7, "")
        if domain not in STANDARD_DOMAINS and len(self.contents.operators) < MAX_RECORDED:
            self.contents.operators.add((domain, node.strings.get(4, "")))

    def _tensor(self, tensor: _Fields, parent: _Fields) -> None:
        locations = tensor.locations
        if not locations and tensor.numbers.get(14) == _DATA_LOCATION_EXTERNAL:
            locations = [""]  # stored elsewhere, with no file named: the directory itself
        for location in locations:
            why = location_problem(location)
            if why is None:
                continue
            self.contents.external_count += 1
            if len(self.contents.external) < MAX_RECORDED:
                self.contents.external.append((tensor.strings.get(8, ""), location, why))

    def _entry(self, entry: _Fields, tensor: _Fields) -> None:
        # Every location entry counts, wherever data_location says the data is: a reader may
        # take the last one, or the first.
        if entry.strings.get(1) != "location":
            return
        if len(tensor.locations) < MAX_LOCATIONS:
            tensor.locations.append(entry.strings.get(2, ""))
        else:  # a tensor naming its file again and again: the last one (which loaders take)
            tensor.locations[-1] = entry.strings.get(2, "")

    def _function(self, function: _Fields, parent: _Fields) -> None:
        if len(self.contents.functions) < MAX_RECORDED:
            self.contents.functions.add((function.strings.get(10, ""), function.strings.get(1, "")))

    def _opset(self, opset: _Fields, parent: _Fields) -> None:
        self.contents.opsets[opset.strings.get(1, "")] = opset.numbers.get(2, 0)


def read_onnx(handle: BinaryIO, size: int) -> OnnxContents:
    """What the scan needs from the ONNX file open in ``handle`` (``size`` bytes long, read
    from its start). A file that breaks the wire format keeps what was read before the break,
    with ``malformed`` saying what broke."""
    reader = _Reader(handle, size)
    try:
        reader.message("model", size, 0)
        if not reader.contents.has_graph:
            raise NotOnnx("it holds no graph")
    except NotOnnx as error:
        reader.contents.malformed = str(error)
    except TooBig as error:
        reader.contents.unfinished = str(error)
    return reader.contents


def location_problem(location: str) -> str | None:
    """Why an external-data ``location`` (relative to the directory of the .onnx file) would
    make a loader read outside that directory, or None. Backslashes count as separators, as
    they do on Windows."""
    if not location:
        return "names no file (the model's directory itself)"
    if "\x00" in location:
        return "holds a NUL byte"
    if len(location.encode("utf-8", errors="surrogateescape")) > MAX_PATH_BYTES:
        return "is longer than any path"
    unified = location.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        return "is an absolute path"
    depth = 0
    for part in unified.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return "leaves the model's directory"
        elif part not in ("", "."):
            depth += 1
    return None


def _shown(value: str) -> str:
    return repr(value if len(value) <= 200 else value[:200] + "...")


def _listed(items: list[str], total: int, separator: str = "; ") -> str:
    more = f" and {total - SHOWN:,} more" if total > SHOWN else ""
    return separator.join(items[:SHOWN]) + more


def external_data_problem(contents: OnnxContents) -> str | None:
    """The tensors whose external data a loader would read from outside the model's
    directory, in words, or None."""
    found = [
        f"tensor {_shown(tensor)} reads its data from {_shown(location)}, which {why}"
        for tensor, location, why in contents.external
    ]
    if contents.unfinished is not None:
        # what lies beyond was not checked: not taken as clean
        found.append(
            f"the scan stopped after {contents.unfinished}: the tensors after them are not checked"
        )
    if not found:
        return None
    return _listed(found, contents.external_count + (contents.unfinished is not None))


def custom_operators_problem(contents: OnnxContents) -> str | None:
    """The operators from domains outside ``STANDARD_DOMAINS`` that no function of the model
    defines, in words, or None."""
    by_domain: dict[str, list[str]] = defaultdict(list)
    for domain, op_type in sorted(contents.operators - contents.functions):
        by_domain[domain].append(_shown(op_type))
    if not by_domain:
        return None
    described = []
    for domain, op_types in by_domain.items():
        opset = contents.opsets.get(domain)
        version = f" (opset {opset})" if opset is not None else ""
        described.append(f"{_shown(domain)}{version}: " + _listed(op_types, len(op_types), ", "))
    return "operators from custom domains: " + _listed(described, len(described))


class OnnxScanner:
    """ONNX models: external data outside the model's directory, custom operator domains."""

    name = "onnx"

    def applies_to(self, name: str) -> bool:
        return name.lower().endswith(".onnx")

    def before_import(self, paths: list[str]) -> str | None:
        return (
            f"{len(paths)} ONNX file(s) ({', '.join(paths[:5])}): loading reads the external "
            "data files they name, and custom operators need native libraries. The import "
            "refuses data read from outside the model's directory (policy rule "
            "onnx_external_data) and warns about custom operator domains (onnx_custom_ops)."
        )

    def scan(self, path: Path, name: str) -> list[Finding]:
        with path.open("rb", buffering=0) as handle:
            contents = read_onnx(handle, os.fstat(handle.fileno()).st_size)
        scanner = own_scanner(self.name)
        findings = []
        if (why := external_data_problem(contents)) is not None:
            severity = DANGEROUS if contents.external else SUSPICIOUS  # (or not checked)
            findings.append(Finding(name, RULE_ONNX_EXTERNAL_DATA, severity, why, scanner))
        if (why := custom_operators_problem(contents)) is not None:
            findings.append(Finding(name, RULE_ONNX_CUSTOM_OPS, WARNING, why, scanner))
        if contents.malformed is not None:
            why = f"not a valid ONNX file: {contents.malformed}"
            findings.append(Finding(name, RULE_MALFORMED_WEIGHTS, WARNING, why, scanner))
        return findings
