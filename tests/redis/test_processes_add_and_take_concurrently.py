"""Four processes add and take on the same two queues at once (DESIGN 12, issue 15 point 4).

Each child process runs three threads on one ``RedisMessageQueue``: an adder (``add`` and
``add_many`` of 1-5 messages at random) that puts ``N`` bodies ``[child, seq]`` in
queue ``g`` and ``N`` in queue ``r``, a taker of ``g`` (``get``), and a taker of ``r``
(``reserve`` or ``reserve_many``, then ``ack``/``ack_many``, with a ``nack``/``nack_many``
now and then). A taker stops once its adder is done and a wait of half a second found
nothing. The children start together (a ``go`` line once all are connected) and report
what they did as one JSON line.

Then: every message of ``g`` was returned by ``get`` exactly once, and each taker saw each
producer's messages in the order they were added; every message of ``r`` was acked
exactly once (delivered at least once), with the id its add returned; the ids are unique
and increase in the order each adder got them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Tuple

from procs_helpers import Child

from unidist_queue.redisq import RedisMessageQueue

CHILDREN = 4
N = 200  # messages per child and per queue

CHILD = r"""
import json, random, threading
from unidist_queue import Empty

url, me, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mq = RedisMessageQueue(url)
done = threading.Event()
added = []   # [queue, id, seq] in the order the adds returned
got = []     # bodies returned by get
acked = []   # [body, id, attempts]
deliveries = [0]


def adder():
    rnd = random.Random(me)
    seqs = {"g": 0, "r": 0}
    while min(seqs.values()) < n:
        name = rnd.choice([q for q in "gr" if seqs[q] < n])
        k = min(rnd.randint(1, 5), n - seqs[name])
        bodies = [[me, seqs[name] + i] for i in range(k)]
        ids = [mq.add(name, bodies[0])] if k == 1 and rnd.random() < 0.5 else mq.add_many(name, bodies)
        added.extend([name, i, b[1]] for i, b in zip(ids, bodies))
        seqs[name] += k
    done.set()


def getter():
    while True:
        try:
            got.append(mq.get("g", timeout=0.5))
        except Empty:
            if done.is_set():
                return


def reserver():
    rnd = random.Random(1000 + me)
    while True:
        try:
            if rnd.random() < 0.5:
                batch = [mq.reserve("r", timeout=0.5)]
            else:
                batch = mq.reserve_many("r", rnd.randint(1, 5), timeout=0.5)
        except Empty:
            if done.is_set():
                return
            continue
        deliveries[0] += len(batch)
        if rnd.random() < 0.1:
            mq.nack(batch[0]) if len(batch) == 1 else mq.nack_many(batch)
            continue
        mq.ack(batch[0]) if len(batch) == 1 else mq.ack_many(batch)
        acked.extend([m.body, m.id, m.attempts] for m in batch)


print("ready", flush=True)
assert sys.stdin.readline().strip() == "go"
threads = [threading.Thread(target=f) for f in (adder, getter, reserver)]
for t in threads:
    t.start()
for t in threads:
    t.join(60)
    assert not t.is_alive()
print("report", json.dumps({"added": added, "got": got, "acked": acked, "deliveries": deliveries[0]}),
      flush=True)
mq.close()
"""


def run_children(tmp_path: Path, url: str) -> List[Dict[str, Any]]:
    children = [Child(tmp_path, CHILD, url, me, N) for me in range(CHILDREN)]
    try:
        for c in children:
            c.expect("ready")
        for c in children:
            c.send("go")
        reports = [json.loads(" ".join(c.expect("report"))) for c in children]
        for c in children:
            c.finish()
        return reports
    finally:
        for c in children:
            c.close()


def test_four_processes_add_and_take_every_message_once(tmp_path: Path, redis_url: str) -> None:
    reports = run_children(tmp_path, redis_url)
    ids_of: Dict[Tuple[str, int, int], int] = {}  # (queue, producer, seq) -> id
    for me, report in enumerate(reports):
        ids = [i for _, i, _ in report["added"]]
        assert ids == sorted(ids) and len(set(ids)) == len(ids), "ids increase for each adder"
        ids_of.update({(q, me, seq): i for q, i, seq in report["added"]})
    assert len(set(ids_of.values())) == len(ids_of) == 2 * CHILDREN * N, "ids are unique"
    every = Counter((me, seq) for me in range(CHILDREN) for seq in range(N))

    # get: exactly once, and in each taker in each producer's order
    assert Counter(tuple(b) for r in reports for b in r["got"]) == every
    for report in reports:
        for me in range(CHILDREN):
            seqs = [seq for p, seq in report["got"] if p == me]
            assert seqs == sorted(seqs)

    # reserve/ack: each message acked exactly once, delivered at least once, with its id
    acked = [(tuple(b), i, attempts) for r in reports for b, i, attempts in r["acked"]]
    assert Counter(b for b, _, _ in acked) == every
    assert all(i == ids_of[("r", *b)] and attempts >= 1 for b, i, attempts in acked)
    assert sum(r["deliveries"] for r in reports) >= len(acked)

    with RedisMessageQueue(redis_url) as mq:
        for name in "gr":
            stats = mq.stats(name)
            assert (stats.ready, stats.delayed, stats.reserved) == (0, 0, 0)
            assert (stats.added, stats.removed) == (CHILDREN * N, CHILDREN * N)
