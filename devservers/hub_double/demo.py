"""Demo repos: a few realistic small models (a BERT with two commits and a tag, pickles safe
and hostile, a gated, a private and a card-less repo, a card with hostile HTML) and 30 plain
ones for paging and sorting. The table below is the data; `demo_repos` adds it in order, so
the commit shas are the same on every run."""

from __future__ import annotations

import functools
import json
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devservers.hub_double.double import HubDouble

# A file's bytes or text, or a function making the bytes when the repo is added (so
# importing this module neither imports numpy nor pickles the exploit).
FileContent = bytes | str | Callable[[], bytes]


@functools.cache
def safetensors_bytes(seed: int, shape: tuple[int, ...] = (4, 8)) -> bytes:
    """Small, valid safetensors weights, the same for the same seed and shape."""
    import numpy as np
    from safetensors.numpy import save

    generator = np.random.default_rng(seed)
    tensors = {
        "embeddings.weight": generator.standard_normal(shape).astype(np.float32),
        "classifier.bias": np.arange(shape[0], dtype=np.float32),
    }
    return save(tensors, metadata={"format": "np"})


class _Exploit:
    """Pickles to a call of os.system: what a pickle scanner must flag (never unpickle it)."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import os

        return (os.system, ("echo owned-by-pickle",))


def _exploit_pickle() -> bytes:
    return pickle.dumps({"weights": _Exploit()}, protocol=2)


def _weights(seed: int, shape: tuple[int, ...] = (4, 8)) -> Callable[[], bytes]:
    return functools.partial(safetensors_bytes, seed, shape)


GITATTRIBUTES = (
    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    "*.pt filter=lfs diff=lfs merge=lfs -text\n"
)

HOSTILE_CARD = """
# Totally normal model

<script>alert(1)</script>

<img src=x onerror=alert(1)>

[click me](javascript:alert(1)) and <a href="javascript:alert(1)">this link</a>

<iframe src="https://example.invalid/"></iframe>

