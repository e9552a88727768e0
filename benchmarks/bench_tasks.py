"""TaskHandler against ThreadPoolExecutor with the same number of workers, in the same run.

Figure (issue 5): submit N trivial tasks (``N=20,000``), then wait for every result;
tasks per second for 2 and 8 workers, ours and ``concurrent.futures.ThreadPoolExecutor``
interleaved in each repetition, median of ``--repeat`` (9) repetitions. Pools are
created and warmed up (threads started) outside the timed region, and shut down after
it. Target (issue 12): ratio >= 1.5 (goal 2.0) for the private task queues of
``TaskHandler(n)``.

``--with-mq`` adds a row per pool size for ``TaskHandler(n, mq=MessageQueue())``: the
tasks wait in the queues of an in-memory MessageQueue, through the public queue API
(add, reserve_many, ack), measured in the same interleaved repetitions.

Run: ``python benchmarks/bench_tasks.py [--repeat 9] [--workers 2 8] [--with-mq] [--json] [--quick]``.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import parser, report, run_cases

from unidist_queue.queues import MessageQueue
from unidist_queue.tasks import TaskHandler


def trivial() -> None:
    return None


def rate(make: Callable[[], Executor], n: int, after: Optional[Callable[[], None]] = None) -> float:
    """Tasks per second: submit ``n`` trivial tasks and wait for all their results.

    ``after``: called once the pool is shut down (to close what it used).
    """
    pool = make()
    try:
        for f in [pool.submit(trivial) for _ in range(64)]:  # start every thread
            f.result()
        gc.collect()
        submit = pool.submit
        t0 = time.perf_counter()
        futures = [submit(trivial) for _ in range(n)]
        for f in futures:
            f.result()
        elapsed = time.perf_counter() - t0
    finally:
        pool.shutdown(wait=True)
        if after is not None:
            after()
    return n / elapsed


def rate_over_mq(workers: int, n: int) -> float:
    """:func:`rate` of a TaskHandler whose tasks wait in a MessageQueue of its own."""
    mq = MessageQueue()
    return rate(lambda: TaskHandler(workers, mq=mq), n, mq.close)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, nargs="+", default=[2, 8], help="pool sizes to measure")
    p.add_argument("--with-mq", action="store_true", help="add rows for TaskHandler(n, mq=MessageQueue())")
    args = p.parse_args()
    n = 2_000 if args.quick else 20_000
    repeat = 3 if args.quick else args.repeat
    rows: List[Dict[str, Any]] = []
    for workers in args.workers:
        cases = [
            ("ours", lambda w=workers: rate(lambda: TaskHandler(w), n)),
            ("stdlib", lambda w=workers: rate(lambda: ThreadPoolExecutor(w), n)),
        ]
        if args.with_mq:
            cases.append(("mq", lambda w=workers: rate_over_mq(w, n)))
        med = run_cases(cases, repeat)
        kinds = [("private", "ours")] + ([("mq=MessageQueue()", "mq")] if args.with_mq else [])
        for where, key in kinds:
            rows.append({
                "workers": workers,
                "tasks": n,
                "tasks wait in": where,
                "TaskHandler tasks/s": med[key],
                "ThreadPoolExecutor tasks/s": med["stdlib"],
                "ratio": med[key] / med["stdlib"],
            })
    report(
        "TaskHandler vs ThreadPoolExecutor: submit N trivial tasks, wait for all",
        rows,
        args.json,
        [f"median of {repeat} interleaved repetitions; ratio = ours / ThreadPoolExecutor "
         "(target >= 1.5 for the private task queues)"],
    )


if __name__ == "__main__":
    main()
