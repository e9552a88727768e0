"""TaskHandler against ThreadPoolExecutor with the same number of workers, in the same run.

Figure (issue 5): submit N trivial tasks (``N=20,000``), then wait for every result;
tasks per second for 2 and 8 workers, ours and ``concurrent.futures.ThreadPoolExecutor``
interleaved in each repetition, median of ``--repeat`` (9) repetitions. Pools are
created and warmed up (threads started) outside the timed region, and shut down after
it. Target: ratio >= 1.0 (stretch 2.0).

Run: ``python benchmarks/bench_tasks.py [--repeat 9] [--workers 2 8] [--json] [--quick]``.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Callable, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import parser, report, run_cases

from unidist_queue.tasks import TaskHandler


def trivial() -> None:
    return None


def rate(make: Callable[[], Executor], n: int) -> float:
    """Tasks per second: submit ``n`` trivial tasks and wait for all their results."""
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
    return n / elapsed


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, nargs="+", default=[2, 8], help="pool sizes to measure")
    args = p.parse_args()
    n = 2_000 if args.quick else 20_000
    repeat = 3 if args.quick else args.repeat
    rows: List[Dict[str, Any]] = []
    for workers in args.workers:
        cases = [
            ("ours", lambda w=workers: rate(lambda: TaskHandler(w), n)),
            ("stdlib", lambda w=workers: rate(lambda: ThreadPoolExecutor(w), n)),
        ]
        med = run_cases(cases, repeat)
        rows.append({
            "workers": workers,
            "tasks": n,
            "TaskHandler tasks/s": med["ours"],
            "ThreadPoolExecutor tasks/s": med["stdlib"],
            "ratio": med["ours"] / med["stdlib"],
        })
    report(
        "TaskHandler vs ThreadPoolExecutor: submit N trivial tasks, wait for all",
        rows,
        args.json,
        [f"median of {repeat} interleaved repetitions; ratio = ours / ThreadPoolExecutor (target >= 1.0)"],
    )


if __name__ == "__main__":
    main()
