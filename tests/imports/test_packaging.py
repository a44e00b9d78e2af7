from __future__ import annotations

import errno
import gzip
import hashlib
import os
import re
import struct
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis_catalog.lib.archive import MemberNotFound, read_member, safe_extract
from aegis_catalog.lib.checksums import parse_sha256sums
from imports import gzip_blocks, packaging
from imports.packaging import PackagingError, package_snapshot
from tests.factories import member_bytes

MTIME = 1_767_225_600  # 2026-01-01T00:00:00Z
LONG_NAME = "a" * 90 + "/" + "b" * 90 + "/weights-" + "c" * 60 + ".safetensors"
MODEL_CONTENT = {
    "config.json": b'{"hidden_size": 8}',
    ".gitattributes": b"*.bin filter=lfs\n",
    "sub/weights.bin": bytes(range(256)) * 300,
    "sub/deeper/tokenizer.json": b'{"v": 1}',
    "na\u00efve.txt": "caf\u00e9".encode(),
    LONG_NAME: b"long",
}


def write_tree(root: Path, content: dict[str, bytes], *, mode: int = 0o600, mtime: int = 1):
    files = {}
    for relative, data in content.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        os.utime(path, (mtime, mtime))
        files[relative] = path
    return files


def package(tmp: Path, name: str, files: dict[str, Path], **kwargs) -> packaging.PackageResult:
    return package_snapshot(
        tmp / name,
        root_name="org--m-1",
        model_files=files,
        mtime=MTIME,
        **kwargs,
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_it_writes_identical_bytes_for_the_same_inputs(tmp_path):
    first_files = write_tree(tmp_path / "one", MODEL_CONTENT, mode=0o600, mtime=1)
    second_files = write_tree(tmp_path / "two", MODEL_CONTENT, mode=0o755, mtime=1_900_000_000)
    reversed_files = dict(reversed(list(second_files.items())))

    first = package(tmp_path, "first.tar.gz", first_files)
    second = package(tmp_path, "second.tar.gz", reversed_files)

    first_bytes = (tmp_path / "first.tar.gz").read_bytes()
    assert first_bytes == (tmp_path / "second.tar.gz").read_bytes()
    assert first.sha256 == second.sha256 == sha256(first_bytes)
    assert first.size == len(first_bytes)
    assert first.files == second.files


def test_it_lists_the_expected_members_in_order(tmp_path):
    package(tmp_path, "a.tar.gz", write_tree(tmp_path / "src", MODEL_CONTENT))
    listing = subprocess.run(
        ["tar", "-tzf", str(tmp_path / "a.tar.gz")], capture_output=True, check=True
    ).stdout.decode()
    long_dir_1 = "org--m-1/model/" + "a" * 90 + "/"
    assert listing.splitlines() == [
        "org--m-1/",
        "org--m-1/model/",
        "org--m-1/model/.gitattributes",
        long_dir_1,
        long_dir_1 + "b" * 90 + "/",
        "org--m-1/model/" + LONG_NAME,
        "org--m-1/model/config.json",
        "org--m-1/model/na\u00efve.txt",
        "org--m-1/model/sub/",
        "org--m-1/model/sub/deeper/",
        "org--m-1/model/sub/deeper/tokenizer.json",
        "org--m-1/model/sub/weights.bin",
        "org--m-1/MANIFEST.sha256",
    ]


def test_it_normalises_owner_mode_and_time_of_every_member(tmp_path):
    package(tmp_path, "a.tar.gz", write_tree(tmp_path / "src", MODEL_CONTENT, mode=0o777))
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        members = tar.getmembers()
        for member in members:
            assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
            assert member.mtime == MTIME
            assert member.mode == (0o755 if member.isdir() else 0o644)
        contents = {
            m.name.removeprefix("org--m-1/model/"): member_bytes(tar, m)
            for m in members
            if m.isfile() and m.name.startswith("org--m-1/model/")
        }
    assert contents == MODEL_CONTENT


def test_it_writes_a_gzip_header_without_name_or_time(tmp_path):
    package(tmp_path, "a.tar.gz", write_tree(tmp_path / "src", MODEL_CONTENT))
    header = (tmp_path / "a.tar.gz").read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] == 0  # no FNAME / FCOMMENT / FEXTRA flags
    assert header[4:8] == b"\x00\x00\x00\x00"


