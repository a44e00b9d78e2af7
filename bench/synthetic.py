"""Synthetic model repos for the benchmarks: safetensors-like shards of random bytes, plus
compressible JSON (config, tokenizer) and text (README, merges), like a real Hub repo.

Random tensor bytes are what trained weights look like to a compressor (gzip gains little on
them); the JSON and text are the small, compressible rest. The same seed and size give the
same bytes. No network, no model download.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

MiB = 1024 * 1024
MAX_SHARD = 512 * MiB
WRITE_CHUNK = 16 * MiB


def _safetensors_header(tensor_bytes: int, index: int) -> bytes:
    """A valid safetensors header for one flat uint8 tensor of `tensor_bytes` bytes."""
    header = {
        "__metadata__": {"format": "pt", "shard": str(index)},
        f"model.layers.{index}.weight": {
            "dtype": "U8",
            "shape": [tensor_bytes],
            "data_offsets": [0, tensor_bytes],
        },
    }
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded


def _vocabulary(generator: np.random.Generator, count: int) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = generator.integers(2, 9, size=count)
    return ["".join(generator.choice(letters, size=int(length))) for length in lengths]


def make_repo(directory: Path, size_bytes: int, *, seed: int = 0) -> dict[str, Path]:
    """Write a repo of about `size_bytes` into `directory`; return {repo path: file}."""
    directory.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(seed)
    files: dict[str, Path] = {}

    # About 2% compressible JSON and text (at least a few hundred KiB).
    words = _vocabulary(generator, 20_000)
    text_budget = max(512 * 1024, size_bytes // 50)
    vocab = {word: index for index, word in enumerate(dict.fromkeys(words))}
    merges = [f"{a} {b}" for a, b in zip(words[::2], words[1::2], strict=False)]
    tokenizer: dict[str, Any] = {
        "version": "1.0",
        "model": {"type": "BPE", "vocab": vocab, "merges": merges},
    }
    tokenizer_bytes = json.dumps(tokenizer, indent=2).encode()
    repeat = max(1, (text_budget // 2) // len(tokenizer_bytes))
    tokenizer["added_tokens"] = [
        {"id": len(vocab) + index, "content": f"<extra_{index}>", "special": True}
        for index in range(repeat * 2000)
    ]
    small = {
        "config.json": json.dumps(
            {"architectures": ["BenchModel"], "hidden_size": 4096, "num_hidden_layers": 32},
            indent=2,
        ).encode(),
        "tokenizer.json": json.dumps(tokenizer, indent=2).encode(),
        "merges.txt": ("#version: 0.2\n" + "\n".join(merges) + "\n").encode() * repeat,
        "README.md": (
            "---\nlicense: apache-2.0\npipeline_tag: text-generation\n---\n# Bench model\n\n"
            + " ".join(words) * repeat
            + "\n"
        ).encode(),
    }
    for name, data in small.items():
        path = directory / name
        path.write_bytes(data)
        files[name] = path

    remaining = max(MiB, size_bytes - sum(len(data) for data in small.values()))
    shards = max(1, -(-remaining // MAX_SHARD))
    per_shard = remaining // shards
    for index in range(shards):
        name = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        path = directory / name
        header = _safetensors_header(per_shard, index)
        tensor_bytes = per_shard - len(header)
        header = _safetensors_header(tensor_bytes, index)
        with path.open("wb") as handle:
            handle.write(header)
            left = tensor_bytes
            while left:
                count = min(WRITE_CHUNK, left)
                handle.write(generator.bytes(count))
                left -= count
        files[name] = path
    return files
