"""Artifacts as files in a local directory (`file://` URLs), written atomically.

A write goes to a temporary file in the destination's directory, is fsynced and moved into place
with `os.replace`, so a reader sees the whole file or none. Keys that would leave the root (by
`..` or through a symlink) are refused.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from aegis_catalog.lib.storage.base import (
    CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    ChecksumMismatch,
    InvalidStorageKey,
    ObjectNotFound,
    Progress,
    StorageError,
    StoreBase,
    StoredObject,
    check_sha256,
    checked_digest,
    fsync_directory,
    oserror_to_storage_error,
    parse_url,
    validate_key,
)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@contextlib.contextmanager
def _atomic_target(destination: Path, what: str) -> Iterator[int]:
    """Yield a file descriptor of a temporary file beside `destination`; on success fsync it
    and move it into place, on any failure remove it (the destination is left untouched)."""
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary_name = tempfile.mkstemp(
            dir=destination.parent, prefix=f".{destination.name}.", suffix=".partial"
        )
    except OSError as error:
        raise oserror_to_storage_error(error, what) from error
    temporary = Path(temporary_name)
    try:
        try:
            yield fd
            os.fchmod(fd, 0o644)
            os.fsync(fd)
        finally:
            os.close(fd)
        temporary.replace(destination)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(error, OSError):
            raise oserror_to_storage_error(error, what) from error
        raise
    fsync_directory(destination.parent)


def _copy_into(source: IO[bytes], fd: int, digest: Any, progress: Progress | None) -> int:
    size = 0
    while chunk := source.read(CHUNK_SIZE):
        _write_all(fd, chunk)
        digest.update(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return size


class LocalUpload:
    """A streamed write into a temporary file beside the destination, moved into place on
    complete: ``_atomic_target`` held open across calls."""

    def __init__(self, destination: Path) -> None:
        self.url = destination.as_uri()
        self._what = f"writing {self.url}"
        self._target = contextlib.ExitStack()
        self._fd = self._target.enter_context(_atomic_target(destination, self._what))
        self._size = 0

    def write(self, data: bytes | memoryview) -> None:
        try:
            _write_all(self._fd, data)
        except OSError as error:
            self.abort()
            raise oserror_to_storage_error(error, self._what) from error
        self._size += len(data)

    def complete(self, *, sha256: str) -> StoredObject:
        check_sha256(sha256)
        self._target.close()  # fsync, move into place; on failure the file is removed
        return StoredObject(url=self.url, size=self._size, sha256=sha256)

    def abort(self) -> None:
        # Leaving the target with an exception removes the temporary file; a second call,
        # or one after complete, finds nothing left to do.
        aborted = StorageError(f"the upload of {self.url} was aborted")
        self._target.__exit__(type(aborted), aborted, None)


class LocalStore(StoreBase):
    """Artifacts as files under `root`; URLs are `file:///<absolute path>`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalStore(root={str(self.root)!r})"

    # paths

    def _resolved_root(self) -> Path:
        return self.root.resolve()

    def _inside_root(self, path: Path, shown: str) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(self._resolved_root()):
            raise InvalidStorageKey(f"{shown} is outside the artifact directory {self.root}")
        return path

    def path_for(self, key: str) -> Path:
        """The file a key is stored in (inside root, symlinks included)."""
        validate_key(key)
        return self._inside_root(self.root.joinpath(*key.split("/")), repr(key))

    def url_for(self, key: str) -> str:
        return self.path_for(key).as_uri()

    def _path_of_url(self, url: str) -> Path:
        parsed = parse_url(url)
        if parsed.scheme != "file" or parsed.path is None:
            raise InvalidStorageKey(f"{url!r} is not a file:// URL; this store is {self.root}")
        return self._inside_root(Path(os.path.normpath(parsed.path)), url)

    # writes

    def put_file(
        self,
        local_path: Path,
        key: str,
        *,
        sha256: str,
        content_type: str = DEFAULT_CONTENT_TYPE,
        progress: Progress | None = None,
    ) -> StoredObject:
        """Copy `local_path` to `key` atomically, checking its SHA-256 while copying."""
        check_sha256(sha256)
        destination = self.path_for(key)
        url = destination.as_uri()
        digest = hashlib.sha256()
        with (
            Path(local_path).open("rb") as source,
            _atomic_target(destination, f"writing {url}") as fd,
        ):
            size = _copy_into(source, fd, digest, progress)
            if digest.hexdigest() != sha256:
                raise ChecksumMismatch(
                    f"{local_path} has SHA-256 {digest.hexdigest()}, not the expected {sha256}; "
                    f"nothing was written to {url}"
                )
        return StoredObject(url=url, size=size, sha256=sha256)

    def put_bytes(
        self,
        data: bytes,
        key: str,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        sha256: str | None = None,
    ) -> StoredObject:
        """Write `data` to `key` atomically, after checking it has the SHA-256 `sha256` when
        that is given (nothing is written otherwise)."""
        actual = checked_digest(data, sha256)
        destination = self.path_for(key)
        url = destination.as_uri()
        with _atomic_target(destination, f"writing {url}") as fd:
            view = memoryview(data)
            for start in range(0, len(view), CHUNK_SIZE):
                _write_all(fd, view[start : start + CHUNK_SIZE])
        return StoredObject(url=url, size=len(data), sha256=actual)

    def discard_unfinished_uploads(self, key: str) -> int:
        """Remove the temporary files of uploads to `key` whose writer died before the end."""
        destination = self.path_for(key)
        found = 0
        for leftover in destination.parent.glob(f".{glob.escape(destination.name)}.*.partial"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
                found += 1
        return found

    def open_upload(
        self,
        key: str,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        expected_size: int | None = None,
    ) -> LocalUpload:
        """Write `key` as the bytes come (atomically: nothing is at the URL until complete)."""
        return LocalUpload(self.path_for(key))

    # reads

    def head(self, url: str) -> StoredObject:
        path = self._path_of_url(url)
        try:
            status = path.stat()
        except FileNotFoundError as error:
            raise ObjectNotFound(f"{url} does not exist") from error
        except OSError as error:
            raise oserror_to_storage_error(error, f"reading {url}") from error
        if not path.is_file():
            raise ObjectNotFound(f"{url} is not a file")
        return StoredObject(url=url, size=status.st_size, sha256=None)

    def download(
        self,
        url: str,
        dest: Path,
        *,
        progress: Progress | None = None,
        expected_sha256: str | None = None,
    ) -> Path:
        """Copy the file at `url` to `dest` atomically; checks `expected_sha256` when given."""
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        dest = Path(dest)
        digest = hashlib.sha256()
        source, _size = self.open_read(url)
        with source, _atomic_target(dest, f"downloading {url} to {dest}") as fd:
            _copy_into(source, fd, digest, progress)
            if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
                raise ChecksumMismatch(
                    f"{url} has SHA-256 {digest.hexdigest()}, not the expected {expected_sha256}"
                )
        return dest

    def open_read(
        self, url: str, *, start: int = 0, end: int | None = None
    ) -> tuple[IO[bytes], int]:
        """The file, positioned at `start`; reading past `end` is the caller's to avoid (a file
        object cannot be cut short without a copy, and sendfile wants the file itself)."""
        path = self._path_of_url(url)
        try:
            handle = path.open("rb")
        except FileNotFoundError as error:
            raise ObjectNotFound(f"{url} does not exist") from error
        except IsADirectoryError as error:
            raise ObjectNotFound(f"{url} is not a file") from error
        except OSError as error:
            raise oserror_to_storage_error(error, f"reading {url}") from error
        if start:
            handle.seek(start)
        return handle, os.fstat(handle.fileno()).st_size

    def delete(self, url: str) -> None:
        """Remove the file (no error when it is already gone) and its empty parent folders."""
        path = self._path_of_url(url)
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError as error:
            raise InvalidStorageKey(f"{url} is a directory, not an artifact file") from error
        except OSError as error:
            raise oserror_to_storage_error(error, f"deleting {url}") from error
        root = self._resolved_root()
        parent = path.parent
        while parent.resolve() != root and parent.resolve().is_relative_to(root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def list_urls(self, prefix: str) -> list[str]:
        """The URLs of the files under a relative key prefix, sorted."""
        directory = self.path_for(prefix)
        try:
            files = [path for path in directory.rglob("*") if path.is_file()]
        except OSError as error:
            raise oserror_to_storage_error(error, f"listing {directory}") from error
        return sorted(path.as_uri() for path in files if not path.name.endswith(".partial"))

    def check(self) -> None:
        """Raise unless the directory exists (it is created) and a file can be written to it."""
        what = f"checking that the artifact directory {self.root} is writable"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.root, prefix=".aegis-check.", suffix=".partial")
        except OSError as error:
            raise oserror_to_storage_error(error, what) from error
        try:
            _write_all(fd, b"ok")
            os.fsync(fd)
        except OSError as error:
            raise oserror_to_storage_error(error, what) from error
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                Path(name).unlink()
