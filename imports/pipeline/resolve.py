"""Stage 1, resolve: pin the revision to its commit and list the selected files."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from aegis_catalog.lib.hub import HubClient, HubFile
from registry.card import CardMetadata, card_metadata


@dataclass(frozen=True)
class Resolution:
    repo_id: str
    revision: str
    commit: str
    commit_time: str  # ISO 8601, UTC: the tarball's fixed mtime
    files: tuple[HubFile, ...]
    card_data: dict[str, Any]
    metadata: CardMetadata
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self.files)

    @property
    def mtime(self) -> int:
        return int(datetime.fromisoformat(self.commit_time).timestamp())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Resolution:
        values = dict(data)
        values["files"] = tuple(HubFile(**item) for item in values["files"])
        meta = dict(values["metadata"])
        for key in ("tags", "datasets", "languages"):
            meta[key] = tuple(meta[key])
        values["metadata"] = CardMetadata(**meta)
        values["include"] = tuple(values.get("include", ()))
        values["exclude"] = tuple(values.get("exclude", ()))
        return cls(**values)


def resolve_revision(
    hub: HubClient,
    repo_id: str,
    revision: str,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    commit: str = "",
) -> Resolution:
    """Pin the revision to its commit and list the files the patterns select. A ``commit``
    pinned when the import was requested is read instead of where the revision is now."""
    model = hub.model_info(repo_id, commit or revision)
    files = hub.select_files(model, include, exclude)
    return Resolution(
        repo_id=model.repo_id,
        revision=revision,
        commit=model.commit,
        commit_time=model.commit_time.isoformat(),
        files=tuple(files),
        card_data=json.loads(json.dumps(model.card_data or {}, default=str)),
        metadata=card_metadata(model),
        include=tuple(include),
        exclude=tuple(exclude),
    )
