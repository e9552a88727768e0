"""MessageQueue against queue.Queue (and a bare deque under a Lock), in the same run.

Figures (issue 2):

* ``add`` + ``oldest`` per message vs ``queue.Queue`` ``put`` + ``get``, single thread;
  the bare ``deque`` + ``Lock`` floor is reported too;
* the fill-then-drain shape (issue 12): 200,000 adds, then 200,000 ``oldest``, against
  200,000 ``put`` then 200,000 ``get``;
* one producer thread, one consumer thread with blocking ``get``, items per second;
* memory per queued small message, body excluded (tracemalloc; deterministic, so it is
  measured once).

Run: ``python benchmarks/bench_queue.py [--repeat 9] [--json] [--quick]``.
"""

from __future__ import annotations

import collections
import gc
import os
import queue
import sys
import threading
import time
import tracemalloc
from typing import Any, Callable, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import parser, report, run_cases

import unidist_queue


def single_ours(n: int) -> float:
    mq = unidist_queue.MessageQueue()
    mq.declare("q")
    add, oldest = mq.add, mq.oldest
    t0 = time.perf_counter()
    for i in range(n):
        add("q", i)
        oldest("q")
    return n / (time.perf_counter() - t0)


def single_stdlib(n: int) -> float:
    q: queue.Queue[int] = queue.Queue()
    put, get = q.put, q.get
    t0 = time.perf_counter()
    for i in range(n):
        put(i)
        get()
    return n / (time.perf_counter() - t0)


def fill_drain_ours(n: int) -> float:
    """Messages per second: ``n`` adds, then ``n`` oldest (the queue grows to ``n``)."""
    mq = unidist_queue.MessageQueue()
    mq.declare("q")
    add, oldest = mq.add, mq.oldest
    t0 = time.perf_counter()
    for i in range(n):
        add("q", i)
    for _ in range(n):
        oldest("q")
    return n / (time.perf_counter() - t0)


def fill_drain_stdlib(n: int) -> float:
    q: queue.Queue[int] = queue.Queue()
    put, get = q.put, q.get
    t0 = time.perf_counter()
    for i in range(n):
        put(i)
    for _ in range(n):
        get()
    return n / (time.perf_counter() - t0)


def single_bare(n: int) -> float:
    d: collections.deque[int] = collections.deque()
    lock = threading.Lock()
    append, popleft = d.append, d.popleft
    t0 = time.perf_counter()
    for i in range(n):
        with lock:
            append(i)
        with lock:
            popleft()
    return n / (time.perf_counter() - t0)


def _pipe(n: int, put: Callable[[int], Any], get: Callable[[], Any]) -> float:
    """Items per second from one producer thread to one consumer thread."""
    done = threading.Event()

    def consume() -> None:
        for _ in range(n):
            get()
        done.set()

    consumer = threading.Thread(target=consume)
    t0 = time.perf_counter()
    consumer.start()
    for i in range(n):
        put(i)
    done.wait(timeout=600)
    elapsed = time.perf_counter() - t0
    consumer.join(timeout=60)
    return n / elapsed


def threads_ours(n: int) -> float:
    mq = unidist_queue.MessageQueue()
    mq.declare("q")
    return _pipe(n, lambda i: mq.add("q", i), lambda: mq.get("q"))


def threads_stdlib(n: int) -> float:
    q: queue.Queue[int] = queue.Queue()
    return _pipe(n, q.put, q.get)


def memory_per_message(n: int) -> float:
    """Bytes traced per queued message, the (shared) body excluded."""
    mq = unidist_queue.MessageQueue()
    body = object()
    mq.add("q", body)  # create the queue and its structures first
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(n):
        mq.add("q", body)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n


def main(argv: List[str]) -> None:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    n_single = 20_000 if args.quick else 200_000
    n_threads = 20_000 if args.quick else 100_000
    single = run_cases(
        [("ours", lambda: single_ours(n_single)),
         ("queue.Queue", lambda: single_stdlib(n_single)),
         ("deque+Lock", lambda: single_bare(n_single))],
        args.repeat,
    )
    filled = run_cases(
        [("ours", lambda: fill_drain_ours(n_single)), ("queue.Queue", lambda: fill_drain_stdlib(n_single))],
        args.repeat,
    )
    threaded = run_cases(
        [("ours", lambda: threads_ours(n_threads)), ("queue.Queue", lambda: threads_stdlib(n_threads))],
        args.repeat,
    )
    mem = memory_per_message(100_000)
    base = single["queue.Queue"]
    rows: List[Dict[str, Any]] = [
        {"figure": "add+oldest (1 thread)", "ours /s": single["ours"], "baseline": "queue.Queue put+get",
         "baseline /s": base, "ratio": single["ours"] / base, "target": ">= 1.3x"},
        {"figure": f"add {n_single:,} then oldest {n_single:,}", "ours /s": filled["ours"],
         "baseline": "queue.Queue put then get", "baseline /s": filled["queue.Queue"],
         "ratio": filled["ours"] / filled["queue.Queue"], "target": ">= 1.3x"},
        {"figure": "floor: deque+Lock (1 thread)", "ours /s": single["deque+Lock"],
         "baseline": "queue.Queue put+get", "baseline /s": base,
         "ratio": single["deque+Lock"] / base, "target": "(reference)"},
        {"figure": "producer -> blocking get", "ours /s": threaded["ours"], "baseline": "queue.Queue",
         "baseline /s": threaded["queue.Queue"], "ratio": threaded["ours"] / threaded["queue.Queue"],
         "target": ">= 1.0x"},
        {"figure": "bytes per queued message", "ours /s": mem, "baseline": "(body excluded)",
         "baseline /s": 130.0, "ratio": mem / 130.0, "target": "<= 130 B"},
    ]
    report(f"bench_queue: median of {args.repeat} interleaved repetitions", rows, args.json)


if __name__ == "__main__":
    main(sys.argv[1:])
