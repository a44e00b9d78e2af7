"""What the scan runs over the downloaded files: checks that prove a file is what it claims
to be, and scanners that say what a loader would run.

Every format scanner answers in findings (``imports.scanners.base.Finding``); the scan runs each
one whose ``applies_to`` takes the file's name. The pickle scanners (``imports.scanners.pickles``)
run on every file not proven safe, whatever its name.
"""

from __future__ import annotations

from imports.scanners.base import FileScanner
from imports.scanners.keras import KerasScanner
from imports.scanners.onnx import OnnxScanner
from imports.scanners.templates import ChatTemplateScanner

FILE_SCANNERS: tuple[FileScanner, ...] = (
    ChatTemplateScanner(),
    KerasScanner(),
    OnnxScanner(),
)


def format_scanners(name: str) -> list[FileScanner]:
    """The format scanners that read a file of this name."""
    return [scanner for scanner in FILE_SCANNERS if scanner.applies_to(name)]
