"""The baseline of the scan-overhead bench (bench/scan_overhead.py): with its no-ops in place
an import scans nothing, so a pickle the policy blocks gets through, and the files it skipped
are named; the same import without them is blocked. No timing."""

from __future__ import annotations

import json
import os
import pickle

import pytest

from bench.scan_overhead import BaselineMismatch, without_scanning
from devservers.hub_double import safetensors_bytes
from imports import actions
from imports.actions import ImportOptions
from imports.jobs import run_import
from imports.models import ImportRequest
from imports.pipeline import stream
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db


class RunsCode:
    """Pickles to a call of os.system (never unpickled here)."""

    def __reduce__(self):
        return (os.system, ("echo owned-by-pickle",))


@pytest.fixture
def pickled_repo(aegis, fresh_hub_double):
    fresh_hub_double.add_repo(
        "acme/mixed",
        {
            "config.json": json.dumps({"model_type": "mlp"}),
            "model.safetensors": safetensors_bytes(7),
            "pytorch_model.bin": pickle.dumps({"weights": RunsCode()}, protocol=2),
        },
        card_data={"license": "mit"},
    )
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    aegis.settings.AEGIS_ONE_PASS_IMPORT = True
    return fresh_hub_double


def start() -> ImportRequest:
    return actions.start_import(
        ImportOptions("acme/mixed", "mixed", "1"), actor="alice", enqueue=False
    )


def test_it_lets_through_what_the_scan_blocks_and_names_the_files_it_skipped(
    pickled_repo, monkeypatch
):
    skipped = without_scanning(monkeypatch.setattr)

    assert run_import(start().pk) == "succeeded"
    # (The double writes README.md from the card data.)
    assert sorted(skipped) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "pytorch_model.bin",
    ]
    assert ModelVersion.objects.get().scan_results == []


def test_the_same_import_without_it_is_blocked(pickled_repo):
    request = start()

    assert run_import(request.pk) == "failed"
    request.refresh_from_db()
    assert request.error_code == "policy:dangerous_pickle"


def test_it_refuses_to_run_when_the_import_no_longer_calls_what_it_replaces(monkeypatch):
    monkeypatch.delattr(stream, "find_remote_code")

    with pytest.raises(BaselineMismatch, match="find_remote_code"):
        without_scanning(monkeypatch.setattr)
