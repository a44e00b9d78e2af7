"""Stage 2, preflight: refuse before download what would fail late or break the policy."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from imports.formats import is_pickle_format
from imports.pipeline.base import PreflightError
from imports.pipeline.resolve import Resolution
from registry import policy
from registry.policy import ImportRules, PolicyFinding


@dataclass(frozen=True)
class Preflight:
    needed_bytes: int
    free_bytes: int
    findings: tuple[PolicyFinding, ...] = ()


# Beyond the snapshot and the tarball: gzip can grow incompressible data a little, and the
# work dir also holds model.sig, aegis.json and the Hub client's temporary files.
DISK_MARGIN_RATIO = 0.05


def disk_space_needed(total_bytes: int, min_free_bytes: int) -> tuple[int, int]:
    """(bytes needed, margin): the snapshot, the tarball beside it, a margin, and the reserve."""
    margin = int(total_bytes * DISK_MARGIN_RATIO) + min_free_bytes
    return 2 * total_bytes + margin, margin


def preflight(
    resolution: Resolution,
    *,
    work_dir: Path,
    min_free_bytes: int,
    rules: ImportRules,
    has_hub_token: bool,
) -> Preflight:
    """Refuse early what would fail late or break the policy, before any file is downloaded:
    a floating revision when commits are required, the card's license, the size, pickle files
    under "safetensors only", a gated repo without a token, not enough disk space."""
    total = resolution.total_bytes
    findings = policy.check_before_download(
        repo_id=f"{resolution.repo_id}@{resolution.commit[:12]}",
        revision=resolution.revision,
        licenses=policy.card_licenses(resolution.card_data, resolution.metadata.license),
        file_sizes={item.path: item.size for item in resolution.files},
        pickle_paths=[item.path for item in resolution.files if is_pickle_format(item.path)],
        rules=rules,
    )
    if resolution.metadata.gated != "no" and not has_hub_token:
        raise PreflightError(
            f"{resolution.repo_id} is gated: set HF_TOKEN to a token that was granted access"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work_dir).free
    needed, margin = disk_space_needed(total, min_free_bytes)
    if free < needed:
        raise PreflightError(
            f"not enough disk space in {work_dir}: {free:,} bytes free, {needed:,} needed "
            f"(snapshot {total:,} + tarball {total:,} + margin {margin:,}, which includes "
            f"AEGIS_MIN_FREE_BYTES {min_free_bytes:,}); free space or point AEGIS_WORK_DIR "
            "at a larger disk"
        )
    return Preflight(needed_bytes=needed, free_bytes=free, findings=tuple(findings))
