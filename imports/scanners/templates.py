"""Chat templates that reach Python internals: GGUF metadata and ``tokenizer_config.json``.

A chat template is Jinja2, rendered by the loader (llama.cpp's Python bindings, transformers)
whenever a prompt is built. Jinja's sandbox is the only thing between a template and the
interpreter, and templates that climb from an object to its class, its subclasses or a
function's globals (``''.__class__.__mro__[1].__subclasses__()``) have escaped it before.
Real chat templates never need an attribute that starts with an underscore, nor ``os``,
``eval`` or ``import``: such a template is dangerous.

GGUF files are read header first, key by key (``gguf_chat_templates``): only the metadata is
parsed, arrays are skipped without being held, and the tensors are never read.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from imports.scanners.base import DANGEROUS, Finding, own_scanner
from registry.policy import RULE_TEMPLATE_INJECTION

TEMPLATE_KEY = "tokenizer.chat_template"
MAX_CONFIG_BYTES = 5 * 1024 * 1024
MAX_STRING_BYTES = 16 * 1024 * 1024  # a GGUF string longer than this is not metadata
MAX_KEYS = 100_000
GGUF_MAGIC = b"GGUF"

# What a template has no business reaching: dunder attributes (the sandbox escapes all go
# through them), the names of modules and builtins that run code.
REACHES_PYTHON = re.compile(
    r"__\w+__|\b(?:os|sys|subprocess|builtins|importlib|posix)\b\s*[.\[]|"
    r"\b(?:eval|exec|compile|getattr|__import__|popen|system)\s*\(",
)

# GGUF value types (gguf spec): fixed sizes, 8 = string, 9 = array.
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class NotGGUF(ValueError):
    """The file is not a GGUF file this reader understands; the message says why."""


def template_problem(template: str) -> str | None:
    """What in the template reaches Python internals, or None."""
    found = sorted({match.group(0).strip() for match in REACHES_PYTHON.finditer(template)})
    if not found:
        return None
    return "its chat template reaches Python internals (" + ", ".join(found[:8]) + ")"


def _read(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise NotGGUF("the metadata ends before the file says it does")
    return data


def _string(handle: BinaryIO, *, keep: bool) -> str:
    (length,) = struct.unpack("<Q", _read(handle, 8))
    if length > MAX_STRING_BYTES:
        raise NotGGUF(f"a metadata string of {length:,} bytes")
    if not keep:
        handle.seek(length, 1)
        return ""
    return _read(handle, length).decode("utf-8", errors="replace")


def _skip_value(handle: BinaryIO, kind: int) -> None:
    if kind in _FIXED:
        handle.seek(_FIXED[kind], 1)
    elif kind == _STRING:
        _string(handle, keep=False)
    elif kind == _ARRAY:
        item_kind, count = struct.unpack("<IQ", _read(handle, 12))
        if item_kind in _FIXED:
            handle.seek(_FIXED[item_kind] * count, 1)
        else:
            for _ in range(count):
                _skip_value(handle, item_kind)
    else:
        raise NotGGUF(f"an unknown metadata value type {kind}")


def gguf_metadata_strings(path: Path) -> Iterator[tuple[str, str]]:
    """The (key, value) of the GGUF file's string metadata whose key names a chat template."""
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise NotGGUF("no GGUF magic")
        (version,) = struct.unpack("<I", _read(handle, 4))
        if version not in (2, 3):
            raise NotGGUF(f"GGUF version {version}")
        _tensors, keys = struct.unpack("<QQ", _read(handle, 16))
        if keys > MAX_KEYS:
            raise NotGGUF(f"{keys:,} metadata keys")
        for _ in range(keys):
            key = _string(handle, keep=True)
            (kind,) = struct.unpack("<I", _read(handle, 4))
            if kind == _STRING and key.startswith(TEMPLATE_KEY):
                yield key, _string(handle, keep=True)
            else:
                _skip_value(handle, kind)


def gguf_template_problem(path: Path) -> str | None:
    """What is wrong with a GGUF file's chat templates, or None (also for a file whose
    metadata cannot be read: the format's loader refuses it, and no template of it runs)."""
    try:
        for key, template in gguf_metadata_strings(path):
            if (problem := template_problem(template)) is not None:
                return f"{key}: {problem}"
    except (NotGGUF, OSError, struct.error):
        return None
    return None


def config_template_problem(path: Path) -> str | None:
    """The same for ``tokenizer_config.json``'s ``chat_template`` (a string, or a list of
    ``{"name", "template"}``)."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return None
        config = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    templates = config.get("chat_template") if isinstance(config, dict) else None
    if isinstance(templates, str):
        templates = [{"name": "default", "template": templates}]
    for item in templates if isinstance(templates, list) else []:
        template = item.get("template") if isinstance(item, dict) else None
        if isinstance(template, str) and (problem := template_problem(template)) is not None:
            return f"chat_template {item.get('name', '')!s}: {problem}".replace("  ", " ")
    return None


def chat_template_problem(path: Path, name: str) -> str | None:
    """What is dangerous in the chat templates of this file (by its name: ``*.gguf`` or
    ``tokenizer_config.json``), or None."""
    lowered = name.lower()
    if lowered.endswith(".gguf"):
        return gguf_template_problem(path)
    if lowered.rsplit("/", 1)[-1] == "tokenizer_config.json":
        return config_template_problem(path)
    return None


class ChatTemplateScanner:
    """GGUF files and ``tokenizer_config.json``: a chat template reaching Python internals."""

    name = "chat-template"

    def applies_to(self, name: str) -> bool:
        return name.lower().endswith(".gguf") or name.rsplit("/", 1)[-1] == "tokenizer_config.json"

    def before_import(self, paths: list[str]) -> str | None:
        gguf = [path for path in paths if path.lower().endswith(".gguf")]
        if not gguf:
            return None  # (every transformers repo has a tokenizer_config.json)
        return (
            f"{len(gguf)} GGUF file(s) ({', '.join(gguf[:5])}): their chat templates run "
            "whenever a prompt is built. The import reads them and refuses one that reaches "
            "Python internals (policy rule template_injection)."
        )

    def scan(self, path: Path, name: str) -> list[Finding]:
        why = chat_template_problem(path, name)
        if why is None:
            return []
        return [Finding(name, RULE_TEMPLATE_INJECTION, DANGEROUS, why, own_scanner(self.name))]
