"""The one shape every scanner answers in: findings (file, rule, severity, evidence, scanner).

A file scanner takes one downloaded file (its local path and its path in the repo) and returns
what it found in it; a repo scanner (remote code) looks at the selection as a whole. Each
finding names the policy rule that judges it (``registry.policy``), how bad it is, the evidence
in words, and the scanner that found it with its version, so that ``aegis.json``, the signed
provenance statement and the version page can say who found what.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Protocol

# What loading, rendering or running the file can do: run code the file's author chose
# (dangerous), perhaps run it, the scanner cannot tell (suspicious), or something that is not
# code execution by itself but needs a decision (warning: a broken weights file, code that runs
# only with trust_remote_code=True, an operator library the loader must be given).
DANGEROUS, SUSPICIOUS, WARNING = "dangerous", "suspicious", "warning"
SEVERITIES = (DANGEROUS, SUSPICIOUS, WARNING)


@dataclass(frozen=True, order=True)
class Finding:
    path: str  # the file in the repo
    rule: str  # the registry.policy rule that judges it
    severity: str  # one of SEVERITIES
    evidence: str  # what was found, in words
    scanner: str  # name and version, "fickling 0.1.12"

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        return cls(**{key: str(data[key]) for key in cls.__dataclass_fields__})


class FileScanner(Protocol):
    """A scanner of one file: ``applies_to`` decides from the repo path (and may be called on
    every file), ``scan`` reads the file without loading it whole into memory."""

    name: str

    def applies_to(self, name: str) -> bool: ...

    def scan(self, path: Path, name: str) -> list[Finding]: ...

    def before_import(self, paths: list[str]) -> str | None:
        """What the Hub model page says about these files (those ``applies_to`` takes) before
        anyone imports them, or None."""
        ...


@cache
def library_version(distribution: str) -> str:
    """``"<distribution> <version>"`` of an installed library, as a finding's scanner."""
    try:
        return f"{distribution} {package_version(distribution)}"
    except PackageNotFoundError:
        return f"{distribution} (version unknown)"


def own_scanner(name: str) -> str:
    """A scanner written in Aegis, named with Aegis's version: ``"aegis gguf 0.1.0"``."""
    return f"aegis {name} {library_version('aegis-catalog').rpartition(' ')[2]}"
