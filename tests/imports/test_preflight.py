"""The preflight stage: disk space for the snapshot plus the tarball, with the numbers shown."""

from __future__ import annotations

import shutil

import pytest

from aegis_catalog.lib.hub import HubFile
from imports import pipeline
from registry.card import CardMetadata
from registry.policy import ImportRules, PolicyViolation


def resolution(*sizes: int, license: str = "mit") -> pipeline.Resolution:
    return pipeline.Resolution(
        repo_id="acme/big",
        revision="main",
        commit="a" * 40,
        commit_time="2026-01-01T00:00:00+00:00",
        files=tuple(HubFile(f"f{index}.safetensors", size, "b" * 40, None) for index, size in
                    enumerate(sizes)),
        card_data={"license": license},
        metadata=CardMetadata(license=license),
    )  # fmt: skip


def test_it_needs_room_for_the_snapshot_the_tarball_and_a_margin(tmp_path):
    total = 1_000_000
    needed, margin = pipeline.disk_space_needed(total, min_free_bytes=500)
    assert needed == 2 * total + margin
    assert margin == int(total * pipeline.DISK_MARGIN_RATIO) + 500
    result = pipeline.preflight(
        resolution(600_000, 400_000),
        work_dir=tmp_path / "work",
        min_free_bytes=500,
        rules=ImportRules(),
        has_hub_token=False,
    )
    assert result.needed_bytes == needed
    assert result.free_bytes == shutil.disk_usage(tmp_path).free


def test_it_stops_with_the_numbers_when_the_disk_is_too_small(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    reserve = free  # whatever the files, this cannot fit
    with pytest.raises(pipeline.PreflightError) as error:
        pipeline.preflight(
            resolution(1000),
            work_dir=tmp_path / "work",
            min_free_bytes=reserve,
            rules=ImportRules(),
            has_hub_token=False,
        )
    message = str(error.value)
    needed, margin = pipeline.disk_space_needed(1000, reserve)
    assert "not enough disk space" in message
    assert f"{needed:,} needed" in message
    assert "snapshot 1,000 + tarball 1,000" in message
    assert f"margin {margin:,}" in message
    assert str(tmp_path / "work") in message


def test_a_policy_rule_is_checked_before_the_disk(tmp_path):
    with pytest.raises(PolicyViolation, match="license"):
        pipeline.preflight(
            resolution(1000, license="gpl-3.0"),
            work_dir=tmp_path / "work",
            min_free_bytes=0,
            rules=ImportRules(allowed_licenses=("MIT",)),
            has_hub_token=False,
        )
    assert not (tmp_path / "work").exists()
