"""Safe extraction and single-member reads of tar(.gz) archives such as Aegis artifacts.

Every member is checked before anything is written: absolute paths, ``..`` components, links
of any kind, devices and fifos, duplicate names and archives over the member or size limits are
refused with `UnsafeArchive` naming the member. Errors are subclasses of `ArchiveError`.

Plain Python: no Django, no network. The packager (`imports.packaging`) writes the archives
this module reads; the verifier (`registry.verify`) extracts them with it.
"""

from __future__ import annotations

import errno
import posixpath
import tarfile
from pathlib import Path
from typing import Literal

DEFAULT_MAX_TOTAL_BYTES = 64 * 1024**3
DEFAULT_MAX_MEMBERS = 100_000
DEFAULT_MAX_MEMBER_READ_BYTES = 64 * 1024**2


class ArchiveError(Exception):
    """Extracting or reading an archive failed; the message says which file and why."""


class UnsafeArchive(ArchiveError):
    """An archive member would be unsafe to extract; nothing was extracted."""

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"refusing to extract archive member {member!r}: {reason}")
        self.member = member
        self.reason = reason


class CorruptArchive(ArchiveError):
    """The file is not a readable tar.gz."""


class MemberNotFound(ArchiveError):
    """The archive has no regular file with the requested name."""


def _normalised_member_name(member: tarfile.TarInfo) -> str:
    name = member.name
    if not name or "\x00" in name:
        raise UnsafeArchive(name, "empty or NUL-containing name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or name.startswith("\\"):
        raise UnsafeArchive(name, "absolute path")
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(name, "'..' path component")
    if not parts:
        raise UnsafeArchive(name, "name refers to the destination itself")
    return "/".join(parts)


def _check_member_type(member: tarfile.TarInfo) -> None:
    """Only regular files and directories: a link could point outside the destination."""
    if member.issym() or member.islnk():
        raise UnsafeArchive(member.name, f"link to {member.linkname!r} (links are refused)")
    if not (member.isreg() or member.isdir()):
        raise UnsafeArchive(member.name, "not a regular file or directory (device, fifo?)")


def _check_member_place(
    member: tarfile.TarInfo, name: str, files: set[str], directories: set[str]
) -> None:
    """Refuse a name already taken, or one below a path that is a file in the archive."""
    if name in files or (member.isreg() and name in directories):
        raise UnsafeArchive(member.name, "duplicate name")
    parent = posixpath.dirname(name)
    while parent:
        if parent in files:
            raise UnsafeArchive(member.name, f"parent {parent!r} is a file in the archive")
        parent = posixpath.dirname(parent)
    if member.isdir() and name in directories:
        raise UnsafeArchive(member.name, "duplicate name")


def _scan_members(
    members: list[tarfile.TarInfo], max_total_bytes: int, max_members: int
) -> list[tarfile.TarInfo]:
    if len(members) > max_members:
        raise UnsafeArchive(
            members[max_members].name, f"archive has more than {max_members} members"
        )
    files: set[str] = set()
    directories: set[str] = set()
    total = 0
    for member in members:
        name = _normalised_member_name(member)
        _check_member_type(member)
        _check_member_place(member, name, files, directories)
        if member.isdir():
            directories.add(name)
            continue
        files.add(name)
        total += member.size
        if total > max_total_bytes:
            raise UnsafeArchive(
                member.name, f"archive content exceeds the limit of {max_total_bytes} bytes"
            )
    return members


def _open_archive(tar_path: Path, mode: Literal["r:*", "r|*"] = "r:*") -> tarfile.TarFile:
    try:
        return tarfile.open(tar_path, mode)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise CorruptArchive(f"{tar_path} is not a readable tar archive: {error}") from error


def safe_extract(
    tar_path: Path,
    dest: Path,
    *,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> list[str]:
    """Extract ``tar_path`` into ``dest`` after checking every member; return member names.

    All members are checked before anything is written: absolute paths, ``..``
    components, links of any kind, devices and fifos, duplicate names, more than
    ``max_members`` members or more than ``max_total_bytes`` of content raise
    ``UnsafeArchive`` naming the member. ``dest`` must be missing or empty (a
    pre-existing symlink inside it could otherwise redirect writes). tarfile's
    ``data`` filter is applied as a second line of defence.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ArchiveError(f"extraction destination {dest} must be a missing or empty directory")
    with _open_archive(tar_path) as tar:
        try:
            members = _scan_members(tar.getmembers(), max_total_bytes, max_members)
            dest.mkdir(parents=True, exist_ok=True)
            tar.extractall(dest, members=members, filter="data")
        except tarfile.FilterError as error:
            raise UnsafeArchive(error.tarinfo.name, str(error)) from error
        except (tarfile.TarError, EOFError, OSError) as error:
            if isinstance(error, OSError) and error.errno == errno.ENOSPC:
                raise ArchiveError(
                    f"extracting {tar_path.name} into {dest}: no space left on device"
                ) from error
            raise CorruptArchive(f"cannot extract {tar_path}: {error}") from error
    return [member.name for member in members]


def read_member(
    tar_path: Path, name: str, *, max_bytes: int = DEFAULT_MAX_MEMBER_READ_BYTES
) -> bytes:
    """Read one regular file from the archive without extracting the rest.

    Reads stop at the first member with that name (root-level members come
    before ``model/`` in Aegis artifacts, so this is cheap for ``aegis.json``).
    Check the tarball's digest first when the archive is untrusted.
    """
    with _open_archive(tar_path, "r|*") as tar:
        try:
            for member in tar:
                if member.name != name:
                    continue
                if not member.isreg():
                    raise MemberNotFound(f"{name!r} in {tar_path.name} is not a regular file")
                if member.size > max_bytes:
                    raise ArchiveError(
                        f"{name!r} in {tar_path.name} is {member.size} bytes, "
                        f"more than the {max_bytes} allowed"
                    )
                extracted = tar.extractfile(member)
                if extracted is None:
                    raise MemberNotFound(f"{name!r} in {tar_path.name} has no content")
                return extracted.read()
        except (tarfile.TarError, EOFError, OSError) as error:
            raise CorruptArchive(f"cannot read {tar_path}: {error}") from error
    raise MemberNotFound(f"{tar_path.name} has no member {name!r}")
