"""Loop latency against a bare ``threading.Condition``, in the same run (issue 4).

Figures:

* **ring latency**: from ``trigger()`` to the start of the processor (the loop thread
  parked on its Condition each time), against a bare Condition: a thread parked in
  ``wait()`` and the time from ``notify()`` to its wake-up. Each repetition takes the
  median of ``--samples`` rings; the two cases are interleaved, and the table shows the
  median of ``--repeat`` repetitions. Target: ratio at most 2.
* **timed wake-ups**: a processor asks to run again 20 ms after each call
  (``clock=time.monotonic``, ``min_delay=0``), ``--wakeups`` times; lateness is the
  start of each call minus the time it asked for. Baseline: a bare ``Condition.wait``
  with the same deadline loop. Targets: p99 at most 2 ms, minimum never below 0.

Run: ``python benchmarks/bench_loop.py [--repeat 9] [--samples 200] [--wakeups 500]
[--json] [--quick]``.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import parser, report, run_cases

from unidist_queue import Loop

WAIT = 60.0
PERIOD = 0.020


# -- ring latency ---------------------------------------------------------------------------


def ring_latency_loop(samples: int) -> float:
    """Median seconds from ``trigger()`` to the processor's first line."""
    woke: List[float] = []
    with Loop(lambda: woke.append(time.perf_counter()), name="bench-ring") as loop:
        lat = []
        for _ in range(samples):
            assert loop.wait_quiet(WAIT)  # the thread is parked on its Condition
            t0 = time.perf_counter()
            loop.trigger()
            assert loop.wait_quiet(WAIT)
            lat.append(woke[-1] - t0)
    return statistics.median(lat)


def ring_latency_condition(samples: int) -> float:
    """Median seconds from ``notify()`` to the wake-up of a thread parked in ``wait()``."""
    mutex = threading.Lock()
    bell = threading.Condition(mutex)  # notified by the main thread; the waiter waits
    parked = threading.Condition(mutex)  # notified by the waiter when parked or done
    state: Dict[str, Any] = {"ring": False, "stop": False, "wakes": 0, "woke": 0.0}

    def waiter() -> None:
        with mutex:
            while True:
                while not state["ring"] and not state["stop"]:
                    bell.wait()
                state["woke"] = time.perf_counter()
                state["ring"] = False
                state["wakes"] += 1
                parked.notify()  # it parks again as soon as it waits, releasing the mutex
                if state["stop"]:
                    return

    thread = threading.Thread(target=waiter, name="bench-condition")
    thread.start()
    lat: List[float] = []
    for i in range(samples):
        t0 = time.perf_counter()
        with mutex:
            state["ring"] = True
            bell.notify()
        with mutex:
            assert parked.wait_for(lambda i=i: state["wakes"] > i, WAIT)  # type: ignore[misc]
        lat.append(state["woke"] - t0)
    with mutex:
        state["stop"] = True
        bell.notify()
    thread.join(WAIT)
    return statistics.median(lat)


# -- timed wake-ups -------------------------------------------------------------------------


def lateness_loop(wakeups: int) -> List[float]:
    """Seconds late of each of ``wakeups`` calls asked for ``PERIOD`` after the last."""
    late: List[float] = []
    done = threading.Event()
    due: List[Optional[float]] = [None]

    def processor() -> Optional[float]:
        now = time.monotonic()
        if due[0] is not None:
            late.append(now - due[0])
        if len(late) >= wakeups:
            done.set()
            return None
        due[0] = now + PERIOD
        return due[0]

    with Loop(processor, min_delay=0.0, clock=time.monotonic, name="bench-timer") as loop:
        loop.trigger()
        assert done.wait(WAIT + wakeups * PERIOD)
    return late


def lateness_condition(wakeups: int) -> List[float]:
    """The same with a bare ``Condition.wait`` loop on a monotonic deadline."""
    cond = threading.Condition()
    late: List[float] = []
    with cond:
        for _ in range(wakeups):
            due = time.monotonic() + PERIOD
            while (left := due - time.monotonic()) > 0:
                cond.wait(left)
            late.append(time.monotonic() - due)
    return late


def p99(values: List[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=200, help="rings per repetition")
    p.add_argument("--wakeups", type=int, default=500, help="timed wake-ups of 20 ms")
    args = p.parse_args()
    if args.quick:
        args.samples, args.wakeups, args.repeat = 50, 50, 3

    cases: List[tuple[str, Callable[[], float]]] = [
        ("loop", lambda: ring_latency_loop(args.samples)),
        ("condition", lambda: ring_latency_condition(args.samples)),
    ]
    ring = run_cases(cases, args.repeat)
    ours, base = lateness_loop(args.wakeups), lateness_condition(args.wakeups)
    ms, us, med = 1e3, 1e6, statistics.median
    ratio = ring["loop"] / ring["condition"]
    rows = [
        {"figure": "ring latency, median (us)", "loop": ring["loop"] * us,
         "condition": ring["condition"] * us, "ratio": ratio, "target": "ratio <= 2",
         "ok": ratio <= 2.0},
        {"figure": f"lateness median, {args.wakeups} x 20 ms (ms)", "loop": med(ours) * ms,
         "condition": med(base) * ms, "ratio": med(ours) / med(base), "target": "-", "ok": True},
        {"figure": "lateness p99 (ms)", "loop": p99(ours) * ms, "condition": p99(base) * ms,
         "ratio": p99(ours) / p99(base), "target": "loop <= 2 ms", "ok": p99(ours) <= 0.002},
        {"figure": "lateness min (ms)", "loop": min(ours) * ms, "condition": min(base) * ms,
         "ratio": "-", "target": "loop >= 0", "ok": min(ours) >= 0},
    ]
    notes = [f"ring latency: median of {args.repeat} repetitions of the median of "
             f"{args.samples} rings, interleaved; lateness: {args.wakeups} wake-ups each, one run."]
    extra = {"lateness_ms": {"loop": [x * ms for x in ours], "condition": [x * ms for x in base]}}
    report("Loop vs a bare threading.Condition", rows, args.json, notes, extra)


if __name__ == "__main__":
    main()
