"""The compressing half of the packager: a tar stream cut into fixed-size blocks, deflated on
a pool of threads (as pigz does), written out in order as one standard gzip member.

The output depends only on the input bytes, the block size and the level (and the ISA-L
version), never on how many threads ran or how reads happened to return.
"""

from __future__ import annotations

import queue
import struct
import tarfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from isal import isal_zlib

# ISA-L's deflate level 1 (of 0-3): several times faster than zlib's level 6, and standard
# gzip that any gunzip or tar reads. Changing the level or the block size changes the bytes.
GZIP_LEVEL = 1
GZIP_WINDOW = 32 * 1024
# id1 id2 deflate, no flags (no name, no comment), mtime 0, no extra flags, OS "unknown".
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
BLOCK_SIZE = 4 * 1024 * 1024


class Readable(Protocol):
    def readinto(self, buffer: memoryview) -> int: ...


class CompressionAborted(Exception):
    """The pipeline was stopped after a failure elsewhere."""


def deflate_block(block: bytes | bytearray, dictionary: bytes, level: int, final: bool) -> bytes:
    """Raw deflate of one block, primed with the 32 KiB before it, ending byte-aligned.

    Blocks are compressed independently (as pigz does), so they can be compressed on several
    cores; the output depends only on the block, its dictionary and the level.
    """
    if dictionary:
        compressor = isal_zlib.compressobj(
            level, isal_zlib.DEFLATED, -15, 9, isal_zlib.Z_DEFAULT_STRATEGY, dictionary
        )
    else:
        compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    flush = isal_zlib.Z_FINISH if final else isal_zlib.Z_SYNC_FLUSH
    return compressor.compress(block) + compressor.flush(flush)


class GzipPipeline:
    """Fixed-size blocks of the tar stream in, one gzip member out, to ``output`` (called from
    a writer thread).

    Blocks are deflated by a pool of threads (isal releases the GIL), and a writer thread takes
    their results in order, so reading and hashing the input, compressing, and hashing and
    writing the output all overlap. At most ``max_pending`` blocks wait: memory stays bounded
    whatever the size of the model.
    """

    def __init__(self, output: Callable[[bytes], None], *, level: int, workers: int) -> None:
        self._output = output
        self._level = level
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aegis-gzip")
        self._pending: queue.Queue[Future[bytes] | None] = queue.Queue(maxsize=workers + 1)
        self._error: BaseException | None = None
        self._crc = 0
        self._size = 0
        self._dictionary = b""
        self._writer = threading.Thread(target=self._drain, name="aegis-gzip-writer", daemon=True)
        self._writer.start()

    def submit(self, block: bytearray | bytes, *, final: bool) -> None:
        """Queue one block of the tar stream (the last one with ``final``); blocks while the
        writer is behind, and raises the writer's error if it failed."""
        self._crc = isal_zlib.crc32(block, self._crc)
        self._size += len(block)
        future = self._pool.submit(deflate_block, block, self._dictionary, self._level, final)
        self._dictionary = bytes(block[-GZIP_WINDOW:])
        while True:
            self._raise_if_failed()
            try:
                self._pending.put(future, timeout=0.2)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Write the gzip trailer after the last block and wait until everything is out."""
        self._put_end()
        self._writer.join()
        self._pool.shutdown()
        self._raise_if_failed()
        self._output(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))

    def abort(self) -> None:
        """Stop after a failure elsewhere: drop queued blocks and wait for the threads."""
        if self._error is None:
            self._error = CompressionAborted("packaging was interrupted")
        self._put_end()
        self._writer.join()
        self._pool.shutdown(cancel_futures=True)

    def _put_end(self) -> None:
        while self._writer.is_alive():
            try:
                self._pending.put(None, timeout=0.2)
                return
            except queue.Full:
                continue

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _drain(self) -> None:
        try:
            self._output(GZIP_HEADER)
        except BaseException as error:
            self._error = error
        while True:
            future = self._pending.get()
            if future is None:
                return
            if self._error is not None:
                future.cancel()
                continue
            try:
                self._output(future.result())
            except BaseException as error:
                self._error = error


class TarStream:
    """Assembles the tar stream in fixed-size blocks and hands each to ``submit``.

    File contents are read straight into the block (no copy), and every slice read is passed
    to ``on_data`` for hashing. The block size, not how reads happen to return, decides where
    compression blocks start: the output is the same on every run.
    """

    def __init__(self, submit: Callable[..., None], block_size: int) -> None:
        self._submit = submit
        self._block_size = block_size
        self._block = bytearray(block_size)
        self._used = 0
        self._held: bytearray | None = None  # a full block, sent once we know it is not last
        self.position = 0  # bytes of tar stream so far

    def _block_full(self) -> None:
        if self._held is not None:
            self._submit(self._held, final=False)
        self._held = self._block
        self._block = bytearray(self._block_size)
        self._used = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            count = min(len(view), self._block_size - self._used)
            self._block[self._used : self._used + count] = view[:count]
            self._used += count
            self.position += count
            view = view[count:]
            if self._used == self._block_size:
                self._block_full()

    def copy_from(self, handle: Readable, size: int, on_data: Callable[[memoryview], None]) -> int:
        """Copy up to ``size`` bytes of ``handle`` into the stream; return how many there were."""
        copied = 0
        while copied < size:
            room = min(size - copied, self._block_size - self._used)
            target = memoryview(self._block)[self._used : self._used + room]
            count = handle.readinto(target)
            if not count:
                break
            on_data(target[:count])
            self._used += count
            self.position += count
            copied += count
            if self._used == self._block_size:
                self._block_full()
        return copied

    def pad(self, size: int) -> None:
        """Zero bytes up to the next 512-byte tar block after ``size`` bytes of content."""
        remainder = size % tarfile.BLOCKSIZE
        if remainder:
            self.write(bytes(tarfile.BLOCKSIZE - remainder))

    def close(self) -> None:
        """End the archive as tarfile does (two zero blocks, padded to a whole record)."""
        end = self.position + 2 * tarfile.BLOCKSIZE
        end += -end % tarfile.RECORDSIZE
        self.write(bytes(end - self.position))
        if self._used:
            if self._held is not None:
                self._submit(self._held, final=False)
            self._submit(bytes(self._block[: self._used]), final=True)
        elif self._held is not None:
            self._submit(self._held, final=True)
        self._held = None
