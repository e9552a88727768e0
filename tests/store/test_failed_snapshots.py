"""Snapshots that cannot be written leak neither descriptors nor archive files, and lose
nothing: a state the serializer refuses, a short write, a directory fsync that fails, old
files that cannot be deleted.

Each compaction used to create a new archive generation and retire the descriptor of the
old one; when the snapshot then failed, the retired descriptor stayed open (until an
fsync round happened to close it: never with ``fsync="never"``) and the next attempt made
yet another generation. With ``compact_every=5``, 1,000 adds left ~200 descriptors and
~201 archive files behind, and a process at its descriptor limit could not compact even
once the disk had room again. Now a failed snapshot closes the descriptors it retired
and the next attempt reuses the archive generation that is still without a snapshot.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable, List

import pytest
from helpers import eio, fill, reopened

from unidist_queue import MessageQueue, StoreError
from unidist_queue.store import archive, snapshot
from unidist_queue.store import file as file_module
from unidist_queue.store.file import FileStore
from unidist_queue.store.serializers import by_name

N = 1000


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def names(path: str, kind: str) -> List[str]:
    found = [n for n in os.listdir(path) if n.startswith(kind + ".")]
    return sorted(found, key=lambda n: int(n.split(".")[1]))


def refuse_before_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot cannot be written at all (say the disk is full)."""

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise StoreError("injected: no space left on the device")

    # write_snapshot as file.py imported it: the store's one way to write a snapshot
    monkeypatch.setattr(file_module, "write_snapshot", refuse)


