"""FileStore failures: disk full, failing writes and fsyncs, unserializable bodies, and
files that cannot be read, cut or created when a store is opened.

What a user sees is checked each time: the error raised (and what it names), that the
directory's lock is released when opening fails, that nothing acknowledged is lost, and
that a later open repairs what can be repaired.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from conftest import child_env
from helpers import assert_unlocked, eio, file_size, fill, reopened

from unidist_queue import MessageQueue, SerializationError, StoreError
from unidist_queue.store import archive
from unidist_queue.store.file import FileStore


def _deep() -> Any:
    value: Any = []
    for _ in range(100_000):
        value = [value]
    return value


class RaisingReduce:
    def __reduce__(self) -> Any:
        raise RuntimeError("no")


def _generator() -> Iterator[int]:
    yield 1


UNSERIALIZABLE: list[Callable[[], Any]] = [
    lambda: lambda: 1,
    threading.Lock,
    _generator,
    RaisingReduce,
    _deep,
]


@pytest.mark.parametrize("make", UNSERIALIZABLE, ids=["lambda", "lock", "generator", "reduce", "deep"])
def test_unserializable_changes_neither_memory_nor_file(path: str, make: Callable[[], Any]) -> None:
    with MessageQueue(store=FileStore(path)) as mq:
        mq.add("q", "ok")
        before = file_size(path)
        with pytest.raises(SerializationError):
            mq.add("q", make())
        assert mq.count("q") == 1
        assert file_size(path) == before


def test_failed_write_is_refused_and_leaves_everything_unchanged(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with MessageQueue(store=FileStore(path)) as mq:
        mq.add("q", 1)
        before = file_size(path)

        def full(fd: int, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(archive, "write", full)
        with pytest.raises(StoreError, match="space"):
            mq.add("q", 2)
        assert mq.count("q") == 1 and file_size(path) == before
        monkeypatch.undo()
        mq.add("q", 3)  # the store did not fail: the write was cleanly refused
    with MessageQueue(store=FileStore(path)) as mq:
        assert mq.all("q") == [1, 3]


def test_short_write_is_cut_back(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with MessageQueue(store=FileStore(path)) as mq:
        mq.add("q", 1)
        before = file_size(path)

        def half(fd: int, data: bytes) -> int:
            return os.write(fd, data[: len(data) // 2])

        monkeypatch.setattr(archive, "write", half)
        with pytest.raises(StoreError, match="short write"):
            mq.add("q", "x" * 100)
        assert mq.count("q") == 1 and file_size(path) == before
        monkeypatch.undo()
        mq.add("q", 3)
    with MessageQueue(store=FileStore(path)) as mq:
        assert mq.all("q") == [1, 3]


def test_failed_cut_back_fails_the_store(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mq = MessageQueue(store=FileStore(path))
    mq.add("q", 1)
    monkeypatch.setattr(archive, "write", lambda fd, data: os.write(fd, data[:5]))
    monkeypatch.setattr(os, "ftruncate", eio)
    with pytest.raises(StoreError):
        mq.add("q", 2)
    monkeypatch.undo()
    with pytest.raises(StoreError, match="failed"):
        mq.add("q", 3)
    mq.close()
    with MessageQueue(store=FileStore(path)) as mq:  # the torn bytes are cut on reopen
        assert mq.all("q") == [1]
        mq.add("q", 4)
        assert mq.all("q") == [1, 4]


@pytest.mark.parametrize("policy", ["always", "interval"])
def test_failed_fsync_refuses_writes_until_reopened(
    path: str, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = threading.Event()

    def failing_fsync(fd: int) -> None:
        failed.set()
        eio()

    mq = MessageQueue(store=FileStore(path, fsync=policy, fsync_interval=0.01))
    mq.add("q", 1)
    monkeypatch.setattr(archive, "fsync", failing_fsync)
    if policy == "always":
        with pytest.raises(StoreError, match="fsync"):
            mq.add("q", 2)
    else:
        mq.add("q", 2)
        assert failed.wait(timeout=30)
    monkeypatch.undo()
    with pytest.raises(StoreError, match="fsync"):
        mq.add("q", 3)
    mq.close()
    with MessageQueue(store=FileStore(path)) as mq:
        assert mq.all("q") == [1, 2]  # written (page cache) though not fsynced
        mq.add("q", 4)


_DISK_FULL = textwrap.dedent(
    """
    import resource, signal, sys
    from unidist_queue import MessageQueue, StoreError
    from unidist_queue.store.file import FileStore
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    mq = MessageQueue(store=FileStore(sys.argv[1], fsync="always"))
    resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))
    acked = 0
    for i in range(1000):
        try:
            mq.add("q", "x" * 37 + str(i))
        except StoreError as exc:
            assert mq.count("q") == acked, (mq.count("q"), acked)
            print("refused", exc, file=sys.stderr)
            break
        acked += 1
    for i in range(3):  # still refused, never torn
        try:
            mq.add("q", "y" * 100)
        except StoreError:
            pass
    assert mq.count("q") == acked
    mq.close()
    print(acked)
    """
)


def test_disk_full_via_file_size_limit(path: str, caplog: pytest.LogCaptureFixture) -> None:
    env = child_env()  # no coverage in the child: its data file would hit the size limit too
    done = subprocess.run(
        [sys.executable, "-c", _DISK_FULL, path], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "refused" in done.stderr
    acked = int(done.stdout.split()[-1])
    assert 10 < acked < 1000
    with MessageQueue(store=FileStore(path)) as mq:
        assert mq.count("q") == acked
        assert mq.all("q")[-1] == "x" * 37 + str(acked - 1)
    assert "torn" not in caplog.text  # cut back to the last good frame: nothing to repair
    assert file_size(path) <= 3000


# -- opening: files that cannot be read, cut or created -------------------------------------


def test_a_path_that_is_a_file_is_refused(path: str) -> None:
    Path(path).write_bytes(b"not a directory")
    with pytest.raises(StoreError, match="cannot open the store directory"):
        FileStore(path)
    store = FileStore(path, read_only=True)  # takes no lock: fails when it lists the files
    with pytest.raises(StoreError, match="cannot list"):
        store.load()


@pytest.mark.parametrize("name", ["archive.0", "snapshot.1"])
def test_an_unreadable_file_fails_the_open_and_releases_the_lock(path: str, name: str) -> None:
    fill(path)
    if name == "snapshot.1":
        with MessageQueue(store=FileStore(path)) as mq:
            mq.compact()
    target = Path(path, name)
    saved = target.read_bytes()
    target.unlink()
    target.mkdir()  # reading it fails (as with EACCES, which root would not get)
    with pytest.raises(StoreError, match="cannot read"):
        MessageQueue(store=FileStore(path))
    assert_unlocked(path)
    target.rmdir()
    target.write_bytes(saved)
    assert reopened(path) == [0, 1, 2, 3]


def test_a_torn_tail_that_cannot_be_cut_fails_the_open(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(path)
    with open(os.path.join(path, "archive.0"), "ab") as f:
        f.write(b"\x00" * 7)  # a torn last record
    monkeypatch.setattr(os, "truncate", eio)
    with pytest.raises(StoreError, match="cannot cut the torn tail"):
        MessageQueue(store=FileStore(path))
    assert_unlocked(path)
    assert reopened(path, read_only=True) == [0, 1, 2, 3]  # read-only cuts nothing
    monkeypatch.undo()
    assert reopened(path) == [0, 1, 2, 3]


@pytest.mark.parametrize("failure", ["short header", "fsync"])
def test_a_new_archive_that_cannot_be_made_leaves_nothing_behind(
    path: str, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    if failure == "fsync":
        monkeypatch.setattr(archive, "fsync", eio)
    else:
        monkeypatch.setattr(archive, "write", lambda fd, data: os.write(fd, data[:10]))
    with pytest.raises(StoreError, match="cannot create"):
        MessageQueue(store=FileStore(path))
    assert os.listdir(path) == ["LOCK"]  # no archive, no .tmp
    assert_unlocked(path)
    monkeypatch.undo()
    fill(path, 1)
    assert reopened(path) == [0]


@pytest.mark.parametrize("policy", ["never", "always"])
def test_a_store_closed_under_its_queue_refuses_adds_and_writes_nothing(path: str, policy: str) -> None:
    store = FileStore(path, fsync=policy)
    mq = MessageQueue(store=store)
    mq.add("q", 1)
    size = file_size(path)
    store.close()
    for add in (lambda: mq.add("q", 2), lambda: mq.add_many("q", [3, 4])):
        with pytest.raises(StoreError, match="the store is closed"):
            add()
    assert mq.all("q") == [1] and file_size(path) == size
    mq.close()
    assert reopened(path) == [1]
