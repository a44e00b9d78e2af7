"""Byte-reproducible tar.gz artifacts (extracted safely by `aegis_catalog.lib.archive`).

Artifact layout (layouts 2 and 3)::

    <root>/                  directory entries for every parent, too
    <root>/model/<path>      the model files, sorted
    <root>/MANIFEST.sha256   "<sha256>  model/<path>" per file, in the same order (sha256sum -c)

The bytes depend only on the model files, their paths and the root name (``<name>-<version>``)
and the mtime (the commit time): nothing random, nothing about who or when. Signatures, the
import record and scan verdicts are stored beside the tarball, not in it. The manifest is the
last member, so it needs nothing that comes after it and a packager can write the model files
as they arrive. (Layout 1 kept ``aegis.json`` and ``model.sig`` at the root, before ``model/``;
artifacts stored that way still verify.)

Layout 3 has the same members in the same order as layout 2; only the gzip stream differs: a
4 MiB block that deflate would not shrink (random-looking weights) is written as deflate
stored blocks, its bytes as they are, instead of being deflated for a gain under 3 %
(``imports.gzip_blocks``; which blocks are stored depends only on their bytes and the 32 KiB
before them). Any gzip reads both. A version is rebuilt in the layout it was stored in, so a
layout-2 artifact still reproduces byte for byte: ``package_snapshot(..., layout=2)`` deflates
every block as before.

Reproducible means: the same inputs give the same bytes whatever the files'
mtimes, permissions, owners or the order the inputs were given in. Entries are
sorted by their tar name (directories carry a trailing ``/``). PAX format (long
and non-ASCII names without GNU extensions), fixed mtime, uid/gid 0, empty owner
names, modes 0644/0755, and a gzip header with no file name and mtime 0. The tar
stream is compressed in fixed 4 MiB blocks (each primed with the 32 KiB before it,
as pigz does) by ISA-L at a fixed level, so the bytes also depend on the ISA-L
version: keep it pinned.

Plain Python: no Django, no network.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from huggingface_hub.utils import filter_repo_objects

from aegis_catalog.lib.checksums import format_sha256sums
from imports.gzip_blocks import BLOCK_SIZE, GZIP_LEVEL, GzipPipeline, TarStream

FILE_MODE = 0o644
DIRECTORY_MODE = 0o755
PROGRESS_EVERY_BYTES = 8 * 1024 * 1024
ARTIFACT_LAYOUT = 3
# The layouts this packager writes; layout 1 held a randomised signature and cannot be made.
PACKAGED_LAYOUTS = (2, 3)
MANIFEST_NAME = "MANIFEST.sha256"


class PackagingError(Exception):
    """Packaging an artifact failed; the message says which file and why."""


@dataclass(frozen=True)
class PackagedFile:
    """One model file as packaged: path relative to ``model/``, size, sha256 of the bytes."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PackageResult:
    """The written artifact: where (None: only streamed to the upload), its sha256 and size,
    and every model file in it."""

    path: Path | None
    sha256: str
    size: int
    files: tuple[PackagedFile, ...]


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


def _write_output(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


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
    root_name: str, model_files: Mapping[str, ModelFile]
) -> list[tuple[str, str, Any]]:
    """Sorted ``(tar name, kind, source)`` of the directories and model files; kind is "dir"
    or "model". The manifest is not planned: it is written last, from what was written."""
    _check_member_path(root_name, "root name")
    if "/" in root_name:
        raise PackagingError(f"root name {root_name!r} must be a single path component")
    files: dict[str, tuple[str, Any]] = {}
    for path, source in model_files.items():
        _check_member_path(path, "model file path")
        files[f"{root_name}/model/{path}"] = ("model", (path, _as_model_file(source)))
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


def _as_model_file(source: ModelFile | str) -> ModelFile:
    return Path(source) if isinstance(source, str | os.PathLike) else source


