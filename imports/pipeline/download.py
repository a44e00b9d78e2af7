"""Stage 3, download: exactly the selected files at the pinned commit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aegis_catalog.lib.hub import HubClient
from imports.pipeline.base import Progress, _noop_progress
from imports.pipeline.resolve import Resolution


@dataclass(frozen=True)
class Download:
    paths: dict[str, Path]


def download_files(
    hub: HubClient, resolution: Resolution, dest: Path, *, progress: Progress = _noop_progress
) -> Download:
    """Fetch exactly the selected files at the pinned commit; files already complete are kept."""
    paths = hub.download(
        resolution.repo_id,
        resolution.commit,
        dest,
        [item.path for item in resolution.files],
        progress=progress,
    )
    return Download(paths=dict(paths))