def test_it_reports_each_file_with_its_size_and_sha256(tmp_path):
    progress: list[tuple[int, int]] = []
    result = package(
        tmp_path,
        "a.tar.gz",
        write_tree(tmp_path / "src", MODEL_CONTENT),
        progress=lambda done, total: progress.append((done, total)),
        expected_sha256={path: sha256(data) for path, data in MODEL_CONTENT.items()},
    )
    assert result.path == tmp_path / "a.tar.gz"
    assert {(f.path, f.size, f.sha256) for f in result.files} == {
        (path, len(data), sha256(data)) for path, data in MODEL_CONTENT.items()
    }
    total = sum(map(len, MODEL_CONTENT.values()))
    assert progress[-1] == (total, total)
    assert not (tmp_path / "a.tar.gz.partial").exists()


def test_it_refuses_a_file_that_changed_since_it_was_checked(tmp_path):
    files = write_tree(tmp_path / "src", MODEL_CONTENT)
    expected = {path: sha256(data) for path, data in MODEL_CONTENT.items()}
    files["sub/deeper/tokenizer.json"].write_bytes(b'{"v": 666}')
    with pytest.raises(
        PackagingError, match=re.escape("'sub/deeper/tokenizer.json' changed on disk")
    ):
        package(tmp_path, "a.tar.gz", files, expected_sha256=expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_it_removes_the_partial_file_when_the_disk_is_full(tmp_path, monkeypatch):
    files = write_tree(tmp_path / "src", MODEL_CONTENT)

    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(packaging, "_write_output", full_disk)
    with pytest.raises(PackagingError, match="no space left"):
        package(tmp_path, "a.tar.gz", files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_it_refuses_colliding_or_unsafe_input_paths(tmp_path):
    files = write_tree(tmp_path / "src", {"a": b"1", "b": b"2"})
    with pytest.raises(PackagingError, match="also given as a file"):
        package(tmp_path, "x.tar.gz", {"a": files["a"], "a/b": files["b"]})
    with pytest.raises(PackagingError, match=re.escape("'..'")):
        package(tmp_path, "x.tar.gz", {"../a": files["a"]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_it_extracts_a_good_archive_and_reads_single_members(tmp_path):
    package(tmp_path, "a.tar.gz", write_tree(tmp_path / "src", MODEL_CONTENT))
    names = safe_extract(tmp_path / "a.tar.gz", tmp_path / "out")
    assert "org--m-1/model/sub/weights.bin" in names
    for relative, data in MODEL_CONTENT.items():
        assert (tmp_path / "out" / "org--m-1" / "model" / relative).read_bytes() == data
    assert (
        read_member(tmp_path / "a.tar.gz", "org--m-1/model/config.json")
        == (MODEL_CONTENT["config.json"])
    )
    with pytest.raises(MemberNotFound):
        read_member(tmp_path / "a.tar.gz", "org--m-1/missing.json")


path_component = st.text(alphabet="abcXYZ019-_.\u00e9", min_size=1, max_size=12).filter(
    lambda part: part not in (".", "..")
)
file_trees = st.dictionaries(
    st.lists(path_component, min_size=1, max_size=3).map("/".join),
    st.binary(max_size=2048),
    min_size=1,
    max_size=6,
).filter(
    # A path cannot be both a file and a directory.
    lambda tree: not any(other.startswith(path + "/") for path in tree for other in tree)
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=file_trees, seed=st.randoms(use_true_random=False))
def test_it_packages_random_trees_deterministically(tree, seed):
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        first = write_tree(root / "one", tree, mode=0o644, mtime=5)
        items = list(write_tree(root / "two", tree, mode=0o700, mtime=99).items())
        seed.shuffle(items)
        one = package(root, "one.tar.gz", first)
        two = package(root, "two.tar.gz", dict(items))
        assert (root / "one.tar.gz").read_bytes() == (root / "two.tar.gz").read_bytes()
        assert one.sha256 == two.sha256
        safe_extract(root / "one.tar.gz", root / "out")
        for relative, data in tree.items():
            assert (root / "out" / "org--m-1" / "model" / relative).read_bytes() == data


class CollectingUpload:
    """Stands in for a store upload: keeps what the packager streams into it."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.writes = 0

    def write(self, data: bytes | memoryview) -> None:
        self.received += data
        self.writes += 1


def test_it_writes_the_same_bytes_whatever_the_number_of_compression_threads(tmp_path):
    # Several compression blocks: random (incompressible) and repetitive (compressible) data.
    content = {
        "weights.safetensors": os.urandom(packaging.BLOCK_SIZE * 2 + 12345),
        "tokenizer.json": b'{"token": "value"}\n' * 400_000,
        "empty.txt": b"",
    }
    files = write_tree(tmp_path / "src", content)

    one = package(tmp_path, "one.tar.gz", files, compress_workers=1)
    three = package(tmp_path, "three.tar.gz", files, compress_workers=3)

    assert (tmp_path / "one.tar.gz").read_bytes() == (tmp_path / "three.tar.gz").read_bytes()
    assert one.sha256 == three.sha256
    subprocess.run(["gzip", "-t", str(tmp_path / "one.tar.gz")], check=True)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(tmp_path / "one.tar.gz"), "-C", str(out)], check=True)
    for relative, data in content.items():
        assert (out / "org--m-1" / "model" / relative).read_bytes() == data
    # The tar stream inside is the one tarfile itself writes for the same members.
    with tarfile.open(tmp_path / "one.tar.gz") as tar:
        assert [m.name for m in tar.getmembers()][-4:] == [
            "org--m-1/model/empty.txt",
            "org--m-1/model/tokenizer.json",
            "org--m-1/model/weights.safetensors",
            "org--m-1/MANIFEST.sha256",
        ]


def test_it_streams_the_same_bytes_to_the_upload_as_to_the_file(tmp_path):
    files = write_tree(tmp_path / "src", {**MODEL_CONTENT, "big.bin": os.urandom(5_000_000)})
    upload = CollectingUpload()

    result = package(tmp_path, "a.tar.gz", files, upload=upload)

    written = (tmp_path / "a.tar.gz").read_bytes()
    assert bytes(upload.received) == written
    assert result.sha256 == sha256(written)
    assert upload.writes > 2  # streamed block by block, not handed over at the end


def test_it_stops_and_removes_the_partial_file_when_the_upload_fails(tmp_path):
    files = write_tree(tmp_path / "src", {"big.bin": os.urandom(3 * packaging.BLOCK_SIZE)})

    class FailingUpload:
        def write(self, data: bytes | memoryview) -> None:
            raise OSError(errno.ECONNRESET, "Connection reset by peer")

    with pytest.raises(PackagingError, match="Connection reset"):
        package(tmp_path, "a.tar.gz", files, upload=FailingUpload())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_with_no_output_file_the_upload_gets_the_only_copy(tmp_path):
    files = write_tree(tmp_path / "src", {**MODEL_CONTENT, "big.bin": os.urandom(5_000_000)})
    package(tmp_path, "a.tar.gz", files)
    upload = CollectingUpload()

    result = package_snapshot(
        None,
        root_name="org--m-1",
        model_files=files,
        mtime=MTIME,
        upload=upload,
    )

    assert result.path is None
    assert bytes(upload.received) == (tmp_path / "a.tar.gz").read_bytes()
    assert result.sha256 == sha256(bytes(upload.received))
    assert result.size == len(upload.received)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "src"]


def test_it_needs_an_output_file_or_an_upload(tmp_path):
    files = write_tree(tmp_path / "src", MODEL_CONTENT)
    with pytest.raises(PackagingError, match="output file, an upload"):
        package_snapshot(None, root_name="org--m-1", model_files=files, mtime=MTIME)


def test_its_last_member_is_a_manifest_that_sha256sum_checks(tmp_path):
    content = {**MODEL_CONTENT, "odd\\name\nwith breaks.txt": b"odd"}
    package(tmp_path, "a.tar.gz", write_tree(tmp_path / "src", content))
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        last = tar.getmembers()[-1]
        assert last.name == "org--m-1/MANIFEST.sha256"
        manifest = member_bytes(tar, last)
    assert parse_sha256sums(manifest) == {
        f"model/{path}": sha256(data) for path, data in content.items()
    }
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(tmp_path / "a.tar.gz"), "-C", str(out)], check=True)
    checked = subprocess.run(
        ["sha256sum", "--strict", "-c", "MANIFEST.sha256"],
        cwd=out / "org--m-1", capture_output=True, text=True,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == len(content)
    (out / "org--m-1" / "model" / "config.json").write_bytes(b"{}")
    tampered = subprocess.run(
        ["sha256sum", "-c", "MANIFEST.sha256"], cwd=out / "org--m-1", capture_output=True
    )
    assert tampered.returncode != 0


def test_a_directory_packages_to_the_bytes_of_the_same_files_given_one_by_one(tmp_path):
    files = write_tree(tmp_path / "snapshot", MODEL_CONTENT)
    selected = {path: local for path, local in files.items() if not path.endswith(".bin")}
    expected = package_snapshot(
        tmp_path / "expected.tar.gz", root_name="org--m-1", model_files=selected, mtime=MTIME
    )
    (tmp_path / "snapshot" / "skipped.bin").write_bytes(b"not selected")

    rebuilt = packaging.package_directory(
        tmp_path / "snapshot",
        tmp_path / "rebuilt.tar.gz",
        model_name="org--m",
        version="1",
        mtime=MTIME,
        exclude=["*.bin"],
    )

    assert rebuilt.sha256 == expected.sha256
    assert (tmp_path / "rebuilt.tar.gz").read_bytes() == (tmp_path / "expected.tar.gz").read_bytes()
    assert "sub/weights.bin" not in {item.path for item in rebuilt.files}


def test_the_tarball_bytes_depend_on_the_name_version_and_commit_time(tmp_path):
    files = write_tree(tmp_path / "src", MODEL_CONTENT)
    digests = {
        package_snapshot(
            tmp_path / f"{i}.tar.gz", root_name=root, model_files=files, mtime=when
        ).sha256
        for i, (root, when) in enumerate(
            [("org--m-1", MTIME), ("org--m-2", MTIME), ("org--m-1", MTIME + 1)]
        )
    }
    assert len(digests) == 3


def deterministic_random(size: int, seed: bytes) -> bytes:
    """Random-looking (incompressible) bytes that are the same on every run and machine."""
    return hashlib.shake_256(seed).digest(size)


def layout_2_content() -> dict[str, bytes]:
    # Compressible JSON lines, then more than two blocks of incompressible weights.
    lines = (f'{{"id": {i}, "token": "w{i % 977}", "special": false}},\n' for i in range(60_000))
    return {
        "README.md": "".join(lines).encode(),
        "config.json": b'{"hidden_size": 8}\n',
        "model.safetensors": deterministic_random(
            2 * packaging.BLOCK_SIZE + 100_000, b"aegis layout 2"
        ),
    }


# Produced by the packager before layout 3 existed (commit 5ce274a, ISA-L 1.9.1): artifacts
# registered in layout 2 must rebuild to these very bytes.
LAYOUT_2_SHA256 = "00b70612546cb1c9c39ef3bb7c655d741ecda97686ac34ca971c479292bd085a"
LAYOUT_2_SIZE = 8_800_926


def test_layout_2_still_gives_the_bytes_it_always_gave(tmp_path):
    files = write_tree(tmp_path / "src", layout_2_content())

    result = package(tmp_path, "a.tar.gz", files, layout=2)
    rebuilt = packaging.package_directory(
        tmp_path / "src", tmp_path / "b.tar.gz", model_name="org--m", version="1", mtime=MTIME,
        layout=2,
    )  # fmt: skip
    today = package(tmp_path, "c.tar.gz", files)

    assert (result.sha256, result.size) == (LAYOUT_2_SHA256, LAYOUT_2_SIZE)
    assert sha256((tmp_path / "a.tar.gz").read_bytes()) == LAYOUT_2_SHA256
    assert rebuilt.sha256 == LAYOUT_2_SHA256
    assert today.sha256 != LAYOUT_2_SHA256  # layout 3 stores the random blocks


# Layout 3 of the same input: once an artifact is registered in layout 3, its bytes must not
# change either (the decision to store a block is part of the format).
LAYOUT_3_SHA256 = "b01699248e156a12b77e8ef7c2fdb748b10b65d75d14a84f4c9c47ad41a542bc"
LAYOUT_3_SIZE = 8_800_301


def test_layout_3_gives_the_bytes_it_gave_when_it_was_made(tmp_path):
    files = write_tree(tmp_path / "src", layout_2_content())

    result = package(tmp_path, "a.tar.gz", files, layout=3)

    assert (result.sha256, result.size) == (LAYOUT_3_SHA256, LAYOUT_3_SIZE)


def test_it_refuses_a_layout_it_cannot_write(tmp_path):
    files = write_tree(tmp_path / "src", MODEL_CONTENT)
    for layout in (1, 4):
        with pytest.raises(PackagingError, match=f"artifact layout {layout} cannot be packaged"):
            package(tmp_path, "a.tar.gz", files, layout=layout)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def stored_block_contents(stream: bytes, start: int, size: int) -> tuple[bytes, int, bool]:
    """Read deflate stored blocks (RFC 1951 3.2.4) from a byte-aligned ``start`` until they
    hold ``size`` bytes: those bytes, where the blocks end, and whether the last was final."""
    held, position, final = bytearray(), start, False
    while len(held) < size:
        assert stream[position] in (0, 1), f"no stored block header at {position}"
        final = stream[position] == 1
        length, complement = struct.unpack_from("<HH", stream, position + 1)
        assert length ^ 0xFFFF == complement
        held += stream[position + 5 : position + 5 + length]
        position += 5 + length
    return bytes(held), position, final


def test_a_random_block_is_written_as_stored_blocks_holding_its_bytes():
    block = deterministic_random(packaging.BLOCK_SIZE, b"random block")
    dictionary = deterministic_random(32 * 1024, b"before it")

    for final in (False, True):
        out = gzip_blocks.deflate_block(block, dictionary, 1, final, store_incompressible=True)
        held, end, marked_final = stored_block_contents(out, 0, len(block))
        assert (held, end, marked_final) == (block, len(out), final)
        assert len(out) == len(block) + 5 * -(-len(block) // 65_535)  # 5 bytes per 65,535
        inflate = zlib.decompressobj(wbits=-15)
        assert (inflate.decompress(out), inflate.eof) == (block, final)
    deflated = gzip_blocks.deflate_block(block, dictionary, 1, False)
    assert deflated[0] & 0b110 == 0b100  # layout 2 deflates it (dynamic Huffman codes)
    assert zlib.decompressobj(wbits=-15, zdict=dictionary).decompress(deflated) == block


def test_a_compressible_block_is_still_deflated():
    block = b"".join(f'{{"id": {i}, "token": "w{i % 977}"}},\n'.encode() for i in range(150_000))
    block = block[: packaging.BLOCK_SIZE]

    out = gzip_blocks.deflate_block(block, b"", 1, False, store_incompressible=True)

    assert out == gzip_blocks.deflate_block(block, b"", 1, False)
    assert len(out) < len(block) // 4


def test_a_block_whose_end_is_compressible_is_deflated():
    # The end of a shard, then a small JSON file: only the sample at the block's end sees it.
    text = b'{"token": "value", "id": 12345}\n' * 6_000
    block = deterministic_random(packaging.BLOCK_SIZE - len(text), b"shard end") + text

    out = gzip_blocks.deflate_block(block, b"", 1, False, store_incompressible=True)

    assert out == gzip_blocks.deflate_block(block, b"", 1, False)


def test_it_deflates_only_samples_of_a_block_it_stores(monkeypatch):
    deflated: list[int] = []
    real_deflate = gzip_blocks._deflate

    def counting_deflate(block, dictionary, level, final):
        deflated.append(len(block))
        return real_deflate(block, dictionary, level, final)

    monkeypatch.setattr(gzip_blocks, "_deflate", counting_deflate)
    block = deterministic_random(packaging.BLOCK_SIZE, b"random block")

    gzip_blocks.deflate_block(block, b"", 1, False, store_incompressible=True)

    assert deflated == [gzip_blocks.SAMPLE_SIZE] * gzip_blocks.SAMPLE_COUNT
    assert sum(deflated) <= len(block) // 64


def layout_3_content() -> dict[str, bytes]:
    lines = (f'{{"id": {i}, "content": "<extra_{i}>"}},\n' for i in range(100_000))
    return {
        "config.json": b'{"hidden_size": 8}\n',
        "model-00001-of-00002.safetensors": deterministic_random(
            3 * packaging.BLOCK_SIZE + 4321, b"shard 1"
        ),
        "model-00002-of-00002.safetensors": deterministic_random(
            packaging.BLOCK_SIZE + 99, b"shard 2"
        ),
        "tokenizer.json": "".join(lines).encode(),
    }


def test_layout_3_gives_the_same_bytes_on_every_run_whatever_the_number_of_threads(tmp_path):
    files = write_tree(tmp_path / "src", layout_3_content())

    results = [
        package(tmp_path, f"{run}-{workers}.tar.gz", files, compress_workers=workers)
        for run in (1, 2)
        for workers in (1, 2, 4)
    ]

    assert len({result.sha256 for result in results}) == 1
    written = {(tmp_path / f"{r}-{w}.tar.gz").read_bytes() for r in (1, 2) for w in (1, 2, 4)}
    assert len(written) == 1


def test_layout_3_stores_the_random_blocks_and_deflates_the_rest(tmp_path):
    content = layout_3_content()
    files = write_tree(tmp_path / "src", content)

    layout_3 = package(tmp_path, "3.tar.gz", files)
    layout_2 = package(tmp_path, "2.tar.gz", files, layout=2)

    tarball = (tmp_path / "3.tar.gz").read_bytes()
    tar_stream = gzip.decompress(tarball)
    # The second block of the tar stream is all shard bytes: it is in the tarball as they are,
    # in stored blocks of 65,535 bytes, where layout 2 deflated it.
    second_block = tar_stream[packaging.BLOCK_SIZE : 2 * packaging.BLOCK_SIZE]
    start = tarball.find(b"\x00\xff\xff\x00\x00" + second_block[:65_535])
    assert start > 0
    held, _end, final = stored_block_contents(tarball, start, len(second_block))
    assert (held, final) == (second_block, False)
    assert (
        b"\x00\xff\xff\x00\x00" + second_block[:65_535] not in (tmp_path / "2.tar.gz").read_bytes()
    )
    random_bytes = sum(len(data) for path, data in content.items() if "safetensors" in path)
    text_bytes = len(content["tokenizer.json"])
    assert layout_3.size < random_bytes * (1 + 5 / 65_535) + text_bytes / 4
    assert layout_3.size < layout_2.size
    assert layout_3.size > random_bytes  # stored, not compressed


def test_layout_3_is_a_standard_tar_gz_that_extracts_to_the_same_files(tmp_path):
    content = layout_3_content()
    files = write_tree(tmp_path / "src", content)

    package(tmp_path, "a.tar.gz", files, compress_workers=2)

    tarball = tmp_path / "a.tar.gz"
    subprocess.run(["gzip", "-t", str(tarball)], check=True)
    listing = subprocess.run(["tar", "-tzf", str(tarball)], capture_output=True, check=True)
    assert listing.stdout.decode().splitlines()[-1] == "org--m-1/MANIFEST.sha256"
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(out)], check=True)
    with tarfile.open(tarball) as tar:
        extracted = {
            m.name.removeprefix("org--m-1/model/"): member_bytes(tar, m)
            for m in tar.getmembers()
            if m.isfile() and m.name.startswith("org--m-1/model/")
        }
    assert extracted == content
    for relative, data in content.items():
        assert (out / "org--m-1" / "model" / relative).read_bytes() == data
    # The gzip trailer: CRC32 and size of the whole tar stream, as gzip -t also checked.
    tar_stream = gzip.decompress(tarball.read_bytes())
    assert tarball.read_bytes()[-8:] == struct.pack(
        "<II", zlib.crc32(tar_stream), len(tar_stream) & 0xFFFFFFFF
    )
