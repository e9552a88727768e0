"""Damage at the end of an older archive generation is damage, not a torn tail.

Only the end of the whole history can be torn by a crash. An archive that later
records follow (in a newer archive) was complete before they were written, so a bad
tail there lost records that are followed by others: opening it used to cut them
silently, and ``verify`` said "ok". Now opening raises ``CorruptArchive`` (unless
``recovery="salvage"``, which skips and logs it as damage and cuts nothing), and
``verify`` reports DAMAGED with exit status 1.

The crash image: ``archive.0`` holds adds 0..4, a compaction whose snapshot failed
switched appends to ``archive.1``, which holds adds 5..9; no ``snapshot.1``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Tuple

import pytest
from conftest import child_env
from helpers import WAIT, file_size, reopened

from unidist_queue import CorruptArchive, MessageQueue, StoreError
from unidist_queue.__main__ import main
from unidist_queue.store import file as file_module
from unidist_queue.store.file import FileStore


class Image(NamedTuple):
    path: str
    old: Tuple[int, int]  # where the last record of archive.0 starts and ends
    new: Tuple[int, int]  # likewise in archive.1, the newest archive


def refuse(*args: Any) -> str:
    raise StoreError("injected: no space left on the device")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    root = tmp_path_factory.mktemp("generations")
    live = str(root / "live")
    mq = MessageQueue(store=FileStore(live, fsync="never"))
    try:
        for i in range(4):
            mq.add("q", i)
        old_start = file_size(live, "archive.0")
        mq.add("q", 4)
        old = (old_start, file_size(live, "archive.0"))
        with pytest.MonkeyPatch.context() as m:
            m.setattr(file_module, "write_snapshot", refuse)  # as file.py imported it
            with pytest.raises(StoreError, match="injected"):
                mq.compact()
        for i in range(5, 9):
            mq.add("q", i)
        new_start = file_size(live, "archive.1")
        mq.add("q", 9)
        new = (new_start, file_size(live, "archive.1"))
        shutil.copytree(live, root / "image")  # the files as a crash would leave them
    finally:
        mq.close()
    path = str(root / "image")
    assert sorted(os.listdir(path)) == ["LOCK", "archive.0", "archive.1"]
    assert old[1] == file_size(path, "archive.0")
    yield Image(path, old, new)


def copy(image: Image, dest: Path, name: str, change: Any) -> str:
    """A copy of the image whose file ``name`` holds ``change(bytes)``."""
    shutil.copytree(image.path, dest)
    target = dest / name
    target.write_bytes(change(target.read_bytes()))
    return str(dest)


def flip(position: int) -> Any:
    def change(data: bytes) -> bytes:
        damaged = bytearray(data)
        damaged[position] ^= 0x01
        return bytes(damaged)

    return change


def cut(length: int) -> Any:
    return lambda data: data[:length]


def files(path: str) -> Dict[str, bytes]:
    return {n: Path(path, n).read_bytes() for n in os.listdir(path)}


def verify(paths: List[str]) -> List[subprocess.CompletedProcess]:  # type: ignore[type-arg]
    """``python -m unidist_queue verify PATH`` for each path, a few at a time."""
    done: List[subprocess.CompletedProcess] = []  # type: ignore[type-arg]
    env = child_env()
    for i in range(0, len(paths), 8):
        procs = [
            subprocess.Popen([sys.executable, "-m", "unidist_queue", "verify", p], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
            for p in paths[i : i + 8]
        ]
        for proc in procs:
            try:
                out, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate(timeout=WAIT)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def damaged_copies(image: Image, tmp_path: Path) -> List[str]:
    """Every flip of a byte of archive.0's last record, and every cut inside it."""
    start, end = image.old
    paths = [copy(image, tmp_path / f"flip{p}", "archive.0", flip(p)) for p in range(start, end)]
    paths += [copy(image, tmp_path / f"cut{n}", "archive.0", cut(n)) for n in range(start + 1, end)]
    return paths


