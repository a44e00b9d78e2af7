"""Byte-reproducible tar.gz artifacts, and their safe extraction.

Artifact layout::

    <root>/                  directory entries for every parent, too
    <root>/aegis.json        extra members (import record, model.sig)
    <root>/model.sig
    <root>/model/<path>      the model files

Reproducible means: the same inputs give the same bytes whatever the files'
mtimes, permissions, owners or the order the inputs were given in. Entries are
sorted by their tar name (directories carry a trailing ``/``), so the extra
members at the root come before ``model/`` and can be read without
decompressing the weights. PAX format (long and non-ASCII names without GNU
extensions), fixed mtime, uid/gid 0, empty owner names, modes 0644/0755, and a
gzip header with no file name and mtime 0. The bytes also depend on zlib's
deflate output for the fixed compression level, so keep the zlib in use stable.

Plain Python: no Django, no network.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import posixpath
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

GZIP_COMPRESSLEVEL = 6
FILE_MODE = 0o644
DIRECTORY_MODE = 0o755
COPY_BUFFER_SIZE = 1024 * 1024
PROGRESS_EVERY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_TOTAL_BYTES = 64 * 1024**3
DEFAULT_MAX_MEMBERS = 100_000
DEFAULT_MAX_MEMBER_READ_BYTES = 64 * 1024**2


class PackagingError(Exception):
    """Packaging or reading an artifact failed; the message says which file and why."""


class UnsafeArchive(PackagingError):
    """An archive member would be unsafe to extract; nothing was extracted."""

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"refusing to extract archive member {member!r}: {reason}")
        self.member = member
        self.reason = reason


class CorruptArchive(PackagingError):
    """The file is not a readable tar.gz."""


class MemberNotFound(PackagingError):
    """The archive has no regular file with the requested name."""


@dataclass(frozen=True)
class PackagedFile:
    """One model file as packaged: path relative to ``model/``, size, sha256 of the bytes."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PackageResult:
    """The written artifact: where, its sha256 and size, and every model file in it."""

    path: Path
    sha256: str
    size: int
    files: tuple[PackagedFile, ...]


