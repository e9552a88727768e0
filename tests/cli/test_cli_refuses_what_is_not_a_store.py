"""Every command refuses a PATH that is not a store (exit status 2, one line) and creates
or changes nothing there; files it cannot read are one line too, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_helpers import CAN_BE_DENIED, error_line, make_store, picture, run

from unidist_queue import FileStore, MessageQueue

COMMANDS = ("inspect", "verify", "compact", "dump")


def _missing(tmp: Path) -> Path:
    return tmp / "nope"


def _plain_file(tmp: Path) -> Path:
    (tmp / "f").write_bytes(b"not a store")
    return tmp / "f"


def _unreadable_file(tmp: Path) -> Path:
    (tmp / "f").write_bytes(b"secret")
    (tmp / "f").chmod(0)
    return tmp / "f"


def _empty_directory(tmp: Path) -> Path:
    (tmp / "d").mkdir()
    return tmp / "d"


def _unrelated_files(tmp: Path) -> Path:
    """Files of another program, two of them named as a store's files are."""
    d = tmp / "d"
    d.mkdir()
    (d / "notes.txt").write_text("hello")
    (d / "archive.1").write_bytes(b"a log rotated by another program\n" * 3)
    (d / "snapshot.2").write_bytes(b"UQSNAP")  # too short to be one
    (d / "LOCK").write_bytes(b"")
    (d / "sub").mkdir()
    return d


KINDS = {
    "missing": (_missing, "no such file or directory"),
    "plain file": (_plain_file, "it is not a directory"),
    "unreadable file": (_unreadable_file, "it is not a directory"),
    "empty directory": (_empty_directory, "the directory is empty"),
    "unrelated files": (_unrelated_files, "it holds no snapshot or archive written by FileStore"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_path_that_is_not_a_store_is_refused_and_left_as_it_was(
    tmp_path: Path, command: str, kind: str
) -> None:
    make, why = KINDS[kind]
    path = make(tmp_path)
    before = picture(tmp_path)
    line = error_line(run(command, str(path)))
    assert line == f"error: {path} is not a store: {why}"
    assert picture(tmp_path) == before  # notably no LOCK, archive or snapshot from compact


@pytest.mark.skipif(not CAN_BE_DENIED, reason="root reads any file, and there is no setpriv")
@pytest.mark.parametrize("command", COMMANDS)
def test_a_directory_that_cannot_be_listed(tmp_path: Path, command: str) -> None:
    path = Path(make_store(tmp_path / "s"))
    path.chmod(0)
    try:
        line = error_line(run(command, str(path)))
    finally:
        path.chmod(0o700)
    assert line == f"error: cannot list {path}: Permission denied"


@pytest.mark.skipif(not CAN_BE_DENIED, reason="root reads any file, and there is no setpriv")
@pytest.mark.parametrize("command", COMMANDS)
def test_a_store_file_that_cannot_be_read(tmp_path: Path, command: str) -> None:
    path = Path(make_store(tmp_path / "s"))
    (path / "archive.0").chmod(0)
    before = picture(path)
    line = error_line(run(command, str(path)))
    assert line == f"error: cannot read {path / 'archive.0'}: Permission denied"
    assert picture(path) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_a_store_file_that_vanished(tmp_path: Path, command: str) -> None:
    """archive.1 is a dangling link (as root too): the store is one, its archive unreadable."""
    path = Path(make_store(tmp_path / "s"))
    with MessageQueue(store=FileStore(path)) as mq:
        mq.compact()
    os.symlink(tmp_path / "gone", path / "archive.2")
    os.unlink(path / "archive.1")
    os.rename(path / "archive.2", path / "archive.1")
    before = picture(path)
    line = error_line(run(command, str(path)))
    assert "archive.1" in line and "No such file or directory" in line
    assert picture(path) == before
