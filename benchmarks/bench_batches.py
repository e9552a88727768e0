"""Batch methods against the same work done one message at a time, in the same run.

Figures (issue 12), per message:

* ``add_many`` of 100 vs 100 ``add`` calls, in memory (target >= 3x; measured twice:
  with the messages piling up, 100,000 per repetition, and with a consumer that keeps
  the queue short) and on a
  ``FileStore`` with ``fsync="always"`` (target >= 30x: one archive write and one fsync
  per batch instead of per message);
* ``reserve_many`` + ``ack_many`` of 100 vs 100 ``reserve`` + ``ack``, in memory
  (target >= 3x).

Run: ``python benchmarks/bench_batches.py [--repeat 9] [--json] [--quick]``.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import Scratch, body, parser, report, run_cases

from unidist_queue import FileStore, MessageQueue

BATCH = 100


def adds(mq: MessageQueue, rounds: int, batched: bool) -> float:
    """Messages per second added in ``rounds`` batches of ``BATCH`` (or one by one)."""
    bodies = [body(i) for i in range(BATCH)]
    add, add_many = mq.add, mq.add_many
    t0 = time.perf_counter()
    if batched:
        for _ in range(rounds):
            add_many("q", bodies)
    else:
        for _ in range(rounds):
            for b in bodies:
                add("q", b)
    return rounds * BATCH / (time.perf_counter() - t0)


def in_memory_adds(rounds: int, batched: bool) -> float:
    with MessageQueue() as mq:
        mq.declare("q")
        return adds(mq, rounds, batched)


def steady_adds(rounds: int, batched: bool) -> float:
    """As :func:`in_memory_adds`, but a consumer keeps the queue short: it is cleared after
    every round, outside the timed part (the messages do not pile up for the collector)."""
    bodies = [body(i) for i in range(BATCH)]
    with MessageQueue() as mq:
        mq.declare("q")
        add, add_many = mq.add, mq.add_many
        spent = 0.0
        for _ in range(rounds):
            t0 = time.perf_counter()
            if batched:
                add_many("q", bodies)
            else:
                for b in bodies:
                    add("q", b)
            spent += time.perf_counter() - t0
            mq.clear("q")
        return rounds * BATCH / spent


def durable_adds(scratch: Scratch, rounds: int, batched: bool) -> float:
    path = scratch.new()
    try:
        with MessageQueue(FileStore(path, fsync="always", compact_every=None)) as mq:
            mq.declare("q")
            return adds(mq, rounds, batched)
    finally:
        scratch.done(path)


def reserve_ack(rounds: int, batched: bool) -> float:
    """Messages per second reserved and acked, in batches of ``BATCH`` (or one by one)."""
    with MessageQueue() as mq:
        mq.add_many("q", range(rounds * BATCH))
        reserve, ack, reserve_many, ack_many = mq.reserve, mq.ack, mq.reserve_many, mq.ack_many
        t0 = time.perf_counter()
        if batched:
            for _ in range(rounds):
                ack_many(reserve_many("q", BATCH))
        else:
            for _ in range(rounds * BATCH):
                ack(reserve("q"))
        return rounds * BATCH / (time.perf_counter() - t0)


def _row(figure: str, ours: float, baseline: str, base: float, target: str) -> Dict[str, Any]:
    return {"figure": figure, "ours /s": ours, "baseline": baseline, "baseline /s": base,
            "ratio": ours / base, "target": target}


def main(argv: List[str]) -> None:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    rounds = 100 if args.quick else 1000
    sync_rounds = 2 if args.quick else 10
    scratch = Scratch("bench_batches.")
    try:
        r = run_cases([
            ("add_many", lambda: in_memory_adds(rounds, True)),
            ("add", lambda: in_memory_adds(rounds, False)),
            ("steady add_many", lambda: steady_adds(rounds, True)),
            ("steady add", lambda: steady_adds(rounds, False)),
            ("durable add_many", lambda: durable_adds(scratch, sync_rounds * 10, True)),
            ("durable add", lambda: durable_adds(scratch, sync_rounds, False)),
            ("reserve_many+ack_many", lambda: reserve_ack(rounds, True)),
            ("reserve+ack", lambda: reserve_ack(rounds, False)),
        ], args.repeat)
    finally:
        shutil.rmtree(scratch.root, ignore_errors=True)
    rows = [
        _row(f"add_many of {BATCH}, in memory (msgs/s)", r["add_many"], f"{BATCH} add calls", r["add"],
             ">= 3x"),
        _row(f"add_many of {BATCH}, in memory, queue kept short", r["steady add_many"], f"{BATCH} add calls",
             r["steady add"], ">= 3x"),
        _row(f'add_many of {BATCH}, FileStore fsync="always"', r["durable add_many"], f"{BATCH} add calls",
             r["durable add"], ">= 30x"),
        _row(f"reserve_many + ack_many of {BATCH}, in memory", r["reserve_many+ack_many"],
             "reserve + ack each", r["reserve+ack"], ">= 3x"),
    ]
    report(f"bench_batches: median of {args.repeat} interleaved repetitions", rows, args.json)


if __name__ == "__main__":
    main(sys.argv[1:])