def manifest_bytes(files: Sequence[PackagedFile]) -> bytes:
    """``MANIFEST.sha256``: one ``<sha256>  model/<path>`` line per file, in tar order, so
    ``sha256sum -c MANIFEST.sha256`` checks the extracted files from inside ``<root>/``."""
    ordered = sorted(files, key=lambda item: item.path.encode("utf-8"))
    return format_sha256sums((f"model/{item.path}", item.sha256) for item in ordered)


class SourceReader(Protocol):
    """An open model file: read front to back (``readinto``), ``read(1)`` b"" at its end."""

    def readinto(self, buffer: memoryview) -> int: ...

    def read(self, size: int = -1) -> bytes: ...

    def __enter__(self) -> SourceReader: ...

    def __exit__(self, *exc_info: object) -> None: ...


class ModelSource(Protocol):
    """A model file that is not (yet) a file on disk, such as one still downloading: its size
    is known beforehand and its bytes are read once, in order."""

    @property
    def size(self) -> int: ...

    def open(self) -> SourceReader: ...


ModelFile = Path | ModelSource


class ArtifactUpload(Protocol):
    """Where the compressed bytes also go while they are written (a store upload). ``data``
    is only valid during the call (a view of a block that is used again): keep a copy."""

    def write(self, data: bytes | memoryview) -> None: ...


def package_snapshot(
    out_path: Path | None,
    *,
    root_name: str,
    model_files: Mapping[str, ModelFile],
    mtime: int,
    progress: Callable[[int, int], None] | None = None,
    expected_sha256: Mapping[str, str] | None = None,
    upload: ArtifactUpload | None = None,
    compress_workers: int | None = None,
    on_file: Callable[[PackagedFile], None] | None = None,
    layout: int = ARTIFACT_LAYOUT,
) -> PackageResult:
    """Write a byte-reproducible tar.gz of a model snapshot in one streaming pass.

    ``model_files`` maps paths relative to ``model/`` (``/`` separators) to files on disk
    or to ``ModelSource``s (files still arriving). Each model file is read once: its sha256
    is computed as it is copied, and when ``expected_sha256`` has an entry for it and the
    bytes differ, ``PackagingError`` names the file; ``on_file`` is then called with it
    (and may raise, to stop the packaging then and there). ``MANIFEST.sha256`` follows the
    model files, made from the digests computed while they were copied. The tar stream is
    compressed block by block on ``compress_workers`` threads (default: one per CPU) with
    ISA-L, and the tarball's sha256 is computed as it is written (never re-read);
    ``upload.write`` gets the same bytes as they are written, so a store upload runs
    alongside. Output goes to ``<out_path>.partial`` and is renamed into place only when
    complete; on any failure the partial file is removed. With ``out_path`` None nothing is
    written locally: ``upload`` gets the only copy. ``progress(done, total)``: bytes of
    model files consumed. Memory use is bounded by a few blocks, whatever the size of the
    files. ``layout`` is the artifact layout to write (2 or 3, see the module docstring): a
    rebuild passes the one the version was stored in.
    """
    if layout not in PACKAGED_LAYOUTS:
        raise PackagingError(
            f"artifact layout {layout} cannot be packaged: this packager writes layouts "
            f"{' and '.join(map(str, PACKAGED_LAYOUTS))}"
        )
    if mtime < 0:
        raise PackagingError(f"mtime must be a non-negative Unix time, got {mtime}")
    if out_path is None and upload is None:
        raise PackagingError("packaging needs an output file, an upload, or both")
    out_path = None if out_path is None else Path(out_path)
    entries = _plan_entries(root_name, model_files)
    expected = _expected_digests(expected_sha256, model_files)
    tracker = _Progress(_input_size(model_files), progress)
    partial = None if out_path is None else out_path.with_name(out_path.name + ".partial")
    writer = _EntryWriter(
        entries, root_name=root_name, mtime=mtime, expected=expected, tracker=tracker
    )
    writer.on_file = on_file
    try:
        with contextlib.ExitStack() as files:
            fd = None if partial is None else files.enter_context(partial.open("wb")).fileno()
            output = _TarballOutput(fd, upload)
            writer.write_all(output.write, compress_workers, layout)
            if fd is not None:
                os.fsync(fd)
        if partial is not None and out_path is not None:
            partial.replace(out_path)
    except BaseException as error:
        if partial is not None:
            partial.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _packaging_os_error(error, partial, writer.current) from error
        raise
    tracker.report()
    return PackageResult(
        path=out_path,
        sha256=output.sha256.hexdigest(),
        size=output.size,
        files=tuple(sorted(writer.packaged, key=lambda item: item.path)),
    )


