"""Pusher on a durable queue: events outlive a receiver that is down, a close, and a kill -9.

The kill -9 test runs a real child process (``sys.executable``) that pushes events to a
``FileStore`` while its receiver writes the ids it was sent to a file; the parent kills
it with SIGKILL while a batch is in flight, reopens the store and checks that a new
Pusher delivers every acknowledged event (its ``push`` returned and the child reported
it), and that the only events delivered twice are those of the batch in flight, which
the restart marks with ``attempts == 2``.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, Set

import pytest
from conftest import child_env
from push_helpers import WAIT, Receiver, logged_failures

from unidist_queue import MessageQueue, SerializationError
from unidist_queue.push import Pusher
from unidist_queue.store.file import FileStore


def test_unserializable_event_raises_at_push_and_nothing_is_queued(tmp_path: Path) -> None:
    with MessageQueue(store=FileStore(str(tmp_path / "p"))) as mq:
        receiver = Receiver()
        p = Pusher(receiver, mq=mq, buffer_delay=0)
        with pytest.raises(SerializationError):
            p.push(lambda: None)  # pickle cannot store a lambda
        with pytest.raises(TypeError):  # SerializationError is a TypeError too
            p.push(threading.Lock())
        p.push("fine")
        assert p.flush(timeout=WAIT)
        p.close(timeout=WAIT)
        assert [m.body for m in receiver.messages()] == ["fine"]
    with MessageQueue(store=FileStore(str(tmp_path / "j"), serializer="json")) as mq:
        p = Pusher(receiver, mq=mq, buffer_delay=3600)
        with pytest.raises(SerializationError):
            p.push({1, 2})  # json cannot represent a set exactly
        assert p.stats().pending == 0 and mq.count("push") == 0
        p.close(timeout=WAIT)


def test_receiver_down_at_close_then_a_pusher_on_the_reopened_store_delivers_all(tmp_path: Path) -> None:
    path = str(tmp_path / "store")
    down = Receiver(failures=10**6)
    mq = MessageQueue(store=FileStore(path))
    with logged_failures() as failures:
        p = Pusher(down, mq=mq, queue="events", batch_size=10, buffer_delay=3600,
                   retry_delay=3600, max_retry_delay=3600)  # one attempt: the first full batch
        ids = [p.push({"n": i}) for i in range(25)]
        failures.wait(1)  # the failure is recorded: the receiver is known down
    p.close(timeout=WAIT)
    assert down.attempts == [10]  # no last attempt
    assert p.stats().pending == 25
    mq.close()

    with MessageQueue(store=FileStore(path)) as mq:
        assert mq.count("events") == 25
        up = Receiver()
        p = Pusher(up, mq=mq, queue="events", batch_size=10, buffer_delay=0)
        assert p.flush(timeout=WAIT)
        p.close(timeout=WAIT)
        got = up.messages()
        assert [m.id for m in got] == ids
        assert [m.body for m in got] == [{"n": i} for i in range(25)]
        # the refused first batch was tried once before: its attempts show it
        assert [m.attempts for m in got] == [2] * 10 + [1] * 15
    with MessageQueue(store=FileStore(path)) as mq:
        assert mq.count("events") == 0 and mq.stats("events").reserved == 0  # nothing twice


def test_passed_durable_queue_is_left_open_and_keeps_pushed_events(path: str) -> None:
    down = Receiver(failures=10**6)
    with MessageQueue(store=FileStore(path)) as mq:
        with logged_failures() as failures:
            p = Pusher(down, mq=mq, buffer_delay=0, retry_delay=3600, max_retry_delay=3600)
            p.push("a")
            failures.wait(1)
        p.close(timeout=WAIT)  # the receiver is known down: the event stays
        assert not mq.closed and mq.all("push") == ["a"]
    with MessageQueue(store=FileStore(path)) as mq:
        assert mq.all("push") == ["a"]


CHILD = r"""
import os, sys, threading
from unidist_queue import MessageQueue, Pusher
from unidist_queue.store.file import FileStore

store, delivered = sys.argv[1], sys.argv[2]
out = os.open(delivered, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
never = threading.Event()
batches = 0

def say(line):
    os.write(1, (line + "\n").encode())  # one write: lines of two threads never mix

def send(batch):
    global batches
    batches += 1
    os.write(out, (" ".join(str(m.id) for m in batch) + "\n").encode())
    if batches == 5:  # the fifth batch stays in flight until the kill
        say("in-flight")
        never.wait()

mq = MessageQueue(store=FileStore(store))
pusher = Pusher(send, mq=mq, batch_size=10, buffer_delay=0)
for i in range(400):
    msg_id = pusher.push(i)
    say(f"pushed {msg_id} {i}")
say("all pushed")
never.wait()
"""


def test_kill_9_while_pushing_then_restart_delivers_every_acknowledged_event(tmp_path: Path) -> None:
    store, delivered = str(tmp_path / "store"), str(tmp_path / "delivered.txt")
    env = child_env()
    lines: queue.Queue[str] = queue.Queue()
    with subprocess.Popen([sys.executable, "-c", CHILD, store, delivered], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None and child.stderr is not None
        reader = threading.Thread(target=lambda: [lines.put(line) for line in child.stdout])  # type: ignore[union-attr]
        reader.start()
        pushed: Dict[int, int] = {}  # id -> body, for every push the child reported
        seen: Set[str] = set()
        try:
            while seen != {"in-flight", "all pushed"}:
                try:
                    line = lines.get(timeout=WAIT)
                except queue.Empty:
                    pytest.fail(f"the child said nothing for {WAIT} s: {child.stderr.read()}")
                if line.startswith("pushed "):
                    _, msg_id, body = line.split()
                    pushed[int(msg_id)] = int(body)
                else:
                    seen.add(line.strip())
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=WAIT)
            reader.join(WAIT)
        assert child.returncode == -signal.SIGKILL
    assert sorted(pushed.values()) == list(range(400))

    with open(delivered) as f:
        child_batches = [[int(x) for x in line.split()] for line in f]
    assert len(child_batches) == 5
    in_flight = child_batches[-1]  # sent, never acked: send had not returned
    acked = [i for b in child_batches[:-1] for i in b]

    with MessageQueue(store=FileStore(store)) as mq:
        receiver = Receiver()
        p = Pusher(receiver, mq=mq, batch_size=10, buffer_delay=0)
        assert p.flush(timeout=WAIT)
        p.close(timeout=WAIT)
    again = receiver.messages()
    again_ids = [m.id for m in again]
    assert again_ids == sorted(set(again_ids))  # in order, none twice
    assert again_ids[: len(in_flight)] == in_flight  # the batch in flight goes first
    # every acknowledged push is delivered, by the child or after the restart
    assert set(pushed) <= set(acked) | set(again_ids)
    assert all(pushed[m.id] == m.body for m in again if m.id in pushed)
    # only the batch in flight is delivered twice, and its attempts say so
    assert set(again_ids) & set(acked) == set()
    assert set(again_ids) & set(in_flight) == set(in_flight)
    assert [m.id for m in again if m.attempts > 1] == in_flight
    assert all(m.attempts == 2 for m in again[: len(in_flight)])
