"""Safe extraction of tar archives: every unsafe member is refused before anything is written."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from aegis_catalog.lib.archive import (
    ArchiveError,
    CorruptArchive,
    MemberNotFound,
    UnsafeArchive,
    read_member,
    safe_extract,
)


def build_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def regular(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


@pytest.mark.parametrize(
    ("members", "bad_member", "reason", "limits"),
    [
        ([(regular("root/ok"), b"ok"), (regular("../evil"), b"x")], "../evil", "'..'", {}),
        ([(regular("root/a/../../evil"), b"x")], "root/a/../../evil", "'..'", {}),
        ([(regular("/abs"), b"x")], "/abs", "absolute", {}),
        (
            [(link("root/model/x", "../../etc/passwd", tarfile.SYMTYPE), None)],
            "root/model/x",
            "link",
            {},
        ),
        (
            [(regular("root/a"), b"a"), (link("root/b", "root/a", tarfile.LNKTYPE), None)],
            "root/b",
            "link",
            {},
        ),
        ([(special("root/fifo", tarfile.FIFOTYPE), None)], "root/fifo", "device", {}),
        ([(special("root/dev", tarfile.CHRTYPE), None)], "root/dev", "device", {}),
        ([(regular("root/a"), b"1"), (regular("root/a"), b"2")], "root/a", "duplicate", {}),
        (
            [(regular("root/a"), b"1"), (regular("root/a/b"), b"2")],
            "root/a/b",
            "is a file",
            {},
        ),
        (
            [(regular(f"root/f{i}"), b"x") for i in range(5)],
            "root/f3",
            "more than 3 members",
            {"max_members": 3},
        ),
        (
            [(regular("root/a"), b"x" * 6), (regular("root/b"), b"y" * 6)],
            "root/b",
            "limit of 10 bytes",
            {"max_total_bytes": 10},
        ),
    ],
)
def test_it_refuses_unsafe_archives_without_writing_anything(
    tmp_path, members, bad_member, reason, limits
):
    archive = build_archive(tmp_path / "bad.tar.gz", members)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(UnsafeArchive) as caught:
        safe_extract(archive, work / "dest", **limits)
    assert caught.value.member == bad_member
    assert reason in caught.value.reason
    assert bad_member in str(caught.value)
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz", "work"]


def test_it_refuses_to_extract_into_a_non_empty_directory(tmp_path):
    archive = build_archive(tmp_path / "a.tar.gz", [(regular("root/a"), b"1")])
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "existing").write_bytes(b"")
    with pytest.raises(ArchiveError, match="empty directory"):
        safe_extract(archive, tmp_path / "dest")


def test_it_reports_a_corrupt_archive(tmp_path):
    (tmp_path / "junk.tar.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(CorruptArchive):
        safe_extract(tmp_path / "junk.tar.gz", tmp_path / "dest")


def test_it_reads_one_member_and_refuses_directories_missing_or_oversized_ones(tmp_path):
    directory = special("root/sub", tarfile.DIRTYPE)
    archive = build_archive(
        tmp_path / "a.tar.gz",
        [
            (regular("root/aegis.json"), b'{"a": 1}'),
            (directory, None),
            (regular("root/big"), b"x" * 11),
        ],
    )
    assert read_member(archive, "root/aegis.json") == b'{"a": 1}'
    with pytest.raises(MemberNotFound, match="not a regular file"):
        read_member(archive, "root/sub")
    with pytest.raises(MemberNotFound, match="no member 'root/missing'"):
        read_member(archive, "root/missing")
    with pytest.raises(ArchiveError, match="more than the 10 allowed"):
        read_member(archive, "root/big", max_bytes=10)
