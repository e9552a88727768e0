"""A FileStore's lock dies with its process, even when that process forked a helper.

DESIGN.md section 8: one FileStore at a time holds a directory "through an OS file lock
that dies with the process". An ``flock`` lock belongs to the open file description, so
a child made with ``os.fork()`` used to inherit it: the store stayed locked for as long
as the child lived, although its owner was dead. A forked child now drops its copies of
every FileStore's descriptors at once, and the stores it inherited refuse to be used.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import subprocess
import sys
import time
import warnings
import weakref
from pathlib import Path
from typing import IO, Callable, List, Optional

import pytest
from conftest import child_env
from helpers import WAIT

from unidist_queue import FileStore, MessageQueue, StoreError, StoreLocked

# The child: opens a store, forks a helper that never touches it and sleeps, and says so
# once the helper runs (before that, the helper may still hold the copies it inherited).
CHILD = r"""
import os, sys, time
from unidist_queue import FileStore, MessageQueue
mq = MessageQueue(store=FileStore(sys.argv[1], fsync="never"))
mq.add("q", "before the fork")
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        os.write(w, b"x")  # os.fork() returned here: the at-fork hooks have run
        time.sleep(60)  # the helper; the test kills it long before
    finally:
        os._exit(0)
os.close(w)
os.read(r, 1)
print(pid, "ready", flush=True)
time.sleep(60)
"""


def read_line(stream: IO[str], timeout: float = WAIT) -> str:
    """One line from a child's stdout, waiting at most ``timeout`` seconds."""
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "the child said nothing in time"
    return stream.readline()


def gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (exited, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def kill_by_pid(pid: int) -> None:
    """SIGKILL a process that is not our child (we cannot wait for it) and see it end."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + WAIT
    while not gone(pid):
        assert time.monotonic() < deadline, f"process {pid} survived SIGKILL"
        time.sleep(0.01)


def bodies(path: str) -> List[object]:
    with MessageQueue(store=FileStore(path, read_only=True)) as mq:
        return [m.body for m in mq.messages("q")]


def test_the_lock_dies_with_its_process_although_a_forked_helper_lives(tmp_path: Path) -> None:
    path = str(tmp_path / "store")
    with open(tmp_path / "stderr", "w+") as err:
        argv = [sys.executable, "-c", CHILD, path]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=child_env(), text=True)
        helper: Optional[int] = None
        try:
            assert proc.stdout is not None
            line = read_line(proc.stdout)
            assert line.endswith(" ready\n"), line + Path(err.name).read_text()
            helper = int(line.split()[0])
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=WAIT) == -signal.SIGKILL
            assert not gone(helper)  # the helper still lives, with the descriptors it inherited
            store = FileStore(path)  # raised StoreLocked until the helper died
            with MessageQueue(store=store) as mq:
                assert [m.body for m in mq.messages("q")] == ["before the fork"]
                mq.add("q", "after the owner died")
            assert not gone(helper)
        finally:
            if helper is not None:
                kill_by_pid(helper)
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=WAIT)
            if proc.stdout is not None:
                proc.stdout.close()
    assert bodies(path) == ["before the fork", "after the owner died"]


def in_forked_child(check: Callable[[], None]) -> None:
    """Run ``check`` in a child made by ``os.fork()``; fail with its error if it raised.

    The child never returns into pytest: it ends with ``os._exit`` whatever happens.
    """
    r, w = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about forking a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            try:
                check()
                code = 0
            except BaseException as exc:
                os.write(w, repr(exc).encode()[:4000])
        finally:
            os._exit(code)
    os.close(w)
    try:
        deadline = time.monotonic() + WAIT
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)  # SIGKILLed: returns at once
                pytest.fail("the forked child did not finish in time")
            time.sleep(0.01)
        with os.fdopen(r, "rb") as f:
            message = f.read().decode()
    except BaseException:
        os.close(r)
        raise
    assert os.waitstatus_to_exitcode(status) == 0, message


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_a_forked_child_neither_uses_nor_keeps_the_parents_store(tmp_path: Path, policy: str) -> None:
    path = str(tmp_path / "store")
    store = FileStore(path, fsync=policy)
    mq = MessageQueue(store=store)
    try:
        mq.add("q", 1)
        before = {name: Path(path, name).read_bytes() for name in os.listdir(path)}

        def child() -> None:
            parent = "belongs to the parent process"
            with pytest.raises(StoreError, match=parent):
                store.append(("ids", 10))
            with pytest.raises(StoreError, match=parent):
                store.append_batch([(("ids", 10), None)])
            with pytest.raises(StoreError, match=parent):
                store.commit(1)
            with pytest.raises(StoreError, match=parent):
                store.prepare_snapshot()
            with pytest.raises(StoreError, match=parent):
                store.load()
            store.close()  # forgets the store: no fsync, nothing of the parent's touched
            store.close()
            with pytest.raises(StoreLocked):
                FileStore(path)  # the parent still holds the directory

        in_forked_child(child)
        assert {name: Path(path, name).read_bytes() for name in os.listdir(path)} == before
        with pytest.raises(StoreLocked):
            FileStore(path)
        mq.add("q", 2)  # the parent's store goes on as before
        mq.compact()
        mq.add("q", 3)
    finally:
        mq.close()
    assert bodies(path) == [1, 2, 3]


def test_a_forked_child_opens_a_store_of_its_own(tmp_path: Path) -> None:
    path = str(tmp_path / "store")
    with MessageQueue(store=FileStore(path)) as mq:
        mq.add("q", 1)

    def child() -> None:
        with MessageQueue(store=FileStore(path)) as mq:  # a store of the child's own works
            mq.add("q", 2)

    in_forked_child(child)
    assert bodies(path) == [1, 2]


def test_a_forked_child_that_lets_go_of_the_parents_store_says_nothing(tmp_path: Path) -> None:
    """The child's copy of a store nobody references there is garbage: no ResourceWarning
    (the fork closed the child's descriptors already) and the parent keeps its lock."""
    path = str(tmp_path / "store")
    held = [MessageQueue(store=FileStore(path))]
    try:
        held[0].add("q", 1)
        store = weakref.ref(held[0].store)

        def child() -> None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                held.clear()
                gc.collect()
            assert store() is None  # collected: its __del__ ran
            assert [str(w.message) for w in caught] == []
            with pytest.raises(StoreLocked):
                FileStore(path)

        in_forked_child(child)
        with pytest.raises(StoreLocked):
            FileStore(path)
        held[0].add("q", 2)
    finally:
        held[0].close()
    assert bodies(path) == [1, 2]
