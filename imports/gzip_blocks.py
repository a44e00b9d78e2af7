"""The compressing half of the packager: a tar stream cut into fixed-size blocks, deflated on
a pool of threads (as pigz does), written out in order as one standard gzip member.

The output depends only on the input bytes, the block size and the level (and the ISA-L
version), never on how many threads ran or how reads happened to return.

With ``store_incompressible`` (artifact layout 3) a block that deflate would not shrink is
written as deflate *stored* blocks instead (its bytes as they are, 5 bytes of header per
65,535), so a core is not spent deflating random-looking weights for a gain of a few percent at
most. Whether a block is stored is decided from samples of it (``looks_incompressible``),
at about 1/20 of the cost of deflating it, and depends only on the block and the 32 KiB before
it: the output stays byte-reproducible.
"""

from __future__ import annotations

import collections
import queue
import struct
import tarfile
import threading
from collections.abc import Callable, Sequence
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

# A block is stored when none of SAMPLE_COUNT samples of SAMPLE_SIZE bytes, spread evenly from
# its first byte to its last, deflates below STORE_RATIO of its size. Deflating 8 KiB samples
# of 4 MiB blocks at level 1 (ISA-L 1.9.1) gives: random bytes and packed 4-bit weights 1.0013
# (deflate only adds); fp32, fp16 and int8 weights drawn from a normal distribution 0.87-0.93;
# bf16 0.79; JSON 0.34-0.39; each within a percent of its whole block. 0.97 sits between the
# two groups: what is stored would have saved under 3 %, and weights that do shrink are still
# deflated. The samples cover both ends of the block, their starts ~584 KiB apart, so a block
# holding the end of a shard and then a JSON file is deflated as before; only compressible
# bytes lying wholly between two samples, with random bytes at every sample, are stored.
# 64 KiB deflated (each primed with 32 KiB) of 4 MiB: about 1/20 of the cost of deflating it.
SAMPLE_SIZE = 8 * 1024
SAMPLE_COUNT = 8
STORE_RATIO = 0.97
# The most bytes one stored block holds (its LEN is 16 bits).
STORED_BLOCK_MAX = 65_535


Piece = bytes | memoryview


class Readable(Protocol):
    def readinto(self, buffer: memoryview) -> int: ...


class CompressionAborted(Exception):
    """The pipeline was stopped after a failure elsewhere."""


def deflate_block(
    block: bytes | bytearray,
    dictionary: bytes,
    level: int,
    final: bool,
    store_incompressible: bool = False,
) -> bytes:
    """Raw deflate of one block, primed with the 32 KiB before it, ending byte-aligned; with
    ``store_incompressible``, stored blocks instead when ``looks_incompressible``.

    Blocks are compressed independently (as pigz does), so they can be compressed on several
    cores; the output depends only on the block, its dictionary, the level and the flag.
    """
    return b"".join(deflate_pieces(block, dictionary, level, final, store_incompressible))


def deflate_pieces(
    block: bytes | bytearray,
    dictionary: bytes,
    level: int,
    final: bool,
    store_incompressible: bool = False,
) -> Sequence[Piece]:
    """``deflate_block``'s bytes in pieces: stored blocks are their headers and views of
    ``block`` itself (not copied; valid while ``block`` is unchanged)."""
    if store_incompressible and looks_incompressible(block, dictionary, level):
        return stored_pieces(block, final)
    return [_deflate(block, dictionary, level, final)]


