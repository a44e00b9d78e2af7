"""What Aegis knows about model file formats by name: the one list of pickle-based suffixes,
and the files that make a repo need ``trust_remote_code``.

The Hub model page warns about these files, the "safetensors only" policy refuses them before
download, and the scan stage scans them (besides any file whose bytes are pickle content).
"""

from __future__ import annotations

# Formats whose loaders run pickle: PyTorch checkpoints, pickle/joblib/dill dumps (.dat, .data,
# .sav and .p are common names for them), numpy arrays of objects (.npy, and the zip of them
# .npz). The scan does not rely on names: any file not proven safe is scanned.
PICKLE_SUFFIXES = (
    ".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill", ".npy", ".npz",
    ".dat", ".data", ".sav", ".p",
)  # fmt: skip


def is_pickle_format(path: str) -> bool:
    """True when the file's name says it is pickle-based (case does not matter)."""
    return path.lower().endswith(PICKLE_SUFFIXES)


# Python files transformers imports from a repo when trust_remote_code=True, and the configs
# whose auto_map names them.
PYTHON_SUFFIXES = (".py",)
AUTO_MAP_CONFIGS = ("config.json", "tokenizer_config.json")


def is_python_code(path: str) -> bool:
    """True for a Python source file (case does not matter)."""
    return path.lower().endswith(PYTHON_SUFFIXES)
