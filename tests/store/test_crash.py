"""kill -9 of a real child process using a FileStore: nothing acknowledged is lost.

A child (``sys.executable -c CHILD``) opens ``MessageQueue(store=FileStore(path,
fsync=POLICY))`` and, from one or more threads, adds and removes at random (``oldest``,
``get``, ``reserve`` then ``ack`` or ``nack``). Each thread is also a producer: its
bodies are ``(thread, seq)``. It prints one flushed line per step, after the call
returned (``T`` before it)::

    <t> A <queue> <seq> <id>        thread t's add of (t, seq) acknowledged, with that id
    <t> T <queue>                   thread t is about to take (oldest or get) from queue
    <t> E <queue>                   ... and found nothing
    <t> R <queue> <p> <seq>         removal of (p, seq) acknowledged (oldest, get or ack)
    <t> V <queue> <p> <seq>         (p, seq) reserved; an ack or a nack follows
    <t> N <queue> <p> <seq>         (p, seq) nacked: back in the queue

The parent reads a random number of lines, kills the child with SIGKILL, reads what is
left in the pipe (printed, so acknowledged), reopens the store and checks:

* every acknowledged add that was not acknowledged-removed is there, with its id; the
  only exceptions are removals in flight, known from each thread's last line: after
  ``V``, that very message (its ack may have happened); after ``T``, one message of that
  queue. Reserved-but-unsettled messages are ready again;
* nothing acknowledged-removed is back; no duplicates; nothing that was never added (an
  add in flight, at most one per thread, may go either way);
* each producer's messages are in the order they were added, in every queue;
* ids keep increasing after the restart; no ``*.tmp`` file is left after the open.

Each policy runs several times; so does a child that compacts in a loop, with a small
``compact_every`` too (kill during compaction). The random seed is printed on failure;
``CRASH_SEED=<seed>`` repeats the same runs (settings, child seeds, kill points in lines;
the exact moment still depends on timing). ``CRASH_RUNS=<n>`` sets the number of kills
per test (default 25, about 3 s per test; the reliability bar's 200 for a long run).
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Dict, List, Optional, Set, Tuple

import attrs
import pytest
from conftest import child_env

from unidist_queue import MessageQueue
from unidist_queue.store.file import FileStore

RUNS = int(os.environ.get("CRASH_RUNS", "25"))
TIMEOUT = 30.0  # seconds for any wait on the child; never reached when all is well

CHILD = r"""
import faulthandler, os, random, sys, threading, traceback
faulthandler.dump_traceback_later(60, exit=True)
from unidist_queue import Empty, MessageQueue
from unidist_queue.store.file import FileStore

path, policy = sys.argv[1], sys.argv[2]
seed, threads, compact_every = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]) or None
compact_loop = sys.argv[6] == "1"
mq = MessageQueue(store=FileStore(path, fsync=policy, fsync_interval=0.01, compact_every=compact_every))
out = threading.Lock()


def say(*fields):
    with out:
        sys.stdout.write(" ".join(map(str, fields)) + "\n")
        sys.stdout.flush()


def work(t):
    rnd = random.Random(seed * 1000 + t)
    seq = 0
    while True:
        name = rnd.choice("ab")
        r = rnd.random()
        if r < 0.55:
            seq += 1
            msg_id = mq.add(name, (t, seq))
            say(t, "A", name, seq, msg_id)
        elif r < 0.8:
            say(t, "T", name)
            if r < 0.7:
                body = mq.oldest(name, default=None)
            else:
                try:
                    body = mq.get(name, timeout=0)
                except Empty:
                    body = None
            if body is None:
                say(t, "E", name)
            else:
                say(t, "R", name, *body)
        else:
            try:
                m = mq.reserve(name, timeout=0)
            except Empty:
                continue
            say(t, "V", name, *m.body)
            if rnd.random() < 0.25:
                mq.nack(m)
                say(t, "N", name, *m.body)
            else:
                mq.ack(m)
                say(t, "R", name, *m.body)


def compacting():
    while True:
        mq.compact()


def guard(fn, *args):
    try:
        fn(*args)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)


workers = [threading.Thread(target=guard, args=(work, t), daemon=True) for t in range(threads)]
if compact_loop:
    workers.append(threading.Thread(target=guard, args=(compacting,), daemon=True))
for t in workers:
    t.start()
for t in workers:
    t.join()
"""

Key = Tuple[int, int]  # (producer, seq): a message's body


@attrs.define
class Report:
    """What the child acknowledged before it was killed."""

    added: Dict[Key, Tuple[str, int]] = attrs.Factory(dict)  # body -> (queue, id)
    removed: Set[Key] = attrs.Factory(set)
    last: Dict[int, List[str]] = attrs.Factory(dict)  # thread -> its last line's fields
    lines: int = 0

    def in_flight(self) -> Tuple[Set[Key], Dict[str, int]]:
        """Removals that may have happened unreported: settled messages, takes per queue."""
        settling: Set[Key] = set()
        takes: Dict[str, int] = {}
        for fields in self.last.values():
            if fields[1] == "V":
                settling.add((int(fields[3]), int(fields[4])))
            elif fields[1] == "T":
                takes[fields[2]] = takes.get(fields[2], 0) + 1
        return settling, takes


@attrs.frozen
class Run:
    """One kill: where, with which settings, and how to say so on failure."""

    path: Path
    policy: str
    seed: int
    threads: int
    kill_after: int
    compact_every: int = 0
    compact_loop: bool = False

    def where(self) -> str:
        return (
            f"[policy={self.policy} threads={self.threads} kill_after={self.kill_after} "
            f"compact_every={self.compact_every} compact_loop={self.compact_loop}; "
            f"rerun with CRASH_SEED={self.seed}]"
        )


class LineReader:
    """Reads the child's stdout in a thread, so every read can have a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[Optional[str]] = queue.Queue()
        self._stream = stream
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for line in self._stream:
            self._lines.put(line)
        self._lines.put(None)

    def get(self) -> Optional[str]:
        """The next line; ``None`` at the end of the stream."""
        return self._lines.get(timeout=TIMEOUT)

    def join(self) -> None:
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "the reader thread did not end"


