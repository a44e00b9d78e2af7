"""What Aegis knows about model file formats by name: the one list of pickle-based suffixes.

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