def looks_incompressible(block: bytes | bytearray, dictionary: bytes, level: int) -> bool:
    """Whether no sample of ``block`` (``SAMPLE_COUNT`` of ``SAMPLE_SIZE`` bytes, the first at
    its start, the last at its end, each primed with the 32 KiB before it as the block's
    deflate would have it) deflates below ``STORE_RATIO`` of its size."""
    if not block:
        return False  # nothing to store
    view = memoryview(block)
    last_start = max(0, len(block) - SAMPLE_SIZE)
    # dict.fromkeys: a block shorter than the samples is deflated once, not once per sample.
    for start in dict.fromkeys(last_start * i // (SAMPLE_COUNT - 1) for i in range(SAMPLE_COUNT)):
        sample = view[start : start + SAMPLE_SIZE]
        before = dictionary + bytes(view[max(0, start - GZIP_WINDOW) : start])
        deflated = _deflate(sample, before[-GZIP_WINDOW:], level, final=False)
        if len(deflated) < len(sample) * STORE_RATIO:
            return False
    return True


def stored_blocks(block: bytes | bytearray, final: bool) -> bytes:
    """``block`` as deflate stored blocks (RFC 1951 3.2.4): each a byte 0x00 (0x01 for the
    last block of the stream), LEN and NLEN (little-endian), then up to 65,535 bytes as they
    are. Every block of ours starts byte-aligned, so the 3 header bits and their padding to
    the byte boundary are that one byte. An empty final block is one stored block of 0 bytes."""
    return b"".join(stored_pieces(block, final))


def stored_pieces(block: bytes | bytearray, final: bool) -> list[Piece]:
    """``stored_blocks`` as headers and views of ``block`` (nothing copied)."""
    view = memoryview(block)
    parts: list[Piece] = []
    for start in range(0, len(block), STORED_BLOCK_MAX):
        chunk = view[start : start + STORED_BLOCK_MAX]
        last = final and start + STORED_BLOCK_MAX >= len(block)
        parts += (struct.pack("<BHH", int(last), len(chunk), len(chunk) ^ 0xFFFF), chunk)
    if final and not block:
        parts.append(struct.pack("<BHH", 1, 0, 0xFFFF))
    return parts


def _deflate(
    block: bytes | bytearray | memoryview, dictionary: bytes, level: int, final: bool
) -> bytes:
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
    writing the output all overlap. At most ``workers + 1`` blocks wait: memory stays bounded
    whatever the size of the model. ``output`` gets each block's bytes in pieces (stored
    blocks are views of the block: valid only during the call), and the blocks of
    ``new_block`` are used again once written out, so no block is allocated and faulted in
    afresh for every 4 MiB of the stream.
    """

    def __init__(
        self,
        output: Callable[[Piece], None],
        *,
        level: int,
        workers: int,
        store_incompressible: bool = False,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        self._output = output
        self._level = level
        self._store_incompressible = store_incompressible
        self._block_size = block_size
        self._spare: collections.deque[bytearray] = collections.deque()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aegis-gzip")
        self._pending: queue.Queue[tuple[Future[Sequence[Piece]], bytes | bytearray] | None] = (
            queue.Queue(maxsize=workers + 1)
        )
        self._error: BaseException | None = None
        self._crc = 0
        self._size = 0
        self._dictionary = b""
        self._writer = threading.Thread(target=self._drain, name="aegis-gzip-writer", daemon=True)
        self._writer.start()

    def new_block(self) -> bytearray:
        """A block to fill and submit: one written out before, or a new one."""
        try:
            return self._spare.pop()
        except IndexError:
            return bytearray(self._block_size)

    def submit(self, block: bytearray | bytes, *, final: bool) -> None:
        """Queue one block of the tar stream (the last one with ``final``), which is the
        pipeline's until it is written out; blocks while the writer is behind, and raises the
        writer's error if it failed."""
        self._crc = isal_zlib.crc32(block, self._crc)
        self._size += len(block)
        future = self._pool.submit(
            deflate_pieces, block, self._dictionary, self._level, final, self._store_incompressible
        )
        self._dictionary = bytes(block[-GZIP_WINDOW:])
        while True:
            self._raise_if_failed()
            try:
                self._pending.put((future, block), timeout=0.2)
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
            item = self._pending.get()
            if item is None:
                return
            future, block = item
            if self._error is not None:
                future.cancel()
                continue
            try:
                for piece in future.result():
                    self._output(piece)
            except BaseException as error:
                self._error = error
            if isinstance(block, bytearray) and len(block) == self._block_size:
                self._spare.append(block)


class TarStream:
    """Assembles the tar stream in fixed-size blocks and hands each to ``submit``.

    File contents are read straight into the block (no copy), and every slice read is passed
    to ``on_data`` for hashing. The block size, not how reads happen to return, decides where
    compression blocks start: the output is the same on every run.
    """

    def __init__(
        self,
        submit: Callable[..., None],
        block_size: int,
        new_block: Callable[[], bytearray] | None = None,
    ) -> None:
        self._submit = submit
        self._block_size = block_size
        self._new_block = new_block or (lambda: bytearray(block_size))
        self._block = self._new_block()
        self._used = 0
        self._held: bytearray | None = None  # a full block, sent once we know it is not last
        self.position = 0  # bytes of tar stream so far

    def _block_full(self) -> None:
        if self._held is not None:
            self._submit(self._held, final=False)
        self._held = self._block
        self._block = self._new_block()
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
