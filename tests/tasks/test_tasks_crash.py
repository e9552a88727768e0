"""A durable series survives a kill -9 of a real process: a restart runs every unfinished task.

The child process opens a ``FileStore(fsync="always")``, runs a few tasks of the durable
series ``"jobs"`` to completion (acknowledged), then submits more while its worker's
two slots are stuck, so that at the kill two tasks are running and the rest are waiting.
The parent SIGKILLs it, reopens the store, hires a worker and checks the runs recorded
(fsynced) in a log file by :mod:`_crash_tasks`.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Dict, Iterator, List, Set

import _crash_tasks
import pytest
from conftest import child_env

from unidist_queue.queues import MessageQueue
from unidist_queue.store.file import FileStore
from unidist_queue.tasks import TaskHandler

WAIT = 30.0  # bound on every wait (a child process starts in well under a second)
HERE = Path(__file__).resolve().parent  # tests/tasks/, where _crash_tasks.py is

TOTAL = 10  # tasks submitted by the child
ACKED = 3  # tasks 0..2 finish (and are acknowledged) before the kill
SLOTS = 2  # tasks 3 and 4 are running at the kill, 5..9 waiting
FAIL = {ACKED, TOTAL - 1}  # one in flight and one waiting raise when they run again

CHILD = r"""
import faulthandler, sys, threading
faulthandler.dump_traceback_later(60, exit=True)

import _crash_tasks
from unidist_queue.queues import MessageQueue
from unidist_queue.store.file import FileStore
from unidist_queue.tasks import TaskHandler

store, log, total, acked, slots = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
fail = {int(n) for n in sys.argv[6].split(",")}
mq = MessageQueue(store=FileStore(store, fsync="always"))
th = TaskHandler(0, mq=mq)
th.hire("jobs", slots=slots)
for n in range(acked):
    future = th.submit_to("jobs", _crash_tasks.work, log, n)
    print("submitted", n, flush=True)
    assert future.result(timeout=30).n == n
    print("acked", n, flush=True)
_crash_tasks.HOLDING = True
for n in range(acked, total):
    th.submit_to("jobs", _crash_tasks.work, log, n, fail=n in fail)
    print("submitted", n, flush=True)
for _ in range(slots):
    assert _crash_tasks.HELD.acquire(timeout=30)
print("ready", flush=True)
threading.Event().wait(60)  # SIGKILLed here
"""


class Child:
    """The child process and a thread reading its stdout lines into a queue."""

    def __init__(self, tmp: Path, store: Path, log: Path) -> None:
        env = child_env(str(HERE))
        self.stderr_path = tmp / "child.stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(store), str(log), str(TOTAL), str(ACKED), str(SLOTS),
                 ",".join(map(str, sorted(FAIL)))],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env, cwd=str(tmp),
            )
        assert self.proc.stdout is not None
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, args=(self.proc.stdout,), name="child-stdout")
        self.reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.lines.put(raw.decode().strip())
        self.lines.put("<EOF>")

    def readline(self) -> str:
        try:
            line = self.lines.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail(f"no line from the child within {WAIT} s; stderr:\n{self.stderr()}")
        assert line != "<EOF>", f"the child ended early (status {self.proc.poll()}); stderr:\n{self.stderr()}"
        return line

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def kill(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        status = self.proc.wait(timeout=WAIT)
        self.reader.join(timeout=WAIT)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return status


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Child]:
    c = Child(tmp_path, tmp_path / "store", tmp_path / "runs.log")
    try:
        yield c
    finally:
        c.kill()


def runs_by(log: Path, pid: int, event: str) -> List[int]:
    """Task numbers of the ``event`` lines that process ``pid`` wrote, in order."""
    return [n for e, n, p in _crash_tasks.read_log(str(log)) if p == pid and e == event]


def wait_idle(th: TaskHandler, series: str, processed: int) -> Dict[str, object]:
    """Poll ``status()`` until ``processed`` tasks ran and none waits or runs (bounded)."""
    deadline = time.monotonic() + WAIT
    while True:
        s = th.status()["series"][series]
        if s["processed"] >= processed and s["waiting"] == 0 and s["running"] == 0:
            return dict(s)
        assert time.monotonic() < deadline, f"not done within {WAIT} s: {s}"
        time.sleep(0.002)


def test_kill_9_then_restart_runs_every_unfinished_task(
    tmp_path: Path, child: Child, caplog: pytest.LogCaptureFixture
) -> None:
    store, log = tmp_path / "store", tmp_path / "runs.log"
    submitted: Set[int] = set()
    acked: Set[int] = set()
    while (line := child.readline()) != "ready":
        word, n = line.split()
        (submitted if word == "submitted" else acked).add(int(n))
    assert child.kill() == -signal.SIGKILL
    pid = child.proc.pid
    assert submitted == set(range(TOTAL)) and acked == set(range(ACKED))
    # before the kill: 0..2 ran to the end, 3 and 4 were running, 5..9 were waiting
    assert runs_by(log, pid, "end") == list(range(ACKED))
    assert sorted(runs_by(log, pid, "start")) == list(range(ACKED + SLOTS))
    unfinished = sorted(submitted - acked)

    mq = MessageQueue(store=FileStore(store, fsync="always"))
    th = TaskHandler(0, mq=mq)
    try:
        before = th.status()["series"]["jobs"]
        assert (before["waiting"], before["running"]) == (len(unfinished), 0)
        fresh = th.submit_to("jobs", _crash_tasks.work, str(log), 100)  # a new task has a caller
        with caplog.at_level(logging.ERROR):
            th.hire("jobs")  # one slot: the tasks run one at a time, oldest first
            after = wait_idle(th, "jobs", len(unfinished) + 1)
            assert fresh.result(timeout=WAIT).n == 100
            assert th.shutdown(timeout=WAIT) == []
        me = os.getpid()
        # every unfinished task ran exactly once after the restart, in submission order
        # (those that were running first: a reserved message returns at the front)
        assert runs_by(log, me, "start") == [*unfinished, 100]
        assert runs_by(log, me, "end") == [*unfinished, 100]
        # at-least-once over both processes; the acknowledged ones did not run again
        ended = {n for e, n, _ in _crash_tasks.read_log(str(log)) if e == "end"}
        assert ended >= submitted
        assert not acked & set(runs_by(log, me, "start"))
        # recovered tasks have no caller: an exception is logged, not raised; results discarded
        assert (after["processed"], after["failed"]) == (len(unfinished) + 1, len(FAIL))
        for n in FAIL:
            assert f"task {n} failed on purpose" in caplog.text
        gc.collect()
        assert not {r.n for r in _crash_tasks.RESULTS} & set(unfinished)  # nothing keeps them
        stats = mq.stats("task:jobs")
        assert (stats.ready, stats.reserved) == (0, 0)
    finally:
        th.shutdown(timeout=WAIT)
        mq.close()

    # the acknowledgements are durable too: a second restart finds nothing to run
    mq = MessageQueue(store=FileStore(store, fsync="always"))
    th = TaskHandler(0, mq=mq)
    try:
        assert th.status()["series"]["jobs"]["waiting"] == 0
        assert mq.count("task:jobs") == 0 and mq.stats("task:jobs").reserved == 0
    finally:
        assert th.shutdown(timeout=WAIT) == []
        mq.close()