<div onmouseover="alert(1)" style="background:url(javascript:alert(1))">hover</div>
"""


@dataclass(frozen=True)
class DemoRepo:
    """One demo repo: its first commit's files and card, `HubDouble.add_repo` keywords
    (`metadata`), a tag on the first commit, and later commits as (message, files)."""

    repo_id: str
    files: Mapping[str, FileContent]
    card_data: Mapping[str, Any] | None = None
    card_text: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    first_commit_tag: str | None = None
    later_commits: tuple[tuple[str, Mapping[str, FileContent]], ...] = ()


BERT_CONFIG = {
    "architectures": ["BertForMaskedLM"],
    "model_type": "bert",
    "hidden_size": 8,
    "num_hidden_layers": 1,
}
PLAIN_WEIGHTS = {"layer.weight": [[0.5, -0.25], [1.0, 2.0]], "layer.bias": [0.0, 0.1]}
MLP_CONFIG = json.dumps({"model_type": "mlp"})

NAMED_DEMO_REPOS = (
    DemoRepo(
        "acme/tiny-bert",
        {
            ".gitattributes": GITATTRIBUTES,
            "config.json": json.dumps(BERT_CONFIG, indent=2),
            "model.safetensors": _weights(1),
            "tokenizer/vocab.txt": "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n",
            "tokenizer/tokenizer_config.json": json.dumps({"do_lower_case": True}),
        },
        card_data={
            "license": "apache-2.0",
            "language": ["en"],
            "library_name": "transformers",
            "pipeline_tag": "fill-mask",
            "tags": ["bert", "tiny"],
            "datasets": ["wikitext"],
            "base_model": "google-bert/bert-base-uncased",
        },
        card_text="\n# Tiny BERT\n\nA very small BERT for tests.\n",
        metadata={
            "tags": ["bert", "fill-mask", "tiny"],
            "pipeline_tag": "fill-mask",
            "library_name": "transformers",
            "downloads": 125_000,
            "likes": 42,
        },
        first_commit_tag="v1.0",
        later_commits=(
            (
                "Retrain with dropout",
                {
                    "config.json": json.dumps(
                        {**BERT_CONFIG, "hidden_dropout_prob": 0.1}, indent=2
                    ),
                    "model.safetensors": _weights(2),
                },
            ),
        ),
    ),
    DemoRepo(
        "acme/pickled-net",
        {
            ".gitattributes": GITATTRIBUTES,
            "config.json": MLP_CONFIG,
            "pytorch_model.bin": pickle.dumps(PLAIN_WEIGHTS, protocol=2),
        },
        card_data={"license": "mit", "library_name": "pytorch", "tags": ["pickle"]},
        card_text="\n# Pickled net\n\nWeights stored with pickle.\n",
        metadata={
            "tags": ["pytorch"],
            "library_name": "pytorch",
            "pipeline_tag": "tabular-classification",
            "downloads": 900,
            "likes": 3,
        },
    ),
    DemoRepo(
        "acme/evil-pickle",
        {"config.json": MLP_CONFIG, "pytorch_model.bin": _exploit_pickle},
        card_data={"license": "mit", "library_name": "pytorch"},
        card_text="\n# Do not load\n",
        metadata={"library_name": "pytorch", "downloads": 5},
    ),
    DemoRepo(
        "acme/gated-llama",
        {
            ".gitattributes": GITATTRIBUTES,
            "config.json": json.dumps({"model_type": "llama"}),
            "model.safetensors": _weights(3),
        },
        card_data={
            "license": "llama2",
            "pipeline_tag": "text-generation",
            "extra_gated_prompt": "Agree to the license to access this model.",
        },
        card_text="\n# Gated llama\n\nYou need to accept the license.\n",
        metadata={
            "gated": "manual",
            "tags": ["llama"],
            "pipeline_tag": "text-generation",
            "library_name": "transformers",
            "downloads": 50_000,
            "likes": 300,
        },
    ),
    DemoRepo(
        "acme/private-model",
        {"config.json": "{}", "model.safetensors": _weights(4)},
        card_data={"license": "other"},
        metadata={"private": True, "library_name": "transformers"},
    ),
    DemoRepo(
        "acme/hostile-card",
        {"config.json": json.dumps({"model_type": "bert"}), "model.safetensors": _weights(5)},
        card_data={"license": "mit", "tags": ["<script>alert(1)</script>"]},
        card_text=HOSTILE_CARD,
        metadata={
            "tags": ["bert"],
            "library_name": "transformers",
            "pipeline_tag": "text-classification",
            "downloads": 10,
        },
    ),
    DemoRepo(
        "acme/no-card",
        {"config.json": "{}", "weights/part-1.safetensors": _weights(6)},
        metadata={"library_name": "transformers"},
    ),
)

NUMBERED_DEMO_TASKS = (
    "text-classification",
    "text-generation",
    "image-classification",
    "token-classification",
)
NUMBERED_DEMO_LIBRARIES = ("transformers", "timm", "sentence-transformers")
NUMBERED_DEMO_LICENSES = ("mit", "apache-2.0", "cc-by-4.0")


def numbered_demo_repo(index: int) -> DemoRepo:
    """`demo-org/model-NN`: tiny weights, task, library and license in turn, spread-out
    downloads and likes (for sorting and paging)."""
    task = NUMBERED_DEMO_TASKS[index % len(NUMBERED_DEMO_TASKS)]
    library = NUMBERED_DEMO_LIBRARIES[index % len(NUMBERED_DEMO_LIBRARIES)]
    license_id = NUMBERED_DEMO_LICENSES[index % len(NUMBERED_DEMO_LICENSES)]
    return DemoRepo(
        f"demo-org/model-{index:02d}",
        {
            "config.json": json.dumps({"model_type": "demo", "index": index}),
            "model.safetensors": _weights(7, (2, 2)),
        },
        card_data={"license": license_id, "pipeline_tag": task, "library_name": library},
        card_text=f"\n# Demo model {index}\n",
        metadata={
            "tags": [library, task, "demo"],
            "pipeline_tag": task,
            "library_name": library,
            "downloads": (index * 7919) % 10_000,
            "likes": (index * 37) % 101,
        },
    )


@dataclass(frozen=True)
class DemoRepos:
    """Commit shas of the demo repos, oldest first."""

    commits: Mapping[str, tuple[str, ...]]

    def latest(self, repo_id: str) -> str:
        return self.commits[repo_id][-1]


def demo_repos(double: HubDouble) -> DemoRepos:
    """Add the demo repos (`NAMED_DEMO_REPOS`, then 30 `numbered_demo_repo`s) to `double`;
    returns their commit shas, also kept as `double.demo`."""
    repos = [*NAMED_DEMO_REPOS, *(numbered_demo_repo(index) for index in range(30))]
    commits = {repo.repo_id: add_demo_repo(double, repo) for repo in repos}
    demo = DemoRepos(commits=MappingProxyType(commits))
    double.demo = demo
    return demo


def add_demo_repo(double: HubDouble, repo: DemoRepo) -> tuple[str, ...]:
    """Add `repo` with its tag and later commits; returns its commit shas, oldest first."""
    shas = [
        double.add_repo(
            repo.repo_id,
            _materialise(repo.files),
            card_data=repo.card_data,
            card_text=repo.card_text,
            **repo.metadata,
        )
    ]
    if repo.first_commit_tag is not None:
        double.set_ref(repo.repo_id, repo.first_commit_tag, shas[0])
    for message, files in repo.later_commits:
        shas.append(double.add_commit(repo.repo_id, _materialise(files), message=message))
    return tuple(shas)


def _materialise(files: Mapping[str, FileContent]) -> dict[str, bytes | str]:
    return {path: content() if callable(content) else content for path, content in files.items()}