def test_damage_at_the_end_of_an_older_archive_is_refused(image: Image, tmp_path: Path) -> None:
    paths = damaged_copies(image, tmp_path)
    for path in paths:
        before = files(path)
        for read_only in (False, True):
            store = FileStore(path, read_only=read_only)
            try:
                with pytest.raises(CorruptArchive) as info:
                    store.load()
            finally:
                store.close()
            where = (info.value.path, info.value.offset)
            assert where == (os.path.join(path, "archive.0"), image.old[0]), path
        assert files(path) == before  # nothing cut
        FileStore(path).close()  # the failed open released the lock
    for done in verify(paths):
        assert done.returncode == 1, (done.args, done.stdout, done.stderr)
        assert "archive.0: " in done.stdout and "DAMAGED" in done.stdout, done.stdout
        assert done.stdout.splitlines()[-1] == "damage found"


def test_salvage_skips_damage_at_the_end_of_an_older_archive_and_cuts_nothing(
    image: Image, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for path in damaged_copies(image, tmp_path):
        old = Path(path, "archive.0").read_bytes()
        caplog.clear()
        with caplog.at_level(logging.WARNING), MessageQueue(store=FileStore(path, recovery="salvage")) as mq:
            assert mq.all("q") == [0, 1, 2, 3, 5, 6, 7, 8, 9]
            mq.add("q", 10)
        assert "salvage: skipped damaged bytes" in caplog.text and "archive.0" in caplog.text
        assert "torn" not in caplog.text
        assert Path(path, "archive.0").read_bytes() == old  # an older generation is never cut
        assert reopened(path, recovery="salvage") == [0, 1, 2, 3, 5, 6, 7, 8, 9, 10]


def test_damage_at_the_end_of_the_newest_archive_is_a_torn_tail(
    image: Image, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    start, end = image.new
    paths = [copy(image, tmp_path / f"flip{p}", "archive.1", flip(p)) for p in range(start, end)]
    for path in paths:
        assert main(["verify", path]) == 0
    for done in verify(paths[:1] + paths[-1:]):
        assert done.returncode == 0, (done.args, done.stdout, done.stderr)
        assert "torn tail" in done.stdout
    for path in paths:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert reopened(path) == list(range(9))
        assert "torn or damaged last record" in caplog.text
        assert file_size(path, "archive.1") == start
        assert file_size(path, "archive.0") == image.old[1]


def test_a_torn_older_archive_that_no_record_follows_is_a_torn_tail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot prepared (archive.1 made, header only) but not begun: archive.0 still
    takes the appends, so its tail is the end of the history and may be torn."""
    live = str(tmp_path / "live")
    store = FileStore(live, fsync="never")
    mq = MessageQueue(store=store)
    try:
        for i in range(5):
            mq.add("q", i)
        store.prepare_snapshot()
        mq.add("q", 5)  # still in archive.0
        image = str(tmp_path / "image")
        shutil.copytree(live, image)
    finally:
        mq.close()
    assert sorted(os.listdir(image)) == ["LOCK", "archive.0", "archive.1"]
    data = Path(image, "archive.0").read_bytes()
    Path(image, "archive.0").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert main(["verify", image]) == 0
    with caplog.at_level(logging.WARNING), MessageQueue(store=FileStore(image)) as mq:
        assert mq.all("q") == [0, 1, 2, 3, 4]
        mq.add("q", "next")  # goes to archive.1
    assert "torn or damaged last record" in caplog.text
    assert main(["verify", image]) == 0
    assert reopened(image) == [0, 1, 2, 3, 4, "next"]  # and the next open finds no damage


def test_an_empty_older_archive_is_still_ignored(
    image: Image, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = copy(image, tmp_path / "empty", "archive.0", lambda data: b"")
    assert main(["verify", path]) == 0
    with caplog.at_level(logging.WARNING):
        assert reopened(path) == [5, 6, 7, 8, 9]
    assert "is empty (0 bytes); ignoring it" in caplog.text
    assert sorted(os.listdir(path)) == ["LOCK", "archive.1"]


def test_the_undamaged_image_opens_whole(image: Image, tmp_path: Path) -> None:
    path = copy(image, tmp_path / "whole", "archive.0", lambda data: data)
    assert main(["verify", path]) == 0
    assert reopened(path) == list(range(10))
