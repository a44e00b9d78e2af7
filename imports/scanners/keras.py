"""Keras models that carry Python code: ``Lambda`` layers and serialised functions.

Loading a Keras model rebuilds every layer from its config. A ``Lambda`` layer carries its
function as marshalled Python bytecode (``__lambda__`` in Keras 3; ``function`` as [base64
bytecode, defaults, closure] with ``function_type: lambda`` in Keras 2, and ``output_shape``
likewise), which ``load_model`` runs unless ``safe_mode`` holds, and Keras 2 had no safe mode.
A ``TFOpLambda`` layer calls a TensorFlow function named in the config.

Two formats, told apart by their bytes:

- ``.keras``: a zip of ``config.json`` (the model's structure), ``metadata.json`` and the
  weights; only ``config.json`` is read.
- HDF5 (``.h5``, ``.hdf5``; tf.keras also writes it under a ``.keras`` name when the v3 format
  is off, and loads any HDF5 file as one): the root attributes ``model_config`` (the structure)
  and ``training_config`` (the loss, metrics and optimizer given to ``compile``, rebuilt by the
  same ``deserialize_keras_object`` when ``load_model`` compiles, as it does by default), both
  JSON. Only those two attributes are read, through a file object that refuses to read more
  than a budget: the datasets (the weights) are never read, and a file cannot make the scan
  read or allocate more than ``MAX_CONFIG_BYTES`` and some metadata, whatever its headers say.
  The HDF5 library reads them in a child process, which a file that hangs or crashes the
  library takes down instead of the worker.

A file neither format's reader can open is not loadable as a Keras model: no finding.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imports.scanners.base import DANGEROUS, Finding, own_scanner
from registry.policy import RULE_KERAS_CODE

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
MAX_CONFIG_BYTES = 16 * 1024 * 1024
# What opening an HDF5 file may read (the superblock, the root group's object header), and what
# reading one attribute may read beyond the attribute itself (its index, the heap holding it).
MAX_HDF5_METADATA_BYTES = 4 * 1024 * 1024
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_CONFIG_ATTRIBUTES = ("model_config", "training_config")
CODE_LAYERS = frozenset({"Lambda", "TFOpLambda"})
# Keys of a Keras 2 config saying the value beside them is a marshalled function.
FUNCTION_TYPE_KEYS = ("function_type", "output_shape_type")
CODE_PREFIX = "Python code that load_model can run: "
# The HDF5 file is read in a child process (``_hdf5_problem``), started with this code.
HDF5_READ_SECONDS = 60
PROJECT_ROOT = Path(__file__).resolve().parents[2]
HDF5_CHILD_CODE = (
    "import sys; from imports.scanners.keras import _hdf5_child; _hdf5_child(sys.argv[1])"
)


def _code_layer(node: dict[str, Any], name: str) -> str | None:
    if node.get("class_name") not in CODE_LAYERS:
        return None
    config = node.get("config")
    function = config.get("function") if isinstance(config, dict) else None
    calls = f" calling {function!r}" if isinstance(function, str) else ""
    return f"{node['class_name']} layer {name!r}{calls}"


def _code_carriers(node: Any, where: str = "") -> Iterator[str]:
    """Where in the config Python code is carried: Lambda layers, serialised lambdas."""
    if isinstance(node, list):
        for item in node:
            yield from _code_carriers(item, where)
        return
    if not isinstance(node, dict):
        return
    config = node.get("config")
    name = str((config.get("name") if isinstance(config, dict) else None) or where)
    if (layer := _code_layer(node, name)) is not None:
        yield layer
    elif node.get("class_name") == "__lambda__" or any(
        node.get(key) == "lambda" for key in FUNCTION_TYPE_KEYS
    ):
        yield f"a serialised Python function in {name!r}"
    for value in node.values():
        yield from _code_carriers(value, name)


def _carriers_in(text: str | bytes) -> list[str]:
    """The code carriers of a JSON config; none when it is not JSON (its loader fails first).
    Bytes are read as ``json.loads`` reads them (UTF-8, -16 or -32), as Keras reads
    ``config.json``."""
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        return []
    try:
        return sorted(set(_code_carriers(config)))
    except RecursionError:
        return ["a config nested too deeply to follow"]


def _archive_problem(path: Path) -> str | None:
    """What Python code a ``.keras`` zip's ``config.json`` carries."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                return f"its config.json is {info.file_size:,} bytes; not read"
            found = _carriers_in(archive.read(info))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return None
    return "it carries " + CODE_PREFIX + "; ".join(found[:5]) if found else None


