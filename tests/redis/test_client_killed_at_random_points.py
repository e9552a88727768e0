"""kill -9 of a client at random points: nothing acknowledged is lost, nothing taken comes
back (SCALEOUT section 3, "Pitfalls to test"; DESIGN 12).

Each child (``python -c``, its own namespace, ``session_lease=SESSION``) runs two threads
that add, take and reserve at random on queues ``a`` and ``b``; each thread is also a
producer of bodies ``[thread, seq]``. It prints one flushed line per step, once the call
returned (``T`` before a take)::

    <t> A <queue> <seq> <id>   thread t's add of [t, seq] returned that id
    <t> T <queue>              thread t is about to take (get) from queue
    <t> E <queue>              ... and found nothing
    <t> R <queue> <p> <seq>    [p, seq] removed for good (get returned, or ack returned)
    <t> V <queue> <p> <seq>    [p, seq] reserved (lease=None); an ack or a nack follows
    <t> N <queue> <p> <seq>    [p, seq] nacked: back in the queue

The parent reads a random number of lines from each child, SIGKILLs it, reads what is
left in the pipe, waits until the session lease gave back what the child held, and
checks each namespace: every acknowledged add that was not acknowledged-removed is
there with its id, the only exceptions being removals in flight (after ``V``: that very
message, whose ack may have run; after ``T``: one message of that queue); nothing
acknowledged-removed is back; no duplicates; nothing that was never added (an add in
flight, at most one per thread, may go either way); each producer's messages that were
never reserved are in the order they were added. The seed is printed on failure;
``REDIS_CRASH_SEED=<seed>`` repeats the same kill points (in lines).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Dict, List, Set, Tuple

from procs_helpers import Child, wait_for

from unidist_queue.redisq import RedisMessageQueue

CHILDREN = 3
SESSION = 1.0

CHILD = r"""
import random, threading, traceback, os
from unidist_queue import Empty
url, ns, seed, session = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
mq = RedisMessageQueue(url, namespace=ns, session_lease=session)
out = threading.Lock()


def say(*fields):
    with out:
        sys.stdout.write(" ".join(map(str, fields)) + "\n")
        sys.stdout.flush()


def work(t):
    rnd = random.Random(seed * 10 + t)
    seq = 0
    while True:
        name = rnd.choice("ab")
        r = rnd.random()
        if r < 0.55:
            seq += 1
            say(t, "A", name, seq, mq.add(name, [t, seq]))
        elif r < 0.75:
            say(t, "T", name)
            try:
                say(t, "R", name, *mq.get(name, timeout=0))
            except Empty:
                say(t, "E", name)
        else:
            try:
                m = mq.reserve(name, timeout=0)
            except Empty:
                continue
            say(t, "V", name, *m.body)
            if rnd.random() < 0.3:
                mq.nack(m)
                say(t, "N", name, *m.body)
            else:
                mq.ack(m)
                say(t, "R", name, *m.body)


def guard(t):
    try:
        work(t)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)


for t in range(2):
    threading.Thread(target=guard, args=(t,), daemon=True).start()
threading.Event().wait(60)
"""

Key = Tuple[int, int]  # a body: (producer thread, seq)


class Report:
    """What one child acknowledged before it was killed."""

    def __init__(self) -> None:
        self.added: Dict[Key, Tuple[str, int]] = {}  # body -> (queue, id)
        self.removed: Set[Key] = set()
        self.reserved: Set[Key] = set()  # ever reserved (its place may have changed)
        self.last: Dict[str, List[str]] = {}  # thread -> its last line's fields

    def read(self, line: str) -> None:
        fields = line.split()
        self.last[fields[0]] = fields
        kind, name = fields[1], fields[2]
        if kind == "A":
            self.added[(int(fields[0]), int(fields[3]))] = (name, int(fields[4]))
        elif kind in "RVN":
            key = (int(fields[3]), int(fields[4]))
            (self.removed if kind == "R" else self.reserved).add(key)


def check(mq: RedisMessageQueue, report: Report, where: str) -> None:
    settling = {(int(f[3]), int(f[4])) for f in report.last.values() if f[1] == "V"}
    takes: Dict[str, int] = {}
    for f in report.last.values():
        if f[1] == "T":
            takes[f[2]] = takes.get(f[2], 0) + 1
    adding = 2  # at most one add in flight per thread
    for name in "ab":
        found = {(m.body[0], m.body[1]): m.id for m in mq.messages(name)}
        assert len(found) == len(mq.messages(name)), f"{where} duplicates in {name}"
        expected = {k: i for k, (q, i) in report.added.items() if q == name and k not in report.removed}
        missing = set(expected) - set(found)
        assert len(missing - settling) <= takes.get(name, 0), f"{where} lost in {name}: {missing}"
        assert not set(found) & report.removed, f"{where} removed but back in {name}"
        assert all(found[k] == expected[k] for k in set(found) & set(expected)), f"{where} ids changed"
        unknown = set(found) - set(expected)
        assert len(unknown) <= adding, f"{where} never added: {unknown}"
        for producer in (0, 1):  # never-reserved messages of a producer keep their order
            seqs = [k[1] for k in found if k[0] == producer and k not in report.reserved]
            assert seqs == sorted(seqs), f"{where} order of producer {producer} in {name}"


def test_clients_killed_at_random_points_lose_nothing(tmp_path: Path, redis_url: str) -> None:
    seed = int(os.environ.get("REDIS_CRASH_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    where = f"[rerun with REDIS_CRASH_SEED={seed}]"
    children = [Child(tmp_path, CHILD, redis_url, f"crash{n}", rnd.randrange(1 << 30), SESSION)
                for n in range(CHILDREN)]
    reports = [Report() for _ in children]
    try:
        for child, report in zip(children, reports, strict=True):
            for _ in range(rnd.randint(20, 400)):
                report.read(child.line())
        for child in children:
            child.kill()
        for child, report in zip(children, reports, strict=True):
            for line in child.remaining():
                report.read(line)
    finally:
        for child in children:
            child.close()
    for n, report in enumerate(reports):
        with RedisMessageQueue(redis_url, namespace=f"crash{n}") as mq:
            wait_for(lambda mq=mq: mq.stats("a").reserved + mq.stats("b").reserved == 0,
                     f"{where} the killed client's reservations back")
            check(mq, report, where)
