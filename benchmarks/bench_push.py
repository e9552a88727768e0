"""Pusher against queue.Queue, in the same run.

Figures (issue 6), each a ratio against a standard-library baseline taken in the same
run, interleaved (see ``_harness.py``):

* ``push`` cost per event vs ``queue.Queue.put``, one thread, with nothing sent while
  timing (``buffer_delay`` and ``batch_size`` larger than the run): in memory, and on a
  durable queue (``FileStore``, ``fsync="interval"``); for reference, the in-memory
  ``MessageQueue.add`` that ``push`` is built on, and ``push`` against it;
* end-to-end events per second from one producer thread to a receiver that just counts,
  with ``batch_size`` 1, 100 and 1000 (``buffer_delay=1.0``, so batches fill up; a final
  ``flush`` sends the tail; timed from the first push until the last event is
  delivered). Baseline: ``queue.Queue`` ``put`` from the producer plus a consumer
  thread doing ``get`` one item at a time and counting, timed the same way. One more
  row, for reference: durable with ``batch_size`` 100.

Run: ``python benchmarks/bench_push.py [--repeat 9] [--json] [--quick]``.
"""

from __future__ import annotations

import gc
import os
import queue
import shutil
import sys
import threading
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import Scratch, body, parser, report, run_cases

from unidist_queue import Message, MessageQueue, Pusher
from unidist_queue.store.file import FileStore

NEVER = 10**9  # a buffer_delay no run reaches


def mq_for(scratch: Optional[Scratch]) -> MessageQueue:
    if scratch is None:
        return MessageQueue()
    return MessageQueue(store=FileStore(scratch.new(), fsync="interval"))


def close_mq(mq: MessageQueue) -> None:
    path = getattr(mq.store, "path", None)
    mq.close()
    if isinstance(path, str):
        shutil.rmtree(path, ignore_errors=True)


# -- push cost per event -----------------------------------------------------------------------


def push_cost(n: int, scratch: Optional[Scratch]) -> float:
    """Nanoseconds per ``push`` (nothing is sent while timing)."""
    events = [body(i) for i in range(n)]
    mq = mq_for(scratch)
    p = Pusher(lambda batch: None, mq=mq, batch_size=n + 1, buffer_delay=NEVER)
    push = p.push
    gc.collect()
    t0 = time.perf_counter()
    for e in events:
        push(e)
    elapsed = time.perf_counter() - t0
    p.close(timeout=0)  # after the timing: what it still sends costs nothing measured
    close_mq(mq)
    return elapsed / n * 1e9


def add_cost(n: int) -> float:
    """Nanoseconds per ``MessageQueue.add`` to an in-memory queue: push's floor."""
    events = [body(i) for i in range(n)]
    mq = MessageQueue()
    add = mq.add
    gc.collect()
    t0 = time.perf_counter()
    for e in events:
        add("push", e)
    elapsed = time.perf_counter() - t0
    mq.close()
    return elapsed / n * 1e9


def put_cost(n: int) -> float:
    """Nanoseconds per ``queue.Queue.put``."""
    events = [body(i) for i in range(n)]
    q: queue.Queue[Any] = queue.Queue()
    put = q.put
    gc.collect()
    t0 = time.perf_counter()
    for e in events:
        put(e)
    return (time.perf_counter() - t0) / n * 1e9


# -- end to end --------------------------------------------------------------------------------


def pusher_rate(n: int, batch_size: int, scratch: Optional[Scratch]) -> float:
    """Events per second from push to a counting receiver."""
    events = [body(i) for i in range(n)]
    got = [0]

    def count(batch: List[Message]) -> None:
        got[0] += len(batch)

    mq = mq_for(scratch)
    p = Pusher(count, mq=mq, batch_size=batch_size, buffer_delay=1.0)
    push = p.push
    t0 = time.perf_counter()
    for e in events:
        push(e)
    if not p.flush(timeout=600):
        raise RuntimeError("flush timed out")
    elapsed = time.perf_counter() - t0
    p.close(timeout=60)
    close_mq(mq)
    assert got[0] == n, got
    return n / elapsed


def queue_rate(n: int) -> float:
    """Events per second through queue.Queue to a consumer thread that counts."""
    events = [body(i) for i in range(n)]
    q: queue.Queue[Any] = queue.Queue()
    done = threading.Event()

    def consume() -> None:
        get, seen = q.get, 0
        while seen < n:
            get()
            seen += 1
        done.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    put = q.put
    t0 = time.perf_counter()
    for e in events:
        put(e)
    if not done.wait(timeout=600):
        raise RuntimeError("consumer timed out")
    elapsed = time.perf_counter() - t0
    consumer.join(timeout=60)
    return n / elapsed


def main(argv: List[str]) -> None:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    scratch = Scratch("bench_push.")
    try:
        rows = measure(scratch, args.quick, args.repeat)
    finally:
        shutil.rmtree(scratch.root, ignore_errors=True)
    notes = [
        "push cost: ns per call, lower is better; ratio = ours / baseline (1.0 = as cheap as put).",
        "end to end: events/s, higher is better; ratio = ours / baseline. Each batch is reserved",
        "  with reserve_many and acked with ack_many (a durable queue writes one record batch each).",
    ]
    report(f"bench_push: median of {args.repeat} interleaved repetitions", rows, args.json, notes)


def measure(scratch: Scratch, quick: bool, repeat: int) -> List[Dict[str, Any]]:
    n_push = 20_000 if quick else 200_000
    n_durable = 5_000 if quick else 50_000
    n_e2e = 10_000 if quick else 100_000
    n_one = 2_000 if quick else 20_000  # batch_size 1: a pass per event
    cost = run_cases([
        ("put", lambda: put_cost(n_push)),
        ("push", lambda: push_cost(n_push, None)),
        ("add", lambda: add_cost(n_push)),
        ("put durable-sized", lambda: put_cost(n_durable)),
        ("push durable", lambda: push_cost(n_durable, scratch)),
    ], repeat)
    rate = run_cases([
        ("queue", lambda: queue_rate(n_e2e)),
        ("b1", lambda: pusher_rate(n_one, 1, None)),
        ("b100", lambda: pusher_rate(n_e2e, 100, None)),
        ("b1000", lambda: pusher_rate(n_e2e, 1000, None)),
        ("durable b100", lambda: pusher_rate(n_durable, 100, scratch)),
    ], repeat)

    def row(figure: str, ours: float, baseline: str, base: float) -> Dict[str, Any]:
        return {"figure": figure, "ours": ours, "baseline": baseline, "baseline figure": base,
                "ratio": ours / base}

    return [
        row("push, in memory (ns/event)", cost["push"], "queue.Queue.put (ns)", cost["put"]),
        row("  floor: MessageQueue.add (ns/event)", cost["add"], "queue.Queue.put (ns)", cost["put"]),
        row("  push over its add (Pusher's own cost)", cost["push"], "MessageQueue.add (ns)", cost["add"]),
        row('push, durable fsync="interval" (ns/event)', cost["push durable"], "queue.Queue.put (ns)",
            cost["put durable-sized"]),
        row("end to end, batch_size 1 (events/s)", rate["b1"], "Queue put + consumer get", rate["queue"]),
        row("end to end, batch_size 100 (events/s)", rate["b100"], "Queue put + consumer get", rate["queue"]),
        row("end to end, batch_size 1000 (events/s)", rate["b1000"], "Queue put + consumer get",
            rate["queue"]),
        row("end to end, durable, batch_size 100", rate["durable b100"], "Queue put + consumer get",
            rate["queue"]),
    ]


if __name__ == "__main__":
    main(sys.argv[1:])