def hdf5_superblock_offset(path: Path) -> int | None:
    """Where the HDF5 signature is: at 0, or after a user block at 512, 1024, 2048... (where
    the HDF5 library looks, so h5py opens such a file too); None when it is at none of them."""
    size = path.stat().st_size
    offset = 0
    with path.open("rb") as handle:
        while offset + len(HDF5_SIGNATURE) <= size:
            handle.seek(offset)
            if handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return offset
            offset = offset * 2 if offset else 512
    return None


class ReadBudgetExceeded(Exception):
    """HDF5 asked for more bytes than the scan allows itself to read."""


class HDF5ReaderFailed(Exception):
    """The child process reading an HDF5 file failed for a reason of its own (not the file's):
    it could not start, or import this module."""


class ConfigTooLarge(Exception):
    """A Keras config over what the scan reads: what load_model would build from it is
    unknown."""

    def __init__(self, attribute: str) -> None:
        super().__init__(f"its {attribute} attribute is over {MAX_CONFIG_BYTES:,} bytes; not read")


class BoundedReader(io.RawIOBase):
    """The file as HDF5 reads it (h5py's file-object driver): every read is counted, and one
    that would pass ``remaining`` is refused before a byte is read, so no header in the file
    can make the scan read (or fill memory with) more. A disk error is kept apart from what
    the HDF5 library makes of the bytes."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self.raw = raw
        self.remaining = MAX_HDF5_METADATA_BYTES
        self.bytes_read = 0
        self.disk_error: OSError | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def readinto(self, buffer: Any) -> int:
        wanted = memoryview(buffer).nbytes
        if wanted > self.remaining:
            raise ReadBudgetExceeded(f"{wanted:,} bytes asked, {self.remaining:,} left")
        try:
            count = self.raw.readinto(buffer)
        except OSError as error:
            self.disk_error = error
            raise
        self.remaining -= count
        self.bytes_read += count
        return count


def _h5py() -> Any:
    """h5py, imported where HDF5 is read (the child process): not in every worker that only
    imports the scanners (it and numpy cost some 20 MiB of resident memory)."""
    import h5py

    return h5py


def _attribute_text(file: Any, attribute: str, reader: BoundedReader) -> str | None:
    """A root attribute as load_model reads it: a scalar string (str, or bytes it decodes as
    UTF-8); None when it is absent or load_model could not read it as JSON text."""
    reader.remaining = MAX_CONFIG_BYTES + MAX_HDF5_METADATA_BYTES
    try:
        if attribute not in file.attrs:
            return None
        handle = file.attrs.get_id(attribute)
        if handle.shape != () or _h5py().check_string_dtype(handle.dtype) is None:
            return None
        # A fixed-length string's size is known before reading it; a variable-length one's
        # only from the heap holding it, which the reader's budget bounds.
        if handle.get_storage_size() > MAX_CONFIG_BYTES:
            raise ConfigTooLarge(attribute)
        value = file.attrs[attribute]
    except ReadBudgetExceeded:
        raise ConfigTooLarge(attribute) from None
    if not isinstance(value, str | bytes):
        return None
    if len(value) > MAX_CONFIG_BYTES:
        raise ConfigTooLarge(attribute)
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _attribute_problem(file: Any, attribute: str, reader: BoundedReader) -> str | None:
    """What Python code one config attribute carries. Each is judged alone: load_model builds
    the model (running its Lambda layers) before it reads ``training_config``."""
    try:
        text = _attribute_text(file, attribute, reader)
    except ConfigTooLarge as error:
        return str(error)
    except Exception:
        if reader.disk_error is not None:
            raise
        return None  # h5py cannot read it: nor can load_model, which reads it with h5py
    found = _carriers_in(text) if text is not None else []
    return f"its {attribute} carries " + CODE_PREFIX + "; ".join(found[:5]) if found else None


def hdf5_problem_here(path: Path) -> str | None:
    """What Python code an HDF5 Keras model's configs (``HDF5_CONFIG_ATTRIBUTES``) carry, read
    in this process (``_hdf5_problem`` runs it in a child); only those root attributes are
    read, through a ``BoundedReader``."""
    with path.open("rb") as raw:
        reader = BoundedReader(raw)
        try:
            with _h5py().File(reader, "r") as file:
                problems = [
                    _attribute_problem(file, attribute, reader)
                    for attribute in HDF5_CONFIG_ATTRIBUTES
                ]
        except Exception as error:
            # The HDF5 library raises many kinds of error on bytes it cannot follow (OSError,
            # KeyError, RuntimeError...): a file it cannot open is no Keras model.
            if reader.disk_error is not None:
                raise reader.disk_error from error
            if isinstance(error, ReadBudgetExceeded):
                return (
                    f"its root group's headers are over {MAX_HDF5_METADATA_BYTES:,} bytes; not read"
                )
            return None
    return "; ".join(problem for problem in problems if problem) or None


def _hdf5_child(path: str, *, exit: bool = True) -> None:
    """The child's side of ``_hdf5_problem``: the answer as JSON on stdout, a disk error too;
    then the child ends at once (``os._exit``): the HDF5 library's own clean-up at exit can
    crash on a file whose reads failed, and the answer is already given."""
    try:
        answer = {"problem": hdf5_problem_here(Path(path))}
    except OSError as error:
        answer = {"disk_error": f"{path}: {error}"}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    if exit:
        os._exit(0)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _hdf5_problem(path: Path) -> str | None:
    """``hdf5_problem_here`` in a child process. The HDF5 library is C code: a crafted file can
    send it into an endless loop while it holds the interpreter (a global heap whose object
    sizes never advance hangs HDF5 2.0 reading any vlen string attribute), or crash it; the
    worker outlives both, and the file is judged unread. The child gets no secrets (of the
    environment only PATH) and no more than ``HDF5_READ_SECONDS``."""
    command = [sys.executable, "-c", HDF5_CHILD_CODE, str(path.absolute())]
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PROJECT_ROOT)}
    environment.update(OPENBLAS_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run(
            command, cwd=PROJECT_ROOT, env=environment, capture_output=True, check=False,
            timeout=HDF5_READ_SECONDS,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"the HDF5 library did not finish reading it in {HDF5_READ_SECONDS} s; not read"
    if done.returncode < 0:
        return f"the HDF5 library crashed reading it ({_signal_name(-done.returncode)}); not read"
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        answer = None
    if done.returncode != 0 or not isinstance(answer, dict):
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise HDF5ReaderFailed(f"the HDF5 reader of {path.name} failed: {last[0]}")
    if "disk_error" in answer:
        raise OSError(str(answer["disk_error"]))
    problem = answer.get("problem")
    if problem is not None and not isinstance(problem, str):
        raise HDF5ReaderFailed(f"the HDF5 reader of {path.name} answered {problem!r}")
    return problem


def keras_problem(path: Path, name: str) -> str | None:
    """What Python code a Keras model file carries, or None (also for a file its loader could
    not open: no layer of it is ever built). A ``.keras`` name holds a zip or, as tf.keras
    writes and loads it with the v3 format off, HDF5; ``.h5`` and ``.hdf5`` hold HDF5."""
    lowered = name.lower()
    if not lowered.endswith(KERAS_SUFFIXES):
        return None
    problems = []
    if lowered.endswith(".keras") and zipfile.is_zipfile(path):
        problems.append(_archive_problem(path))
    if hdf5_superblock_offset(path) is not None:
        problems.append(_hdf5_problem(path))
    return "; ".join(problem for problem in problems if problem) or None


class KerasScanner:
    """Keras models: Python code a ``.keras`` archive's or an HDF5 model's config carries."""

    name = "keras"

    def applies_to(self, name: str) -> bool:
        return name.lower().endswith(KERAS_SUFFIXES)

    def before_import(self, paths: list[str]) -> str | None:
        return (
            f"{len(paths)} Keras file(s) ({', '.join(paths[:5])}): a Lambda layer in their "
            "config is Python code that loading runs. The import reads the config and refuses "
            "such code (policy rule keras_code)."
        )

    def scan(self, path: Path, name: str) -> list[Finding]:
        why = keras_problem(path, name)
        if why is None:
            return []
        return [Finding(name, RULE_KERAS_CODE, DANGEROUS, why, own_scanner(self.name))]
