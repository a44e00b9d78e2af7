"""Must-show 1: the real huggingface_hub client, in its own process with HF_ENDPOINT at a live
server, pulls an imported model by aegis/<name>, by its Hub repo id, at a version, at its
upstream commit and at main; the files are byte-identical to the Hub double's and the
safetensors load."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from registry.models import AuditEvent, Pull

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = Path(__file__).with_name("pull_script.py")


def pull(env: dict[str, str], token: str, *targets: tuple[str, str]) -> dict[str, dict]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), json.dumps(targets)],
        env={**env, "HF_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def hub_digests(hub_double, revision: str) -> dict[str, str]:
    return {
        path: hashlib.sha256(content).hexdigest()
        for path, content in hub_double.files("acme/tiny-bert", revision).items()
    }


def test_the_real_client_pulls_by_every_name_and_revision(
    tiny_bert, viewer_token, hf_env, hub_double
):
    first, second = tiny_bert["1.0"], tiny_bert["2.0"]
    before = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True)[0]
    pulled = pull(
        hf_env, viewer_token,
        ("aegis/tiny-bert", "1.0"),
        ("aegis/tiny-bert", "main"),
        ("acme/tiny-bert", "main"),
        ("acme/tiny-bert", first.source_commit),
        ("aegis/tiny-bert", second.sha256[:40]),
    )  # fmt: skip
    old, new = hub_digests(hub_double, "v1.0"), hub_digests(hub_double, "main")
    assert old != new  # the two versions differ, so each pull shows which one it got
    expected = {
        "aegis/tiny-bert @ 1.0": (first, old),
        "aegis/tiny-bert @ main": (second, new),
        "acme/tiny-bert @ main": (second, new),
        f"acme/tiny-bert @ {first.source_commit}": (first, old),
        f"aegis/tiny-bert @ {second.sha256[:40]}": (second, new),
    }
    for label, (version, digests) in expected.items():
        assert pulled[label]["files"] == digests, label
        assert pulled[label]["listed"] == sorted(digests), label
        assert pulled[label]["sha"] == version.sha256[:40], label
        assert pulled[label]["tensors"]["model.safetensors"], label
        assert pulled[label]["sibling_sha256"] == digests, label  # model_info with blobs=true
        assert pulled[label]["paths_info"] == {"config.json": digests["config.json"]}, label
        assert pulled[label]["config_json"] == digests["config.json"], label  # hf_hub_download
    assert first.sha256[:40] != second.sha256[:40]
    # Who pulled what: one counted row per version, puller and day, and no audit row per
    # request: the only events are the two first-pull verifications.
    for version, revision in ((first, "v1.0"), (second, "main")):
        row = Pull.objects.get(version=version, actor="vera")
        size = sum(
            len(content) for content in hub_double.files("acme/tiny-bert", revision).values()
        )
        assert row.files >= 1 and 0 < row.bytes <= 3 * size
    events = AuditEvent.objects.filter(sequence__gt=before).values_list("action", "actor")
    assert sorted(events) == [("verification.passed", "vera (first pull)")] * 2
