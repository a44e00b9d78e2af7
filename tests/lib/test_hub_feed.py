"""SnapshotFeed: a file the caller keeps in memory is read from memory and never written to the
disk; a file it declines, and any other, is written to the disk as before."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aegis_catalog.lib.hub import HubClient, HubUnavailable, feed
from devservers.hub_double import HubDouble

MiB = 1024 * 1024


class KeepByPrefix:
    """Keeps the `.bin` files whose first bytes say KEEP; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int, int]] = []

    def candidate(self, name: str, size: int) -> bool:
        return name.endswith(".bin")

    def keep(self, name: str, size: int, head: bytes) -> bool:
        self.asked.append((name, size, len(head)))
        return head.startswith(b"KEEP")


def read_all(snapshot: feed.SnapshotFeed, name: str) -> bytes:
    out = bytearray()
    buffer = bytearray(300_000)  # reads that do not line up with the chunks
    with snapshot.files[name].open() as reader:
        while count := reader.readinto(memoryview(buffer)):
            out += buffer[:count]
        assert reader.read(1) == b""
    return bytes(out)


def test_a_kept_file_is_read_from_memory_and_never_written(
    fresh_hub_double: HubDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "DEFAULT_CHUNK_SIZE", MiB)
    content = {
        "declined.bin": b"DISK" + os.urandom(3 * MiB),
        "kept.bin": b"KEEP" + os.urandom(5 * MiB),
        "notes.txt": os.urandom(2 * MiB),
    }
    commit = fresh_hub_double.add_repo("acme/feed", content)
    client = HubClient(fresh_hub_double.url, timeout=10)
    keeper = KeepByPrefix()
    files = [(name, len(data)) for name, data in content.items()]

    with client.feed("acme/feed", commit, tmp_path, files, in_memory=keeper) as snapshot:
        read = {name: read_all(snapshot, name) for name, _ in files}

    assert read == content
    assert [snapshot.files[name].in_memory for name, _ in files] == [False, True, False]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["declined.bin", "notes.txt"]
    # Asked once per candidate, with its first chunk.
    assert sorted(keeper.asked) == [
        ("declined.bin", 3 * MiB + 4, MiB),
        ("kept.bin", 5 * MiB + 4, MiB),
    ]
    assert fresh_hub_double.body_fetches("acme/feed", "kept.bin") == 6
    # Each chunk let go once the reader copied it.
    assert all(chunk.pieces is None for chunk in snapshot.files["kept.bin"]._chunks)


def test_a_chunk_in_memory_takes_what_its_range_holds_and_rewinds() -> None:
    snapshot_file = feed.FeedFile("w.bin", 10, Path("w.bin"), feed=None)  # type: ignore[arg-type]
    sink = feed._MemorySink(feed._Chunk(snapshot_file, 0, 7, 0))
    sink.write(b"abc")
    sink.write(b"defg")
    with pytest.raises(HubUnavailable, match="more bytes than the range"):
        sink.write(b"h")

    # http_get rewinds when a server ignored the Range of a resumed request.
    assert sink.seek(5) == 5
    assert sink.pieces == [b"abc", b"de"]
    assert sink.seek(0) == 0
    assert sink.pieces == [] and sink.written == 0