def artifact_root_name(model_name: str, version: str) -> str:
    """The tarball's top directory, ``<name>-<version>`` (the tarball is that plus .tar.gz)."""
    return f"{model_name}-{version}"


def snapshot_files(
    snapshot_dir: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> dict[str, Path]:
    """The regular files under ``snapshot_dir`` (``/``-separated relative paths) that the
    import's include/exclude patterns select, with the Hub client's rules (fnmatch; ``*``
    also crosses ``/``; a trailing ``/`` means everything below). Links are refused."""
    snapshot_dir = Path(snapshot_dir)
    if not snapshot_dir.is_dir():
        raise PackagingError(f"{snapshot_dir} is not a directory")
    found: dict[str, Path] = {}
    for path in sorted(snapshot_dir.rglob("*")):
        relative = path.relative_to(snapshot_dir).as_posix()
        if path.is_symlink():
            raise PackagingError(f"{relative!r} in {snapshot_dir} is a link; links are refused")
        if path.is_file():
            found[relative] = path
    selected = filter_repo_objects(
        items=list(found),
        allow_patterns=list(include) or None,
        ignore_patterns=list(exclude) or None,
    )
    return {relative: found[relative] for relative in selected}


def package_directory(
    snapshot_dir: Path,
    out_path: Path,
    *,
    model_name: str,
    version: str,
    mtime: int,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    layout: int = ARTIFACT_LAYOUT,
) -> PackageResult:
    """Package the files of a downloaded snapshot as an import of ``model_name`` ``version``
    with these patterns would: the same inputs give the same bytes, so this is how an artifact
    is rebuilt and compared. ``mtime`` is the pinned commit's time (Unix seconds); ``layout``
    the artifact layout to write (2 or 3)."""
    files = snapshot_files(snapshot_dir, include, exclude)
    if not files:
        raise PackagingError(
            f"no file under {snapshot_dir} matches include {list(include) or ['*']} "
            f"and exclude {list(exclude)}"
        )
    return package_snapshot(
        out_path,
        root_name=artifact_root_name(model_name, version),
        model_files=files,
        mtime=mtime,
        progress=progress,
        layout=layout,
    )


def _expected_digests(
    expected_sha256: Mapping[str, str] | None, model_files: Mapping[str, ModelFile]
) -> dict[str, str]:
    expected = dict(expected_sha256 or {})
    unknown = set(expected) - set(model_files)
    if unknown:
        raise PackagingError(
            f"expected sha256 given for files that are not being packaged: {sorted(unknown)}"
        )
    return expected


def _input_size(model_files: Mapping[str, ModelFile]) -> int:
    """Bytes to package: the model files."""
    try:
        return sum(
            source.stat().st_size if isinstance(source, Path) else source.size
            for source in map(_as_model_file, model_files.values())
        )
    except OSError as error:
        raise PackagingError(
            f"cannot read model file {error.filename}: {error.strerror}"
        ) from error


class _TarballOutput:
    """Where the compressed bytes go: the work file and/or the upload; hashed as written."""

    def __init__(self, fd: int | None, upload: ArtifactUpload | None) -> None:
        self.fd = fd
        self.upload = upload
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.sha256.update(data)
        self.size += len(data)
        if self.fd is not None:
            _write_output(self.fd, data)
        if self.upload is not None:
            self.upload.write(data)


class _EntryWriter:
    """Writes the planned entries, then the manifest, into the tar stream, compressed on a
    pool of threads."""

    def __init__(
        self,
        entries: list[tuple[str, str, Any]],
        *,
        root_name: str,
        mtime: int,
        expected: Mapping[str, str],
        tracker: _Progress,
    ) -> None:
        self.entries = entries
        self.root_name = root_name
        self.mtime = mtime
        self.expected = expected
        self.tracker = tracker
        self.packaged: list[PackagedFile] = []
        self.current = ""  # the entry being written, for error messages
        self.on_file: Callable[[PackagedFile], None] | None = None

    def write_all(
        self, output: Callable[[bytes | memoryview], None], workers: int | None, layout: int
    ) -> None:
        gzip_pipeline = GzipPipeline(
            output,
            level=GZIP_LEVEL,
            workers=workers or max(1, os.cpu_count() or 1),
            store_incompressible=layout >= 3,
        )
        try:
            stream = TarStream(gzip_pipeline.submit, BLOCK_SIZE, gzip_pipeline.new_block)
            for name, kind, source in self.entries:
                self.current = name
                self._write_entry(stream, name, kind, source)
            self.current = f"{self.root_name}/{MANIFEST_NAME}"
            manifest = manifest_bytes(self.packaged)
            stream.write(
                _header(_tar_info(self.current, is_dir=False, size=len(manifest), mtime=self.mtime))
            )
            stream.write(manifest)
            stream.pad(len(manifest))
            stream.close()
            gzip_pipeline.finish()
        except BaseException:
            gzip_pipeline.abort()
            raise

    def _write_entry(self, stream: TarStream, name: str, kind: str, source: Any) -> None:
        if kind == "dir":
            stream.write(_header(_tar_info(name, is_dir=True, size=0, mtime=self.mtime)))
        else:
            relative, path = source
            packaged = _add_model_file(
                stream, name, relative, path, self.mtime, self.expected, self.tracker
            )
            self.packaged.append(packaged)
            if self.on_file is not None:
                self.on_file(packaged)


def _header(info: tarfile.TarInfo) -> bytes:
    # The same header tarfile.addfile writes (PAX for long or non-ASCII names).
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _add_model_file(
    stream: TarStream,
    name: str,
    relative: str,
    path: ModelFile,
    mtime: int,
    expected: Mapping[str, str],
    tracker: _Progress,
) -> PackagedFile:
    digest = hashlib.sha256()

    def on_data(data: memoryview) -> None:
        digest.update(data)
        tracker.add(len(data))

    with _open_model_file(path) as (handle, size):
        stream.write(_header(_tar_info(name, is_dir=False, size=size, mtime=mtime)))
        copied = stream.copy_from(handle, size, on_data)
        if copied != size:
            raise PackagingError(
                f"model file {relative!r} shrank while it was being packaged; download it again"
            )
        if handle.read(1):
            raise PackagingError(
                f"model file {relative!r} grew while it was being packaged; download it again"
            )
        stream.pad(size)
    sha256 = digest.hexdigest()
    want = expected.get(relative)
    if want is not None and want.lower() != sha256:
        raise PackagingError(
            f"model file {relative!r} changed on disk since it was checked: sha256 is {sha256}, "
            f"expected {want.lower()}; download it again"
        )
    return PackagedFile(path=relative, size=size, sha256=sha256)


@contextlib.contextmanager
def _open_model_file(source: ModelFile) -> Iterator[tuple[SourceReader, int]]:
    """The open file and its size: from the open descriptor for a file on disk (the bytes
    copied are the bytes described), as announced for a source."""
    if not isinstance(source, Path):
        with source.open() as reader:
            yield reader, source.size
        return
    with source.open("rb", buffering=0) as handle:
        yield cast(SourceReader, handle), os.fstat(handle.fileno()).st_size


def _packaging_os_error(error: OSError, partial: Path | None, current: str) -> PackagingError:
    if error.errno == errno.ENOSPC:
        return PackagingError(
            f"cannot write {partial.name if partial else 'the tarball'}: no space left on device "
            f"(while adding {current!r}); "
            "free disk space in the work directory and retry"
        )
    where = f" {error.filename}" if error.filename else ""
    return PackagingError(
        f"packaging failed while adding {current!r}:{where} {error.strerror or error}"
    )
