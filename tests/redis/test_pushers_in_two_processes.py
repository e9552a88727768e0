"""Pushers in two processes on one Redis queue (DESIGN 12, issue 15 point 5): each batch
is sent by one of them, every event once; across a crash, at least once.

Each child process runs ``Pusher(send, mq=RedisMessageQueue(..., session_lease=LEASE),
queue=QUEUE, batch_size=10, buffer_delay=0)``. Its ``send`` appends the batch (the
sender's pid and the message ids) as one JSON line to a Redis list the test reads with a
plain client, so every batch any receiver got is recorded, whichever process sent it.
A child reads commands on stdin: ``push N`` (it prints the ids), ``flush``, ``stop``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
import redis
from procs_helpers import Child, wait_for

from unidist_queue import RedisMessageQueue

NS = "pushers"
QUEUE = "events"
LEASE = 1.0  # the children's session lease, seconds
BATCHES = "received"  # the Redis list of the batches sent, one JSON line each

PUSHER = r"""
import json, os, threading, time
import redis
from unidist_queue import Pusher
url, ns, lease, queue, key, mode = sys.argv[1], sys.argv[2], float(sys.argv[3]), *sys.argv[4:7]
pid = os.getpid()
client = redis.Redis.from_url(url)

def together():
    # the first send of each process waits until both are sending, each its own batch
    client.rpush(key + ":inside", pid)
    deadline = time.monotonic() + 30
    while client.llen(key + ":inside") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)

said = threading.Lock()
def say(*words):  # one line, whole: send's thread and the main thread both print
    with said:
        sys.stdout.write(" ".join(map(str, words)) + "\n")
        sys.stdout.flush()

first = [True]
def send(batch):
    if mode == "together" and first[0]:
        first[0] = False
        together()
    client.rpush(key, json.dumps([pid, [m.id for m in batch]]))
    if mode == "hang":  # the receiver took the batch, then this process dies in send
        say("sending", *[m.id for m in batch])
        threading.Event().wait()

with RedisMessageQueue(url, namespace=ns, session_lease=lease) as mq:
    with Pusher(send, mq=mq, queue=queue, batch_size=10, buffer_delay=0) as pusher:
        say("ready")
        for line in sys.stdin:
            command, *rest = line.split()
            if command == "push":
                say("pushed", *[pusher.push(f"{pid}-{i}") for i in range(int(rest[0]))])
            elif command == "flush":
                say("flushed", pusher.flush(timeout=60))
            else:
                break
say("stopped")
"""


def pusher(tmp: Path, url: str, mode: str) -> Child:
    """A child process running a Pusher on :data:`QUEUE`, once ready."""
    return Child.ready(tmp, PUSHER, url, NS, LEASE, QUEUE, BATCHES, mode)


def push_until_stuck(child: Child) -> Tuple[List[int], List[int]]:
    """Make a ``"hang"`` child push 10 events; return their ids and those of the batch its
    ``send`` is stuck in (the receiver has it). Its two lines come in either order."""
    child.send("push 10")
    lines = {}
    for _ in range(2):
        word, *fields = child.line().split()
        lines[word] = [int(i) for i in fields]
    assert set(lines) == {"pushed", "sending"}, lines
    return lines["pushed"], lines["sending"]


def batches(client: redis.Redis) -> List[Tuple[int, List[int]]]:
    """``(pid of the sender, ids)`` of every batch a receiver got, in order."""
    return [(pid, ids) for pid, ids in map(json.loads, client.lrange(BATCHES, 0, -1))]


def received(client: redis.Redis) -> List[int]:
    return [i for _, ids in batches(client) for i in ids]


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as c:
        yield c


@pytest.fixture
def mq(redis_url: str) -> Iterator[RedisMessageQueue]:
    with RedisMessageQueue(redis_url, namespace=NS) as queue:
        yield queue


def test_pushers_in_two_processes_send_every_event_once(
        tmp_path: Path, redis_url: str, client: redis.Redis, mq: RedisMessageQueue) -> None:
    with pusher(tmp_path, redis_url, "together") as one, pusher(tmp_path, redis_url, "together") as two:
        for child in (one, two):
            child.send("push 200")
        ids = [mq.add(QUEUE, f"test-{i}") for i in range(100)]  # a process with no Pusher adds too
        ids += [int(i) for child in (one, two) for i in child.expect("pushed")]
        for child in (one, two):
            child.send("flush")
            assert child.expect("flushed") == ["True"]
        wait_for(lambda: len(received(client)) >= len(ids), "every event sent")
        one.stop()
        two.stop()
    assert Counter(received(client)) == Counter(ids)  # each once, none missing
    assert {pid for pid, _ in batches(client)} == {one.pid, two.pid}  # both sent
    assert all(1 <= len(b) <= 10 for _, b in batches(client))
    stats = mq.stats(QUEUE)
    assert stats.ready == stats.reserved == 0 and stats.removed == len(ids)


def test_a_batch_in_flight_when_its_pusher_process_dies_is_sent_by_the_other(
        tmp_path: Path, redis_url: str, client: redis.Redis, mq: RedisMessageQueue) -> None:
    """The first child's ``send`` records its batch (the receiver has it), then the child
    is killed before ``send`` returns: the batch is not acked. Once the lease lapses, the
    other child's Pusher sends it again, by itself: every id arrives at least once, and
    the duplicates are exactly the batch that was in flight."""
    with pusher(tmp_path, redis_url, "hang") as dying, pusher(tmp_path, redis_url, "normal") as other:
        ids, in_flight = push_until_stuck(dying)
        dying.kill()
        assert in_flight and set(in_flight) <= set(ids)
        other.send("push 20")
        ids += [int(i) for i in other.expect("pushed")]
        wait_for(lambda: set(received(client)) >= set(ids), "every event sent")
        wait_for(lambda: all(Counter(received(client))[i] == 2 for i in in_flight),
                 "the batch in flight sent again")
        other.stop()
    counts = Counter(received(client))
    assert set(counts) == set(ids)
    assert sorted(i for i, c in counts.items() if c > 1) == sorted(in_flight)
    assert all(c <= 2 for c in counts.values())
    assert batches(client)[0] == (dying.pid, in_flight)
    assert {pid for pid, _ in batches(client)[1:]} == {other.pid}
    stats = mq.stats(QUEUE)
    assert stats.ready == stats.reserved == 0


def test_a_pusher_process_started_after_the_crash_sends_the_batch_in_flight(
        tmp_path: Path, redis_url: str, client: redis.Redis, mq: RedisMessageQueue) -> None:
    """The batch in flight is all that is left, reserved by the dead process: a Pusher
    made in another process afterwards sends it once the lease lapses, with no push."""
    with pusher(tmp_path, redis_url, "hang") as dying:
        ids, in_flight = push_until_stuck(dying)
        dying.kill()
    with pusher(tmp_path, redis_url, "normal") as other:
        wait_for(lambda: Counter(received(client)) == Counter(ids + in_flight),
                 "the batch in flight sent again, and the rest")
        other.stop()
    assert batches(client)[0] == (dying.pid, in_flight)
    assert {pid for pid, _ in batches(client)[1:]} == {other.pid}
    stats = mq.stats(QUEUE)
    assert stats.ready == stats.reserved == 0