def master_seed() -> int:
    return int(os.environ.get("CRASH_SEED", random.randrange(2**32)))


def kill_child(run: Run, tmp_path: Path) -> Report:
    """Start the child, read ``run.kill_after`` lines, SIGKILL it, read the rest."""
    env = child_env()
    argv = [
        sys.executable, "-c", CHILD, str(run.path), run.policy, str(run.seed), str(run.threads),
        str(run.compact_every), "1" if run.compact_loop else "0",
    ]
    report = Report()
    with open(tmp_path / "child.stderr", "w+") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        assert proc.stdout is not None
        reader = LineReader(proc.stdout)
        try:
            line = reader.get()
            while line is not None:
                parse(line, report, run)
                if report.lines == run.kill_after:
                    proc.send_signal(signal.SIGKILL)
                line = reader.get()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(TIMEOUT)
            reader.join()
            proc.stdout.close()
        err.seek(0)
        assert proc.returncode == -signal.SIGKILL, (
            f"the child ended by itself (status {proc.returncode}) after {report.lines} lines "
            f"{run.where()}:\n{err.read()[-3000:]}"
        )
    return report


def parse(line: str, report: Report, run: Run) -> None:
    fields = line.split()
    thread, kind = int(fields[0]), fields[1]
    if kind == "A":
        report.added[(thread, int(fields[3]))] = (fields[2], int(fields[4]))
    elif kind == "R":
        report.removed.add((int(fields[3]), int(fields[4])))
    else:
        assert kind in ("T", "E", "V", "N"), f"unexpected line {line!r} {run.where()}"
    report.last[thread] = fields
    report.lines += 1


def check_recovery(run: Run, report: Report) -> None:
    """Reopen the store in this process and compare it with what was acknowledged."""
    where = run.where()
    with MessageQueue(store=FileStore(run.path, fsync=run.policy)) as mq:
        assert not [n for n in os.listdir(run.path) if n.endswith(".tmp")], f"*.tmp left {where}"
        found: Dict[Key, Tuple[str, int]] = {}
        for name in mq.queues():
            assert mq.stats(name).reserved == 0, f"a reservation survived the restart {where}"
            order: Dict[int, List[int]] = {}
            for m in mq.messages(name):
                key = (int(m.body[0]), int(m.body[1]))
                assert key not in found, f"duplicate {key} {where}"
                found[key] = (name, m.id)
                order.setdefault(key[0], []).append(key[1])
            for producer, seqs in order.items():
                assert seqs == sorted(seqs), f"producer {producer} out of order in {name!r}: {seqs} {where}"
        back = sorted(report.removed & found.keys())
        assert not back, f"acknowledged removals are back: {back} {where}"
        last_seq: Dict[int, int] = {}
        for producer, seq in report.added:
            last_seq[producer] = max(seq, last_seq.get(producer, 0))
        for key, where_found in found.items():
            if key in report.added:
                expected = report.added[key]
                assert where_found == expected, f"{key}: {where_found} != {expected} {where}"
            else:  # an add in flight when the child died: only each producer's next one
                assert key[1] == last_seq.get(key[0], 0) + 1, f"never added: {key} {where}"
        settling, takes = report.in_flight()
        for key in sorted(report.added.keys() - report.removed - found.keys()):
            if key in settling:
                continue  # its ack was in flight
            name = report.added[key][0]
            assert takes.get(name, 0) > 0, f"acknowledged add lost: {key} in {name!r} {where}"
            takes[name] -= 1  # a take in flight on that queue may have removed it
        top = max([i for _, i in report.added.values()] + [i for _, i in found.values()], default=0)
        assert mq.add("a", "after the restart") > top, f"ids went back {where}"
    assert not [n for n in os.listdir(run.path) if n.endswith(".tmp")], f"*.tmp left {where}"


def crash_runs(tmp_path: Path, policy: str, compact_every: int = 0, compact_loop: bool = False) -> int:
    seed = master_seed()
    rnd = random.Random(seed)
    kills = 0
    for i in range(RUNS):
        run = Run(
            path=tmp_path / f"store-{i}",
            policy=policy,
            seed=rnd.randrange(2**32),
            threads=rnd.choice([1, 3]),
            kill_after=rnd.randint(1, 400),
            compact_every=compact_every,
            compact_loop=compact_loop,
        )
        try:
            report = kill_child(run, tmp_path)
            check_recovery(run, report)
        except BaseException:
            print(f"test_crash: master seed {seed} (CRASH_SEED={seed}), run {i}: {run.where()}")
            raise
        kills += 1
    return kills


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_kill_9_loses_nothing_acknowledged(tmp_path: Path, policy: str) -> None:
    assert crash_runs(tmp_path, policy) == RUNS


@pytest.mark.parametrize("policy", ["always", "never"])
def test_kill_9_during_compaction(tmp_path: Path, policy: str) -> None:
    assert crash_runs(tmp_path, policy, compact_every=20, compact_loop=True) == RUNS


def test_kill_9_during_automatic_compaction(tmp_path: Path) -> None:
    assert crash_runs(tmp_path, "interval", compact_every=5) == RUNS
