"""A repo's files fetched in the order a reader consumes them, the reader following close behind.

`SnapshotFeed` downloads the listed files (in the order given) as ranged GETs of `chunk_size`
bytes on a few threads, each chunk written at its offset of `<path>.part` in the destination
directory; a file whose chunks have all arrived is renamed to `<path>`. `FeedFile.open()` gives
a reader that returns the bytes of a file as soon as they are on disk, in order, waiting for
those still on the way, so a consumer (the packager) works on the first bytes of a model while
the last are still downloading. Downloads stay at most `lookahead` bytes ahead of what the
reader has consumed: several connections fill the file the reader is in, instead of one each
for files it will not need for a while.

A file the caller does not need on disk afterwards is kept in memory instead (`InMemory`: asked
once per candidate, with its size and its first chunk's bytes, so it can look at a header
before deciding): its chunks stay as they came off the socket until the reader has copied them,
nothing written to the disk or read back. A candidate it declines goes to the disk from then on,
the chunks held meanwhile included. Memory stays flat either way: at most `lookahead` bytes,
and a chunk per worker, are ahead of the reader.

A file already complete in the destination (same size as listed: from an earlier attempt) is
not fetched; `<path>.part` files of an earlier attempt are discarded. A file kept in memory is
not in the destination afterwards: another feed fetches it again. No digest is checked here:
the consumer hashes what it reads (it is the one place every byte passes through).
Plain Python: no Django.
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol
from urllib.parse import urlsplit

from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.file_download import http_get

from aegis_catalog.lib.hub.download import limit_read_size
from aegis_catalog.lib.hub.errors import HubError, HubUnavailable

MiB = 1024 * 1024
DEFAULT_CHUNK_SIZE = 4 * MiB
PART_SUFFIX = ".part"
STOP_PATIENCE_SECONDS = 5.0

Translate = Callable[[BaseException, str], HubError]


class InMemory(Protocol):
    """Which files a feed keeps in memory only (the caller's choice)."""

    def candidate(self, name: str, size: int) -> bool:
        """Whether the file (repo path, size) may be kept in memory: its chunks are fetched
        into memory until `keep` decides."""
        ...

    def keep(self, name: str, size: int, head: bytes) -> bool:
        """Asked once per candidate, when its first chunk (``head``) is in: keep it in memory
        only (True), or write it to the disk (False)."""
        ...


class Keep(enum.Enum):
    """Where a file's bytes go: the disk, memory only, or not decided yet (a candidate for
    memory whose first chunk is not in: its chunks are held in memory meanwhile)."""

    DISK = "disk"
    MEMORY = "memory"
    UNDECIDED = "undecided"


@dataclass(eq=False)
class _Chunk:
    file: FeedFile
    start: int
    length: int
    position: int  # where it starts in the feed's order of all bytes
    # The bytes, as they came off the socket, of a chunk fetched into memory (None once the
    # reader has copied them, or once they are written to the disk).
    pieces: list[bytes] | None = None


@dataclass(eq=False)
class FeedFile:
    """One file of the feed: its bytes arrive at `part`, renamed to `path` once complete."""

    name: str  # the repo path
    size: int
    path: Path
    feed: SnapshotFeed
    position: int = 0  # where the file starts in the feed's order of all bytes
    complete: bool = False  # all arrived: on disk at `path`, or in memory
    keep: Keep = Keep.DISK
    _chunks: list[_Chunk] = field(default_factory=list)
    _held: list[_Chunk] = field(default_factory=list)  # in before the file's keep was decided
    _done: list[bool] = field(default_factory=list)  # per chunk
    _contiguous: int = 0  # bytes on disk from the start, without a gap
    _location: str = ""
    _location_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def part(self) -> Path:
        return self.path.with_name(self.path.name + PART_SUFFIX)

    @property
    def in_memory(self) -> bool:
        """Whether the file's bytes are kept in memory only (never on disk at `path`)."""
        return self.keep is Keep.MEMORY

    def open(self) -> FeedReader:
        """A reader of the file's bytes as they arrive (or of the file on disk when complete)."""
        return FeedReader(self)


class FeedReader:
    """Reads one FeedFile front to back, waiting for bytes still being downloaded; raises the
    download's error (a HubError) if it failed."""

    def __init__(self, file: FeedFile) -> None:
        self._file = file
        self._feed = file.feed
        self._offset = 0
        self._piece = 0  # in memory: the piece of the current chunk, and where in it
        self._within = 0
        self._fd = self._open()

    def _open(self) -> int:
        """The file's descriptor; -1 for a file kept in memory."""
        with self._feed.condition:
            while not self._file.complete and not self._started():
                self._feed.wait()
            if self._file.in_memory:
                return -1
            path = self._file.path if self._file.complete else self._file.part
            return os.open(path, os.O_RDONLY)

    def _started(self) -> bool:
        if self._file.keep is Keep.DISK:
            return self._file.part.exists()
        return self._file.keep is Keep.MEMORY

    def readinto(self, buffer: memoryview | bytearray) -> int:
        view = memoryview(buffer)
        self._feed.raise_if_failed()
        if self._offset >= self._file.size:
            return 0
        available = self._feed.available(self._file, self._offset)
        view = view[: min(len(view), available - self._offset)]
        count = self._copy_from_memory(view) if self._fd < 0 else os.readv(self._fd, [view])
        if count == 0:
            raise HubUnavailable(f"{self._file.name!r} is shorter on disk than it was downloaded")
        self._offset += count
        self._feed.consumed(self._file.position + self._offset)
        return count

    def _copy_from_memory(self, view: memoryview) -> int:
        """Copy the next bytes of the (complete) chunk the reader is in; a chunk read to its
        end is let go."""
        chunk = self._file._chunks[self._offset // self._feed.chunk_size]
        pieces = chunk.pieces
        if not pieces:
            return 0
        piece = pieces[self._piece]
        count = min(len(view), len(piece) - self._within)
        view[:count] = memoryview(piece)[self._within : self._within + count]
        self._within += count
        if self._within == len(piece):
            self._piece, self._within = self._piece + 1, 0
            if self._piece == len(pieces):
                chunk.pieces = None
                self._piece = 0
        return count

    def read(self, size: int = -1) -> bytes:
        """Only to check the end: at the file's size, b"" (once the download is whole)."""
        if self._offset >= self._file.size:
            self._feed.available(self._file, self._offset)
            return b""
        buffer = bytearray(max(0, size) or 1)
        return bytes(buffer[: self.readinto(buffer)])

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FeedReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Sink:
    """The file-like object http_get writes one chunk into (never past the chunk's range)."""

    def __init__(self, chunk: _Chunk) -> None:
        self._chunk = chunk
        self._written = 0

    def _check_room(self, data: bytes) -> None:
        if self._written + len(data) > self._chunk.length:
            raise HubUnavailable(
                f"{self._chunk.file.name!r}: the server sent more bytes than the range asked for"
            )

    def tell(self) -> int:
        return self._written

    def truncate(self, size: int | None = None) -> int:
        return self._written if size is None else size

    @property
    def written(self) -> int:
        return self._written


class _ChunkSink(_Sink):
    """A chunk written at its offset of the part file."""

    def __init__(self, fd: int, chunk: _Chunk) -> None:
        super().__init__(chunk)
        self._fd = fd

    def write(self, data: bytes) -> int:
        self._check_room(data)
        view = memoryview(data)
        while view:
            count = os.pwrite(self._fd, view, self._chunk.start + self._written)
            self._written += count
            view = view[count:]
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        # http_get rewinds only when a server ignored a resumed Range: start the chunk over.
        self._written = offset if whence == 0 else self._written + offset
        return self._written


class _MemorySink(_Sink):
    """A chunk fetched into memory: the pieces are kept as they came (no copy)."""

    def __init__(self, chunk: _Chunk) -> None:
        super().__init__(chunk)
        self.pieces: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._check_room(data)
        self.pieces.append(bytes(data))  # (a copy only if it was not bytes)
        self._written += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        # http_get rewinds only when a server ignored a resumed Range: keep what is before.
        target = offset if whence == 0 else self._written + offset
        kept: list[bytes] = []
        size = 0
        for piece in self.pieces:
            if size + len(piece) > target:
                piece = piece[: max(0, target - size)]
            if piece:
                kept.append(piece)
            size += len(piece)
        self.pieces, self._written = kept, size
        return self._written


class SnapshotFeed:
    """Downloads `files` (repo path, size) of `repo_id` at `commit` into `dest_dir`, in order.

    Use as a context manager: leaving it stops the downloads (a failed or abandoned feed
    leaves `<path>.part` files, which the next feed discards)."""

    def __init__(
        self,
        *,
        endpoint: str,
        headers: dict[str, str],
        token: str | bool,
        timeout: float,
        translate: Translate,
        repo_id: str,
        commit: str,
        dest_dir: Path,
        files: Sequence[tuple[str, int]],
        workers: int,
        chunk_size: int | None = None,
        lookahead: int | None = None,
        in_memory: InMemory | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._headers = headers
        self._token = token
        self._timeout = timeout
        self._translate = translate
        self.repo_id = repo_id
        self.commit = commit
        self._workers = max(1, workers)
        self.chunk_size = chunk_size or DEFAULT_CHUNK_SIZE
        # Enough for every worker to have a chunk on the way, and no more: at the end of the
        # download, what is left for the consumer is what the last chunks brought.
        self._lookahead = lookahead or self._workers * self.chunk_size
        self._in_memory = in_memory
        # One lock, two conditions: readers wait on `condition` for bytes, the downloads on
        # `_room` for the reader to leave room ahead of it (each is woken only for its own).
        lock = threading.RLock()
        self.condition = threading.Condition(lock)
        self._room = threading.Condition(lock)
        self._error: BaseException | None = None
        self._stopped = False
        self._consumed = 0
        self._threads: list[threading.Thread] = []
        self.files: dict[str, FeedFile] = {}
        self._chunks: list[_Chunk] = []
        self._next_chunk = 0
        self._plan(Path(dest_dir), files)

    def _plan(self, dest_dir: Path, files: Sequence[tuple[str, int]]) -> None:
        position = 0
        root = dest_dir.resolve()
        for name, size in files:
            path = dest_dir.joinpath(*name.split("/"))
            if root not in path.resolve().parents:
                raise HubError(f"{name!r} of {self.repo_id} is not a path inside the repo")
            path.parent.mkdir(parents=True, exist_ok=True)
            item = FeedFile(name, size, path, self, position=position)
            item.part.unlink(missing_ok=True)
            if path.is_file() and path.stat().st_size == size:
                item.complete = True
            else:
                path.unlink(missing_ok=True)
                if size and self._in_memory is not None and self._in_memory.candidate(name, size):
                    item.keep = Keep.UNDECIDED
                starts = range(0, size, self.chunk_size) if size else [0]
                for start in starts:
                    length = min(self.chunk_size, size - start)
                    item._chunks.append(_Chunk(item, start, length, position + start))
                self._chunks += item._chunks
                item._done = [False] * len(starts)
            self.files[name] = item
            position += size

    # -- the consumer's side --

    def fail(self, error: BaseException) -> None:
        """Stop the downloads and make every reader raise ``error`` (the consumer gave up)."""
        with self.condition:
            if self._error is None:
                self._error = error
            self._wake_everyone()

    def _wake_everyone(self) -> None:
        """(Holding the lock.) Wake readers and downloads alike: the feed stops or failed."""
        self.condition.notify_all()
        self._room.notify_all()

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def wait(self) -> None:
        """Wait (holding `condition`) for news; raise the download's error if it failed."""
        self.raise_if_failed()
        if self._stopped:
            raise HubUnavailable("the download was stopped")
        self.condition.wait(1.0)
        self.raise_if_failed()

    def available(self, file: FeedFile, offset: int) -> int:
        """How far `file` can be read from `offset` (waits until past it, or until complete)."""
        with self.condition:
            while True:
                if file.complete:
                    return file.size
                if file._contiguous > offset:
                    return file._contiguous
                self.wait()

    def consumed(self, position: int) -> None:
        with self.condition:
            if position > self._consumed:
                self._consumed = position
                if self._next_chunk < len(self._chunks) and self._may_start(
                    self._chunks[self._next_chunk]
                ):
                    self._room.notify_all()

    def _may_start(self, chunk: _Chunk) -> bool:
        return chunk.position < self._consumed + self._lookahead

    # -- the downloading side --

    def __enter__(self) -> SnapshotFeed:
        limit_read_size()
        for index in range(min(self._workers, len(self._chunks))):
            thread = threading.Thread(target=self._work, name=f"hub-feed-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self.condition:
            self._stopped = True
            self._wake_everyone()
        # After a failure, a download stuck on a silent connection is not waited for long: its
        # thread only writes to a part file, which the next feed discards.
        patience = None if error is None else STOP_PATIENCE_SECONDS
        for thread in self._threads:
            thread.join(patience)
        for chunk in self._chunks:
            chunk.pieces = None  # what a failed consumer did not read

    def _take(self) -> _Chunk | None:
        with self.condition:
            while not self._stopped and self._error is None:
                if self._next_chunk >= len(self._chunks):
                    return None
                chunk = self._chunks[self._next_chunk]
                if self._may_start(chunk):
                    self._next_chunk += 1
                    return chunk
                self._room.wait(1.0)
            return None

    def _work(self) -> None:
        while (chunk := self._take()) is not None:
            try:
                self._fetch(chunk)
            except BaseException as error:
                with self.condition:
                    if self._error is None:
                        self._error = (
                            error
                            if isinstance(error, HubError)
                            else self._translate(
                                error, f"{chunk.file.name!r} of {self.repo_id} at {self.commit}"
                            )
                        )
                    self._wake_everyone()
                return

    def _location(self, file: FeedFile) -> str:
        """Where the file's bytes are (the CDN URL the Hub redirects to, asked once per file:
        the other workers starting on the same file wait for the answer)."""
        with file._location_lock:
            return file._location or self._ask_location(file)

    def _ask_location(self, file: FeedFile) -> str:
        url = hf_hub_url(self.repo_id, file.name, revision=self.commit, endpoint=self.endpoint)
        metadata = get_hf_file_metadata(
            url, token=self._token, timeout=self._timeout, headers=self._headers,
            endpoint=self.endpoint, retry_on_errors=True,
        )  # fmt: skip
        file._location = metadata.location
        return file._location

    def _headers_for(self, location: str) -> dict[str, str]:
        """The Hub's headers; without the token for another host (a CDN's signed URL refuses a
        second authentication, and the token is the Hub's, not the CDN's)."""
        if urlsplit(location).netloc == urlsplit(self.endpoint).netloc:
            return dict(self._headers)
        return {
            key: value for key, value in self._headers.items() if key.lower() != "authorization"
        }

    def _fetch(self, chunk: _Chunk) -> None:
        file = chunk.file
        location = self._location(file)
        if file.keep is Keep.DISK:
            fd = os.open(file.part, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                with self.condition:
                    self.condition.notify_all()  # the part file exists: a reader may open it
                self._get(chunk, location, _ChunkSink(fd, chunk))
            finally:
                os.close(fd)
            self._chunk_done(chunk)
        else:
            sink = _MemorySink(chunk)
            self._get(chunk, location, sink)
            chunk.pieces = sink.pieces
            self._settle(chunk)

    def _get(self, chunk: _Chunk, location: str, sink: _ChunkSink | _MemorySink) -> None:
        """The chunk's bytes into ``sink`` (http_get: its retries, resuming where it was)."""
        file = chunk.file
        if chunk.length:
            headers = self._headers_for(location)
            if chunk.length < file.size:
                # A whole file is asked for without a Range: the Hub may send small text
                # files gzip-encoded, which a range of would not mean the same bytes.
                end = chunk.start + chunk.length - 1
                headers["Range"] = f"bytes={chunk.start}-{end}"
            http_get(
                location,
                sink,  # type: ignore[arg-type]
                headers=headers,
                expected_size=chunk.length,
                displayed_filename=file.name,
            )
        if sink.written != chunk.length:
            raise HubUnavailable(
                f"{file.name!r} of {self.repo_id} at {self.commit}: bytes {chunk.start}-"
                f"{chunk.start + chunk.length} arrived with {sink.written:,} bytes"
            )

    def _settle(self, chunk: _Chunk) -> None:
        """A chunk fetched into memory is in: the first chunk of an undecided file has the
        caller decide where the file goes; a chunk of a file that goes to the disk is written
        there; one in before its file was decided waits in memory for the decision."""
        file = chunk.file
        with self.condition:
            if file.keep is Keep.UNDECIDED and chunk.start != 0:
                file._held.append(chunk)
                return
        if file.keep is Keep.UNDECIDED:
            assert self._in_memory is not None and chunk.pieces is not None
            head = b"".join(chunk.pieces)
            keep = Keep.MEMORY if self._in_memory.keep(file.name, file.size, head) else Keep.DISK
            with self.condition:
                file.keep = keep
                waiting, file._held = [chunk, *file._held], []
        else:
            waiting = [chunk]
        if file.keep is Keep.DISK:
            self._write_out(file, waiting)
        for item in waiting:
            self._chunk_done(item)

    def _write_out(self, file: FeedFile, chunks: list[_Chunk]) -> None:
        """Write chunks fetched into memory at their offsets of the part file, and let go."""
        fd = os.open(file.part, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for chunk in chunks:
                sink = _ChunkSink(fd, chunk)
                for piece in chunk.pieces or ():
                    sink.write(piece)
                chunk.pieces = None
        finally:
            os.close(fd)

    def _chunk_done(self, chunk: _Chunk) -> None:
        file = chunk.file
        with self.condition:
            file._done[chunk.start // self.chunk_size] = True
            done = file._done
            index = file._contiguous // self.chunk_size if file.size else 0
            while index < len(done) and done[index]:
                index += 1
            file._contiguous = min(file.size, index * self.chunk_size)
            if all(done):
                if not file.in_memory:
                    file.part.replace(file.path)
                file.complete = True
            self.condition.notify_all()
