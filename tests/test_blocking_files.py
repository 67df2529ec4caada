"""The ReadFile effect as the frontends carry it out (PROTOCOL.md §0.1, "Files")."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import pytest

from azid_core.blocking import read_file
from azid_core.effects import FileContent, ReadFile
from azid_core.errors import TransportError

if TYPE_CHECKING:
    from pathlib import Path


def test_reads_a_regular_file_with_its_size_and_mtime(tmp_path: Path) -> None:
    target = tmp_path / "token"
    target.write_bytes(b"header.payload.signature")
    content = read_file(ReadFile(str(target)))
    assert content == FileContent(b"header.payload.signature", 24, target.stat().st_mtime_ns)
    assert repr(content) == f"FileContent(24 bytes, mtime_ns={target.stat().st_mtime_ns})"  # no data shown


def test_reads_at_most_one_byte_over_the_limit(tmp_path: Path) -> None:
    target = tmp_path / "big"
    target.write_bytes(b"x" * 200_000)
    content = read_file(ReadFile(str(target), max_bytes=4096))
    assert (content.data, content.size) == (b"x" * 4097, 200_000)
    assert read_file(ReadFile(str(target), max_bytes=0)).data == b"x"


def test_an_unchanged_mtime_is_not_read(tmp_path: Path) -> None:
    target = tmp_path / "token"
    target.write_bytes(b"abc")
    mtime = target.stat().st_mtime_ns
    assert read_file(ReadFile(str(target), unless_mtime_ns=mtime)) == FileContent(None, 3, mtime)
    assert read_file(ReadFile(str(target), unless_mtime_ns=mtime - 1)).data == b"abc"


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TransportError) as info:
        read_file(ReadFile(str(tmp_path / "absent")))
    assert info.value.kind == "file_not_found"
    assert str(tmp_path / "absent") in str(info.value)


def test_nofollow_refuses_a_final_symlink_but_a_plain_read_follows_it(tmp_path: Path) -> None:
    target = tmp_path / "real.key"
    target.write_bytes(b"secret-key")
    link = tmp_path / "link.key"
    link.symlink_to(target)
    assert read_file(ReadFile(str(link))).data == b"secret-key"
    with pytest.raises(TransportError) as info:
        read_file(ReadFile(str(link), nofollow=True))
    assert info.value.kind == "file_error"
    assert "symbolic link" in str(info.value)
    assert "secret-key" not in str(info.value)


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_only_regular_files_are_read(tmp_path: Path, kind: str) -> None:
    target = tmp_path / kind
    if kind == "directory":
        target.mkdir()
    else:
        os.mkfifo(target)  # opening must not wait for a writer
    with pytest.raises(TransportError) as info:
        read_file(ReadFile(str(target)))
    assert info.value.kind == "file_error"
    assert "not a regular file" in str(info.value)


def test_a_path_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(TransportError) as info:
        read_file(ReadFile(str(tmp_path / ("x" * 300))))  # over NAME_MAX
    assert info.value.kind == "file_error"
    assert "cannot be opened" in str(info.value)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/mem is Linux's")
def test_a_file_that_cannot_be_read() -> None:
    # A regular file whose first page is unmapped: read() fails with EIO.
    with pytest.raises(TransportError) as info:
        read_file(ReadFile("/proc/self/mem"))
    assert info.value.kind == "file_error"
    assert "cannot be read" in str(info.value)
