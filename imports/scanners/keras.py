"""Keras archives (``.keras``) that carry Python code: ``Lambda`` layers and serialised functions.

A ``.keras`` file is a zip: ``config.json`` (the model's structure), ``metadata.json`` and the
weights. Loading it rebuilds every layer from ``config.json``; a ``Lambda`` layer carries its
function as marshalled Python bytecode (``__lambda__``, or ``function_type: lambda`` in older
files), which ``load_model`` runs unless ``safe_mode`` holds, and older Keras versions had no
safe mode. Only ``config.json`` is read here (the weights are never opened or loaded).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imports.scanners.base import DANGEROUS, Finding, own_scanner
from registry.policy import RULE_KERAS_CODE

MAX_CONFIG_BYTES = 16 * 1024 * 1024
CODE_LAYERS = frozenset({"Lambda", "TFOpLambda"})


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
    if node.get("class_name") in CODE_LAYERS:
        yield f"{node['class_name']} layer {name!r}"
    elif node.get("class_name") == "__lambda__" or node.get("function_type") == "lambda":
        yield f"a serialised Python function in {name!r}"
    for value in node.values():
        yield from _code_carriers(value, name)


def keras_problem(path: Path, name: str) -> str | None:
    """What Python code a ``.keras`` archive carries, or None (also for an archive its loader
    could not open: no layer of it is ever built)."""
    if not name.lower().endswith(".keras"):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                return f"its config.json is {info.file_size:,} bytes; not read"
            config = json.loads(archive.read(info))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return None
    found = sorted(set(_code_carriers(config)))
    if not found:
        return None
    return "it carries Python code that load_model can run: " + "; ".join(found[:5])


class KerasScanner:
    """Keras models: Python code a ``.keras`` archive's config carries."""

    name = "keras"

    def applies_to(self, name: str) -> bool:
        return name.lower().endswith(".keras")

    def scan(self, path: Path, name: str) -> list[Finding]:
        why = keras_problem(path, name)
        if why is None:
            return []
        return [Finding(name, RULE_KERAS_CODE, DANGEROUS, why, own_scanner(self.name))]
