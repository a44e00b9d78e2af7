"""Rebuild a registered version's artifact from the Hub and compare it with the stored one.

The tarball is a pure function of the files at the pinned commit, the include/exclude
patterns, the model name, the version and the artifact layout (2 or 3): downloading that
commit again and packaging it the way the import did, in the layout the version was stored in
(the files checked against the Hub's digests first), must give the same bytes as the
registered sha256 and the stored artifact. Nothing is stored or registered; the scratch
directory is removed.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from aegis_catalog import services
from aegis_catalog.lib.hub import HubClient, RevisionNotFound
from aegis_catalog.lib.storage import StorageError
from imports.packaging import PACKAGED_LAYOUTS, PackageResult, PackagingError, package_snapshot
from imports.pipeline import (
    DigestMismatch,
    artifact_basename,
    check_digests,
    download_files,
    resolve_revision,
)
from registry.models import ModelVersion
from registry.provenance import artifact_layout, artifact_name

READ_BLOCK = 1024 * 1024


class RebuildError(Exception):
    """The rebuild could not be made (unknown version, Hub unreachable, commit gone, old
    layout); the message says why."""


@dataclass(frozen=True)
class RebuildResult:
    """A rebuild and what it was compared with: the registered sha256 (the row, which the
    signed provenance names) and the stored artifact's bytes, hashed as they are now."""

    model: str
    version: str
    commit: str
    registered_sha256: str
    rebuilt_sha256: str
    stored_sha256: str = ""  # empty when the stored artifact could not be read
    difference: str = ""  # the first member or header that differs, when not reproduced

    @property
    def reproduced(self) -> bool:
        return self.rebuilt_sha256 == self.registered_sha256 == self.stored_sha256

    def summary(self) -> str:
        if self.reproduced:
            return f"sha256 {self.rebuilt_sha256}: reproduced"
        return f"sha256 {self.rebuilt_sha256} differs: {self.difference}"


def find_version(name: str, version: str) -> ModelVersion:
    item = (
        ModelVersion.objects.select_related("model")
        .filter(model__name=name, version=version)
        .first()
    )
    if item is None:
        raise RebuildError(f"There is no registered version {name} {version}.")
    return item


def _patterns(item: ModelVersion) -> tuple[list[str], list[str]]:
    options = item.import_options if isinstance(item.import_options, dict) else {}
    include, exclude = options.get("include") or [], options.get("exclude") or []
    return [str(value) for value in include], [str(value) for value in exclude]


def rebuild_version(item: ModelVersion) -> RebuildResult:
    """Download the version's pinned commit again, package it with the recorded options and
    compare with the registered sha256 and the stored artifact's bytes; when they differ, the
    stored tarball is read member by member for the first difference."""
    layout = artifact_layout(item)
    if layout < 2:
        raise RebuildError(
            f"{item.model.name} {item.version} was stored in artifact layout 1, whose tarball "
            "holds a randomised signature: it cannot be rebuilt byte for byte. Verify it instead."
        )
    if layout not in PACKAGED_LAYOUTS:
        raise RebuildError(
            f"{item.model.name} {item.version} was stored in artifact layout {layout}, which "
            "this version of Aegis cannot package: rebuild it with the Aegis that imported it."
        )
    hub = services.hub_client()
    settings.AEGIS_WORK_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aegis-rebuild-", dir=settings.AEGIS_WORK_DIR) as tmp:
        scratch = Path(tmp)
        rebuilt = _rebuild(hub, item, scratch)
        stored_sha256, difference = _compare(item, rebuilt, scratch)
        return RebuildResult(
            item.model.name,
            item.version,
            item.source_commit,
            item.sha256,
            rebuilt.sha256,
            stored_sha256,
            difference,
        )


def _compare(item: ModelVersion, rebuilt: PackageResult, scratch: Path) -> tuple[str, str]:
    """The stored artifact's sha256 (empty when unreadable) and the first difference between
    the rebuilt tarball, the stored one and the registered sha256 (empty when none)."""
    stored_sha256, unreadable = _stored_sha256(item)
    if unreadable:
        return "", f"the stored artifact could not be read ({unreadable})"
    if rebuilt.sha256 != stored_sha256:
        assert rebuilt.path is not None
        return stored_sha256, first_difference(rebuilt.path, _fetch_stored(item, scratch))
    if rebuilt.sha256 != item.sha256:
        return stored_sha256, (
            f"the registered sha256 {item.sha256} is not the stored artifact's "
            f"{stored_sha256}, which the rebuild reproduced"
        )
    return stored_sha256, ""


