"""FileStore security: HMAC before unpickling, JSON, permissions, the single-writer lock, and
no appending through a symlink."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path
from typing import Any, Tuple

import pytest
from conftest import child_env
from helpers import assert_unlocked, fill, reopened

from unidist_queue import MessageQueue, StoreError, StoreLocked
from unidist_queue.store.archive import FRAME, HEADER
from unidist_queue.store.file import FileStore

KEY = b"the right key"


class Evil:
    """Unpickling this creates the directory ``path``: it stands for any code an attacker runs."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Tuple[Any, ...]:
        return (os.mkdir, (self.path,))


@pytest.fixture
def dirs(tmp_path: Path) -> Tuple[str, str, str]:
    return str(tmp_path / "victim"), str(tmp_path / "attacker"), str(tmp_path / "SENTINEL")


def test_hmac_round_trip_and_settings_are_enforced(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with MessageQueue(store=FileStore(path, hmac_key=KEY)) as mq:
        mq.add("q", {"a": 1})
        mq.compact()
        mq.add("q", {"b": 2})
    with MessageQueue(store=FileStore(path, hmac_key=KEY)) as mq:
        assert mq.all("q") == [{"a": 1}, {"b": 2}]
    with pytest.raises(StoreError, match="hmac_key"):
        MessageQueue(store=FileStore(path))
    with pytest.raises(StoreError, match="HMAC"):
        MessageQueue(store=FileStore(path, hmac_key=b"a wrong key"))


def test_unsigned_store_refuses_a_key(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with MessageQueue(store=FileStore(path)) as mq:
        mq.add("q", 1)
    with pytest.raises(StoreError, match="not signed"):
        MessageQueue(store=FileStore(path, hmac_key=KEY))


def _plant(attacker: str, victim: str, sentinel: str, compact: bool, **options: Any) -> None:
    """Write a store holding an Evil body, then copy its files over the victim's."""
    with MessageQueue(store=FileStore(attacker, **options)) as mq:
        mq.add("q", Evil(sentinel))
        if compact:
            mq.compact()
    for name in os.listdir(attacker):
        if name != "LOCK":
            shutil.copy(os.path.join(attacker, name), os.path.join(victim, name))


@pytest.mark.parametrize("compact", [False, True], ids=["archive", "snapshot"])
@pytest.mark.parametrize("attacker_key", [None, b"attacker's key"], ids=["unsigned", "other-key"])
def test_forged_pickle_never_runs_with_hmac(
    dirs: Tuple[str, str, str], compact: bool, attacker_key: Any
) -> None:
    victim, attacker, sentinel = dirs
    with MessageQueue(store=FileStore(victim, hmac_key=KEY)) as mq:
        mq.add("q", "honest")
    for name in os.listdir(victim):
        if name != "LOCK":
            os.unlink(os.path.join(victim, name))
    _plant(attacker, victim, sentinel, compact, hmac_key=attacker_key)
    with pytest.raises(StoreError):
        MessageQueue(store=FileStore(victim, hmac_key=KEY))
    assert not os.path.exists(sentinel)


def test_the_payload_is_live_without_hmac(dirs: Tuple[str, str, str]) -> None:
    """Control: the same file opened without a key does run the attacker's code."""
    victim, attacker, sentinel = dirs
    os.makedirs(victim)
    _plant(attacker, victim, sentinel, False)
    MessageQueue(store=FileStore(victim)).close()
    assert os.path.exists(sentinel)


def test_tampered_signed_record_is_rejected(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with MessageQueue(store=FileStore(path, hmac_key=KEY)) as mq:
        mq.add("q", "a" * 50)
    archive = Path(path, "archive.0")
    data = bytearray(archive.read_bytes())
    data[-40] ^= 1  # inside the body; then fix the CRC as an attacker would: only the tag fails
    epoch, at = data[16:24], HEADER.size
    while at + FRAME.size + FRAME.unpack_from(data, at)[0] < len(data):  # find the last record
        at += FRAME.size + FRAME.unpack_from(data, at)[0]
    length, _, seq = FRAME.unpack_from(data, at)
    payload = bytes(data[at + FRAME.size :])
    crc = zlib.crc32(payload, zlib.crc32(data[at + 8 : at + 16], zlib.crc32(epoch)))
    FRAME.pack_into(data, at, length, crc, seq)
    archive.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="HMAC"):
        FileStore(path, hmac_key=KEY, read_only=True).load()


def test_json_store_never_unpickles(dirs: Tuple[str, str, str]) -> None:
    victim, attacker, sentinel = dirs
    with MessageQueue(store=FileStore(victim, serializer="json")) as mq:
        mq.add("q", [1, "two"])
    for name in os.listdir(victim):
        if name != "LOCK":
            os.unlink(os.path.join(victim, name))
    _plant(attacker, victim, sentinel, False)  # a pickle store's files
    with pytest.raises(StoreError, match="pickle"):
        MessageQueue(store=FileStore(victim, serializer="json"))
    assert not os.path.exists(sentinel)


def test_directory_0700_and_files_0600(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    old = os.umask(0)
    try:
        with MessageQueue(store=FileStore(path)) as mq:
            mq.add("q", 1)
            mq.compact()
            mq.add("q", 2)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    for name in os.listdir(path):
        assert stat.S_IMODE(os.stat(os.path.join(path, name)).st_mode) == 0o600, name


def test_lock_in_the_same_process(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    mq = MessageQueue(store=FileStore(path))
    with pytest.raises(StoreLocked):
        FileStore(path)
    ro = FileStore(path, read_only=True)  # readers take no lock
    ro.load()
    ro.close()
    mq.close()
    FileStore(path).close()


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from unidist_queue.store.file import FileStore
    store = FileStore(sys.argv[1])
    print("locked", flush=True)
    time.sleep(60)
    """
)


def test_lock_across_processes_dies_with_the_process(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    env = child_env()
    command = [sys.executable, "-c", _HOLDER, path]
    holder = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLocked):
            FileStore(path)
    finally:
        holder.kill()
        holder.wait(timeout=30)
        assert holder.stdout is not None
        holder.stdout.close()
    FileStore(path).close()  # the OS released the lock of the killed process


def test_a_symlinked_archive_is_not_opened_for_appending(path: str, tmp_path: Path) -> None:
    fill(path)
    elsewhere = tmp_path / "elsewhere"
    os.replace(os.path.join(path, "archive.0"), elsewhere)
    os.symlink(elsewhere, os.path.join(path, "archive.0"))
    with pytest.raises(StoreError, match="cannot open the archive for appending"):
        MessageQueue(store=FileStore(path))
    assert_unlocked(path)
    assert reopened(path, read_only=True) == [0, 1, 2, 3]
