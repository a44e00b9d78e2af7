"""Repos whose models need ``trust_remote_code``: Python files that transformers would import.

transformers runs a repo's own Python code when a config names a class through ``auto_map``
(``"AutoModel": "modeling_x.XModel"``, or ``"other/repo--modeling_x.XModel"`` for code from
another repo) and the caller passes ``trust_remote_code=True``. What is found: every Python
file in the selection (its path and sha256) and every ``auto_map`` entry of the configs
(``imports.formats.AUTO_MAP_CONFIGS``). Nothing is imported or run here.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imports.formats import AUTO_MAP_CONFIGS, is_python_code
from imports.scanners.base import WARNING, Finding, own_scanner
from registry.policy import RULE_REMOTE_CODE

SCANNER = "aegis remote-code"
MAX_CONFIG_BYTES = 5 * 1024 * 1024
MAX_SOURCE_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class RemoteCode:
    """Python files (path, sha256) and auto_map entries (config, class, code reference)."""

    python_files: tuple[tuple[str, str], ...] = ()
    auto_map: tuple[tuple[str, str, str], ...] = ()

    def describe(self) -> str:
        """The finding in words: what would run, and where it comes from."""
        parts = []
        if self.auto_map:
            shown = "; ".join(f"{name} {kind} -> {ref}" for name, kind, ref in self.auto_map[:5])
            parts.append(f"auto_map names code to load with trust_remote_code ({shown})")
        if self.python_files:
            shown = ", ".join(path for path, _ in self.python_files[:5])
            more = len(self.python_files) - 5
            parts.append(
                f"{len(self.python_files)} Python file(s): {shown}"
                + (f" and {more} more" if more > 0 else "")
            )
        return "; ".join(parts)

    def findings(self) -> list[Finding]:
        """The finding for each Python file and each auto_map entry."""
        scanner = own_scanner("remote-code")
        found = [
            Finding(path, RULE_REMOTE_CODE, WARNING,
                    f"Python source (sha256 {sha256}) that transformers imports when the model "
                    "is loaded with trust_remote_code=True", scanner)
            for path, sha256 in self.python_files
        ]  # fmt: skip
        found += [
            Finding(name, RULE_REMOTE_CODE, WARNING,
                    f"auto_map names {reference} as the code of {kind}", scanner)
            for name, kind, reference in self.auto_map
        ]  # fmt: skip
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "scanner": SCANNER,
            "python_files": [
                {"path": path, "sha256": sha256} for path, sha256 in self.python_files
            ],
            "auto_map": [
                {"config": name, "class": kind, "code": ref} for name, kind, ref in self.auto_map
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RemoteCode:
        return cls(
            python_files=tuple((item["path"], item["sha256"]) for item in data["python_files"]),
            auto_map=tuple(
                (item["config"], item["class"], item["code"]) for item in data["auto_map"]
            ),
        )


def is_python_source(path: Path, name: str) -> bool:
    """Whether ``name`` is a ``.py`` file whose bytes parse as Python (compiled to a syntax
    tree, never run). A pickle named ``.py`` does not parse, and is scanned as one."""
    if not is_python_code(name):
        return False
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            return False
        ast.parse(path.read_bytes(), filename=name)
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _auto_map_entries(name: str, path: Path) -> list[tuple[str, str, str]]:
    """The config's auto_map as (config, class, reference); a config that is not a JSON object
    (or too large to be one) names none."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return []
        config = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return []
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    if not isinstance(auto_map, dict):
        return []
    entries = []
    for kind, reference in sorted(auto_map.items()):
        references = reference if isinstance(reference, list) else [reference]
        for item in references:
            if isinstance(item, str) and item:
                entries.append((name, str(kind), item))
    return entries


def find_remote_code(files: Mapping[str, Path], sha256: Mapping[str, str]) -> RemoteCode | None:
    """What in these files (repo path -> local file) would run with trust_remote_code, or None.

    ``sha256``: each file's digest as checked against the Hub."""
    python_files = tuple((path, sha256[path]) for path in sorted(files) if is_python_code(path))
    auto_map: list[tuple[str, str, str]] = []
    for name in AUTO_MAP_CONFIGS:
        if name in files:
            auto_map.extend(_auto_map_entries(name, files[name]))
    if not python_files and not auto_map:
        return None
    return RemoteCode(python_files=python_files, auto_map=tuple(auto_map))