def _rebuild(hub: HubClient, item: ModelVersion, scratch: Path) -> PackageResult:
    """The pinned commit's selected files, downloaded into ``scratch`` and packaged there in
    the layout the version was stored in (a layout-2 artifact deflates every block)."""
    include, exclude = _patterns(item)
    try:
        resolution = resolve_revision(
            hub,
            item.source_repo,
            item.source_revision,
            include=include,
            exclude=exclude,
            commit=item.source_commit,
        )
    except RevisionNotFound as error:
        raise RebuildError(
            f"The pinned commit {item.source_commit} of {item.source_repo} is no longer on the "
            f"Hub (its history was rewritten, or the repo replaced): it cannot be rebuilt. {error}"
        ) from error
    if resolution.commit != item.source_commit:
        raise RebuildError(
            f"The Hub answered commit {resolution.commit} for the pinned {item.source_commit}."
        )
    download = download_files(hub, resolution, scratch / "files")
    try:
        # As the import does: bytes the Hub's own digests refuse are the Hub's (or the
        # network's) fault, and must not be reported as a difference in the stored artifact.
        checked = check_digests(resolution, download)
    except DigestMismatch as error:
        raise RebuildError(
            f"The Hub served a file that does not match its own digest ({error}); the stored "
            "artifact was not compared. Try again later, or through another endpoint."
        ) from error
    base = artifact_basename(item.model.name, item.version)
    try:
        return package_snapshot(
            scratch / f"{base}.tar.gz",
            root_name=base,
            model_files={entry.path: download.paths[entry.path] for entry in checked.files},
            mtime=resolution.mtime,
            expected_sha256=checked.sha256_by_path,
            layout=artifact_layout(item),
        )
    except PackagingError as error:
        raise RebuildError(f"Packaging the downloaded files failed: {error}") from error


def _stored_sha256(item: ModelVersion) -> tuple[str, str]:
    """The sha256 of the stored artifact's bytes as they are now, read as a stream (nothing
    is copied); or an empty digest and why it could not be read."""
    digest = hashlib.sha256()
    try:
        stream, _size = services.store_for(item.model_path).open_read(item.model_path)
        with stream:
            while block := stream.read(READ_BLOCK):
                digest.update(block)
    except (StorageError, OSError) as error:
        return "", str(error)
    return digest.hexdigest(), ""


def _fetch_stored(item: ModelVersion, scratch: Path) -> Path | None:
    try:
        return services.store_for(item.model_path).download(
            item.model_path, scratch / f"stored-{artifact_name(item)}"
        )
    except StorageError:
        return None


def first_difference(rebuilt: Path, stored: Path | None) -> str:
    """The first member (or header field, or gzip stream) in which two tarballs differ."""
    if stored is None:
        return "the stored artifact could not be read to find the first difference"
    try:
        with tarfile.open(rebuilt) as ours, tarfile.open(stored) as theirs:
            return _first_member_difference(ours, theirs)
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as error:
        return f"the stored artifact is not a readable tar.gz ({error})"


def _first_member_difference(ours: tarfile.TarFile, theirs: tarfile.TarFile) -> str:
    left, right = ours.getmembers(), theirs.getmembers()
    for mine, stored in zip(left, right, strict=False):
        if mine.name != stored.name:
            return f"member {mine.name!r} where the stored artifact has {stored.name!r}"
        for field in ("type", "mode", "mtime", "size", "uid", "gid", "uname", "gname"):
            if getattr(mine, field) != getattr(stored, field):
                return (
                    f"the header of {mine.name!r}: {field} {getattr(mine, field)!r}, "
                    f"stored {getattr(stored, field)!r}"
                )
        if mine.isfile() and _digest(ours, mine) != _digest(theirs, stored):
            return f"the content of {mine.name!r}"
    if len(left) != len(right):
        extra = (left if len(left) > len(right) else right)[min(len(left), len(right))]
        side = "rebuilt" if len(left) > len(right) else "stored"
        return f"member {extra.name!r} is only in the {side} artifact"
    return "the gzip stream (every member is the same)"


def _digest(archive: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    handle = archive.extractfile(member)
    assert handle is not None
    digest = hashlib.sha256()
    while block := handle.read(READ_BLOCK):
        digest.update(block)
    return digest.hexdigest()