def fail_after_renaming(monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot is renamed into place, but the directory's fsync fails."""

    def eio(path: str) -> None:
        raise OSError(5, "injected: I/O error")

    monkeypatch.setattr(snapshot, "fsync_dir", eio)  # only write_snapshot's, not the store's


INJECTIONS = {"refused": refuse_before_writing, "after_rename": fail_after_renaming}


@pytest.mark.parametrize("policy", ["never", "interval", "always"])
@pytest.mark.parametrize("inject", sorted(INJECTIONS))
def test_failed_snapshots_leak_neither_descriptors_nor_archives(
    path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, policy: str, inject: str
) -> None:
    mq = MessageQueue(store=FileStore(path, fsync=policy, compact_every=5))
    try:
        mq.declare("q", durable=True)
        fds = open_fds()
        INJECTIONS[inject](monkeypatch)
        with caplog.at_level(logging.ERROR):
            for i in range(N):
                mq.add("q", i)
        assert "automatic compaction failed" in caplog.text  # the failures were seen, and logged
        assert open_fds() <= fds
        assert len(names(path, "archive")) <= 2
        assert len(names(path, "snapshot")) <= 1
        assert not [n for n in os.listdir(path) if n.endswith(".tmp")]
        monkeypatch.undo()  # the disk has room again
        mq.compact()
        assert open_fds() <= fds
        assert sorted(os.listdir(path)) == ["LOCK", *names(path, "archive"), *names(path, "snapshot")]
        assert len(names(path, "archive")) == len(names(path, "snapshot")) == 1
        mq.add("q", N)
    finally:
        mq.close()
    assert reopened(path) == list(range(N + 1))


@pytest.mark.parametrize("inject", sorted(INJECTIONS))
def test_records_stay_durable_through_failed_snapshots(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inject: str
) -> None:
    """Adds and takes on both sides of several failed snapshots: every image reopens right."""
    mq = MessageQueue(store=FileStore(path, fsync="never"))
    images: List[Path] = []
    expect: List[List[int]] = []
    try:
        INJECTIONS[inject](monkeypatch)
        for round_ in range(4):
            for i in range(10):
                mq.add("q", round_ * 10 + i)
            assert mq.get("q") == round_ * 5  # a remove of a record an older generation holds
            for _ in range(4):
                mq.get("q")
            with pytest.raises(StoreError, match="injected"):
                mq.compact()
            images.append(tmp_path / f"image{round_}")
            shutil.copytree(path, images[-1])  # the files as a crash would leave them
            expect.append(mq.all("q"))
        assert len(names(path, "archive")) == 2
        mq.add("q", 40)
    finally:
        mq.close()
    assert reopened(path) == [*expect[-1], 40]
    for image, want in zip(images, expect, strict=True):
        assert reopened(str(image)) == want


def test_normal_rotation_resumes_after_a_snapshot_succeeds(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mq = MessageQueue(store=FileStore(path, fsync="never"))
    try:
        mq.add("q", 0)
        refuse_before_writing(monkeypatch)
        for i in range(1, 4):
            with pytest.raises(StoreError):
                mq.compact()
            mq.add("q", i)
        assert names(path, "archive") == ["archive.0", "archive.1"]
        monkeypatch.undo()
        mq.compact()
        assert sorted(os.listdir(path)) == ["LOCK", "archive.1", "snapshot.1"]
        mq.add("q", 4)
        mq.compact()  # rotates again, as before any failure
        assert sorted(os.listdir(path)) == ["LOCK", "archive.2", "snapshot.2"]
        mq.add("q", 5)
    finally:
        mq.close()
    assert reopened(path) == list(range(6))


def test_a_crash_after_the_reused_generation_got_its_snapshot(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """snapshot.1 over an archive.1 that also holds records the snapshot has: replayed once."""
    mq = MessageQueue(store=FileStore(path, fsync="never"))
    try:
        for i in range(3):
            mq.add("q", i)
        refuse_before_writing(monkeypatch)
        with pytest.raises(StoreError):
            mq.compact()
        mq.add("q", 3)  # in archive.1, and in the snapshot below
        monkeypatch.undo()
        delete: Callable[..., Any] = os.unlink
        monkeypatch.setattr(os, "unlink", lambda *a: None)  # as if killed before deleting archive.0
        mq.compact()
        monkeypatch.setattr(os, "unlink", delete)
        mq.add("q", 4)  # in archive.1, after the snapshot
        shutil.copytree(path, tmp_path / "image")
    finally:
        mq.close()
    assert sorted(os.listdir(tmp_path / "image")) == ["LOCK", "archive.0", "archive.1", "snapshot.1"]
    assert reopened(str(tmp_path / "image")) == [0, 1, 2, 3, 4]
    assert reopened(path) == [0, 1, 2, 3, 4]


# -- a snapshot that cannot be serialized, written or made durable, or whose old files stay ---


def test_a_state_the_serializer_cannot_write(path: str) -> None:
    os.makedirs(path)
    with pytest.raises(StoreError, match="cannot serialize the snapshot state"):
        snapshot.write_snapshot(path, "snapshot.1", {"x": {1, 2}}, 0, by_name("json"), None)
    assert os.listdir(path) == []


def test_a_snapshot_write_that_writes_nothing(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mq = MessageQueue(store=FileStore(path))
    try:
        for i in range(3):
            mq.add("q", i)
        mq.store.prepare_snapshot()  # the next archive exists: compact() only writes the snapshot
        monkeypatch.setattr(archive, "write", lambda fd, data: 0)
        with pytest.raises(StoreError, match="disk full"):
            mq.compact()
        assert sorted(os.listdir(path)) == ["LOCK", "archive.0", "archive.1"]  # no snapshot, no .tmp
        monkeypatch.undo()
        mq.add("q", 3)
    finally:
        mq.close()
    assert reopened(path) == [0, 1, 2, 3]


def test_a_snapshot_whose_directory_fsync_fails(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mq = MessageQueue(store=FileStore(path))
    try:
        for i in range(3):
            mq.add("q", i)
        monkeypatch.setattr(snapshot, "fsync_dir", eio)
        with pytest.raises(StoreError, match="cannot write snapshot"):
            mq.compact()  # renamed into place, but the rename may not be durable
        monkeypatch.undo()
        mq.add("q", 3)
        assert reopened(path, read_only=True) == [0, 1, 2, 3]
        mq.compact()  # rewrites snapshot.1 over archive.1 (no new generation), removes archive.0
        assert sorted(os.listdir(path)) == ["LOCK", "archive.1", "snapshot.1"]
        mq.add("q", 4)
    finally:
        mq.close()
    assert reopened(path) == [0, 1, 2, 3, 4]


def test_files_a_snapshot_replaces_that_cannot_be_deleted(
    path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fill(path)
    with MessageQueue(store=FileStore(path)) as mq:
        monkeypatch.setattr(os, "unlink", eio)
        with caplog.at_level(logging.WARNING):
            mq.compact()  # harmless: the snapshot is durable
        monkeypatch.undo()
        assert "cannot delete files replaced by snapshot.1" in caplog.text
        assert "archive.0" in os.listdir(path)
    assert reopened(path) == [0, 1, 2, 3]  # the next open removes them
    assert sorted(os.listdir(path)) == ["LOCK", "archive.1", "snapshot.1"]
