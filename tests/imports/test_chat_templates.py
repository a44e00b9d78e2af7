"""Chat templates that reach Python internals (GGUF metadata, tokenizer_config.json) block the
import; ordinary templates pass."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from imports.models import ImportRequest
from imports.scanners.templates import chat_template_problem, template_problem
from registry.models import ModelVersion
from tests.factories import imported

pytestmark = pytest.mark.django_db

# What ordinary chat templates look like (Llama 3 / ChatML style).
BENIGN = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
    "<|start_header_id|>system<|end_header_id|>{{ message['content'] | trim }}<|eot_id|>"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ raise_exception('no') if false }}{% endif %}"
)
HOSTILE = (
    "{{ ''.__class__.__mro__[1].__subclasses__()[0].__init__.__globals__['os']"
    ".popen('id').read() }}"
)


def gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf(template: str) -> bytes:
    """A GGUF v3 file with no tensors and some metadata: an architecture, a token array (to
    skip) and the chat template."""
    tokens = b"".join(gguf_string(token) for token in ("<s>", "</s>", "hello"))
    pairs = [
        gguf_string("general.architecture") + struct.pack("<I", 8) + gguf_string("llama"),
        gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + tokens,
        gguf_string("general.file_type") + struct.pack("<II", 4, 1),
        gguf_string("tokenizer.chat_template") + struct.pack("<I", 8) + gguf_string(template),
    ]
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(pairs)) + b"".join(pairs)


@pytest.fixture
def template_repos(aegis, fresh_hub_double):
    for name, files in {
        "acme/gguf-hostile": {"model-q4.gguf": gguf(HOSTILE)},
        "acme/gguf-clean": {"model-q4.gguf": gguf(BENIGN)},
        "acme/tokenizer-hostile": {
            "tokenizer_config.json": json.dumps({"chat_template": HOSTILE}),
            "config.json": "{}",
        },
    }.items():
        fresh_hub_double.add_repo(name, files, card_data={"license": "mit"})
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    return fresh_hub_double


def stored(environment) -> list[Path]:
    root = Path(environment.settings.AEGIS_ARTIFACT_ROOT)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def test_it_tells_an_escaping_template_from_an_ordinary_one(tmp_path):
    assert template_problem(BENIGN) is None
    problem = template_problem(HOSTILE) or ""
    assert "__class__" in problem and "__globals__" in problem and "popen" in problem
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf(HOSTILE))
    assert (chat_template_problem(path, "m.gguf") or "").startswith("tokenizer.chat_template:")
    path.write_bytes(gguf(BENIGN))
    assert chat_template_problem(path, "m.gguf") is None
    path.write_bytes(b"GGUF" + b"\xff" * 8)  # not metadata this reader understands
    assert chat_template_problem(path, "m.gguf") is None


@pytest.mark.parametrize(
    ("repo_id", "named"),
    [("acme/gguf-hostile", "model-q4.gguf"), ("acme/tokenizer-hostile", "tokenizer_config.json")],
)
def test_a_template_reaching_python_blocks_the_import(template_repos, aegis, repo_id, named):
    request = imported(repo_id)

    assert request.status == ImportRequest.Status.FAILED
    assert request.error_code == "policy:template_injection"
    assert named in request.error and "__subclasses__" in request.error
    assert not ModelVersion.objects.exists()
    assert stored(aegis) == []


def test_a_clean_gguf_imports_without_a_finding(template_repos):
    request = imported("acme/gguf-clean")

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    findings = ModelVersion.objects.get().import_options["policy"]["findings"]
    assert "template_injection" not in {item["rule"] for item in findings}


def test_the_hub_model_page_says_gguf_templates_are_checked(template_repos, bob_client):
    html = bob_client.get("/hub/acme/gguf-clean/").content.decode()
    assert "1 GGUF file(s) (model-q4.gguf): their chat templates run" in html