class _HashingWriter:
    """A write-only file wrapper that hashes and counts what passes through."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        written = self._raw.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return written

    def flush(self) -> None:
        self._raw.flush()


class _HashingReader:
    """A read wrapper that hashes what tarfile copies and reports progress."""

    def __init__(self, raw: IO[bytes], on_bytes: Callable[[int], None]) -> None:
        self._raw = raw
        self._on_bytes = on_bytes
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.sha256.update(data)
        self.size += len(data)
        self._on_bytes(len(data))
        return data


class _Progress:
    def __init__(self, total: int, callback: Callable[[int, int], None] | None) -> None:
        self.total = total
        self.done = 0
        self._reported = 0
        self._callback = callback

    def add(self, count: int) -> None:
        self.done += count
        if self._callback and self.done - self._reported >= PROGRESS_EVERY_BYTES:
            self.report()

    def report(self) -> None:
        if self._callback:
            self._reported = self.done
            self._callback(self.done, self.total)


def _check_member_path(path: str, what: str) -> None:
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\x00" in path
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise PackagingError(
            f"{what} {path!r} must be a relative '/'-separated path "
            "without empty, '.' or '..' parts"
        )


def _tar_info(name: str, *, is_dir: bool, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = DIRECTORY_MODE if is_dir else FILE_MODE
    info.size = 0 if is_dir else size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _plan_entries(
    root_name: str, model_files: Mapping[str, Path], extra_members: Mapping[str, bytes]
) -> list[tuple[str, str, Any]]:
    """Sorted ``(tar name, kind, source)``; kind is "dir", "model" or "extra"."""
    _check_member_path(root_name, "root name")
    if "/" in root_name:
        raise PackagingError(f"root name {root_name!r} must be a single path component")
    files: dict[str, tuple[str, Any]] = {}
    for path, source in model_files.items():
        _check_member_path(path, "model file path")
        files[f"{root_name}/model/{path}"] = ("model", (path, Path(source)))
    for name, data in extra_members.items():
        _check_member_path(name, "extra member name")
        member = f"{root_name}/{name}"
        if member in files or name == "model" or name.startswith("model/"):
            raise PackagingError(f"extra member {name!r} collides with the model directory")
        files[member] = ("extra", bytes(data))
    directories = {root_name, f"{root_name}/model"}
    for member in files:
        parent = posixpath.dirname(member)
        while parent:
            directories.add(parent)
            parent = posixpath.dirname(parent)
    for directory in directories:
        if directory in files:
            raise PackagingError(
                f"{directory!r} is needed as a directory but is also given as a file"
            )
    entries: list[tuple[str, str, Any]] = [(f"{d}/", "dir", None) for d in directories]
    entries += [(member, kind, source) for member, (kind, source) in files.items()]
    entries.sort(key=lambda entry: entry[0].encode("utf-8"))
    return entries


def package_snapshot(
    out_path: Path,
    *,
    root_name: str,
    model_files: Mapping[str, Path],
    extra_members: Mapping[str, bytes],
    mtime: int,
    progress: Callable[[int, int], None] | None = None,
    expected_sha256: Mapping[str, str] | None = None,
) -> PackageResult:
    """Write a byte-reproducible tar.gz of a model snapshot in one streaming pass.

    ``model_files`` maps paths relative to ``model/`` (``/`` separators) to files
    on disk; ``extra_members`` maps names under the root to their bytes. While
    each model file is copied its sha256 is computed; when ``expected_sha256``
    has an entry for it and the bytes differ, ``PackagingError`` names the file.
    The tarball's sha256 is computed as it is written (never re-read). Output
    goes to ``<out_path>.partial`` and is renamed into place only when complete;
    on any failure the partial file is removed. ``progress(done, total)`` is
    called with bytes of input consumed (model files plus extra members).
    """
    if mtime < 0:
        raise PackagingError(f"mtime must be a non-negative Unix time, got {mtime}")
    out_path = Path(out_path)
    entries = _plan_entries(root_name, model_files, extra_members)
    expected = dict(expected_sha256 or {})
    unknown = set(expected) - set(model_files)
    if unknown:
        raise PackagingError(
            f"expected sha256 given for files that are not being packaged: {sorted(unknown)}"
        )
    total = sum(len(data) for data in extra_members.values())
    try:
        total += sum(Path(source).stat().st_size for source in model_files.values())
    except OSError as error:
        raise PackagingError(
            f"cannot read model file {error.filename}: {error.strerror}"
        ) from error
    tracker = _Progress(total, progress)
    partial = out_path.with_name(out_path.name + ".partial")
    packaged: list[PackagedFile] = []
    current = ""
    try:
        with partial.open("wb") as raw:
            hashing_writer = _HashingWriter(raw)
            gzip_stream = _deterministic_gzip(hashing_writer)
            with (
                gzip_stream,
                tarfile.TarFile(
                    fileobj=gzip_stream,
                    mode="w",
                    format=tarfile.PAX_FORMAT,
                    copybufsize=COPY_BUFFER_SIZE,
                ) as tar,
            ):
                for name, kind, source in entries:
                    current = name
                    if kind == "dir":
                        tar.addfile(_tar_info(name, is_dir=True, size=0, mtime=mtime))
                    elif kind == "extra":
                        info = _tar_info(name, is_dir=False, size=len(source), mtime=mtime)
                        tar.addfile(info, io.BytesIO(source))
                        tracker.add(len(source))
                    else:
                        relative, path = source
                        packaged.append(
                            _add_model_file(tar, name, relative, path, mtime, expected, tracker)
                        )
            raw.flush()
            os.fsync(raw.fileno())
        partial.replace(out_path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise _packaging_os_error(error, partial, current) from error
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    tracker.report()
    return PackageResult(
        path=out_path,
        sha256=hashing_writer.sha256.hexdigest(),
        size=hashing_writer.size,
        files=tuple(sorted(packaged, key=lambda item: item.path)),
    )


def _deterministic_gzip(fileobj: _HashingWriter) -> gzip.GzipFile:
    # filename="" keeps the name out of the header; mtime=0 keeps the time out.
    return gzip.GzipFile(
        filename="", mode="wb", fileobj=fileobj, mtime=0, compresslevel=GZIP_COMPRESSLEVEL
    )


def _add_model_file(
    tar: tarfile.TarFile,
    name: str,
    relative: str,
    path: Path,
    mtime: int,
    expected: Mapping[str, str],
    tracker: _Progress,
) -> PackagedFile:
    with path.open("rb") as handle:
        # Size from the open descriptor: the bytes copied are the bytes described.
        size = os.fstat(handle.fileno()).st_size
        reader = _HashingReader(handle, tracker.add)
        tar.addfile(_tar_info(name, is_dir=False, size=size, mtime=mtime), reader)
        if handle.read(1):
            raise PackagingError(
                f"model file {relative!r} grew while it was being packaged; download it again"
            )
    digest = reader.sha256.hexdigest()
    want = expected.get(relative)
    if want is not None and want.lower() != digest:
        raise PackagingError(
            f"model file {relative!r} changed on disk since it was checked: sha256 is {digest}, "
            f"expected {want.lower()}; download it again"
        )
    return PackagedFile(path=relative, size=size, sha256=digest)


def _packaging_os_error(error: OSError, partial: Path, current: str) -> PackagingError:
    if error.errno == errno.ENOSPC:
        return PackagingError(
            f"cannot write {partial.name}: no space left on device (while adding {current!r}); "
            "free disk space in the work directory and retry"
        )
    where = f" {error.filename}" if error.filename else ""
    return PackagingError(
        f"packaging failed while adding {current!r}:{where} {error.strerror or error}"
    )


# ------------------------------------------------------------------- extraction


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
        if member.issym() or member.islnk():
            raise UnsafeArchive(member.name, f"link to {member.linkname!r} (links are refused)")
        if not (member.isreg() or member.isdir()):
            raise UnsafeArchive(member.name, "not a regular file or directory (device, fifo?)")
        if name in files or (member.isreg() and name in directories):
            raise UnsafeArchive(member.name, "duplicate name")
        parent = posixpath.dirname(name)
        while parent:
            if parent in files:
                raise UnsafeArchive(member.name, f"parent {parent!r} is a file in the archive")
            parent = posixpath.dirname(parent)
        if member.isdir():
            if name in directories:
                raise UnsafeArchive(member.name, "duplicate name")
            directories.add(name)
        else:
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
        raise PackagingError(f"extraction destination {dest} must be a missing or empty directory")
    with _open_archive(tar_path) as tar:
        try:
            members = _scan_members(tar.getmembers(), max_total_bytes, max_members)
            dest.mkdir(parents=True, exist_ok=True)
            tar.extractall(dest, members=members, filter="data")
        except tarfile.FilterError as error:
            raise UnsafeArchive(error.tarinfo.name, str(error)) from error
        except (tarfile.TarError, EOFError, OSError) as error:
            if isinstance(error, OSError) and error.errno == errno.ENOSPC:
                raise PackagingError(
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
                    raise PackagingError(
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
