"""PNG charts for ``run_all.py --plot DIR`` (matplotlib, from the ``bench`` extra).

Each function takes the JSON outputs of the benchmark scripts (by area) and writes one
chart, returning its path, or ``None`` when the data it needs is missing.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import matplotlib

matplotlib.use("Agg")  # no screen: draw to files
import matplotlib.pyplot as plt

Results = Dict[str, Dict[str, Any]]


def _subtitle(results: Results) -> str:
    env = next(iter(results.values()))["environment"]
    return f"Python {env['python']}, {env['cores']} cores"


def _save(fig: Any, directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fsync_throughput(results: Results, directory: str) -> Optional[str]:
    """Adds per second to a durable queue by fsync policy, next to the raw floor."""
    policies = results.get("store", {}).get("extra", {}).get("fsync")
    if not policies:
        return None
    labels = [p["label"] for p in policies]
    ours = [p["ours"] for p in policies]
    floor = [p.get("floor") or 0.0 for p in policies]
    fig, ax = plt.subplots(figsize=(7, 4))
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], ours, width=0.4, label="unidist_queue add")
    ax.bar([i + 0.2 for i in x], floor, width=0.4, label="raw floor (pickle + frame + write [+ fsync])")
    ax.set_xticks(list(x), labels)
    ax.set_yscale("log")
    ax.set_ylabel("adds per second (log scale)")
    ax.set_title(f"Durable add throughput by fsync policy\n{_subtitle(results)}")
    ax.legend(fontsize=8)
    return _save(fig, directory, "store_fsync.png")


def open_time(results: Results, directory: str) -> Optional[str]:
    """Seconds to open a store against its size, next to a plain unpickling loop."""
    sweep = results.get("store", {}).get("extra", {}).get("open_sweep")
    if not sweep:
        return None
    sizes = [s["messages"] for s in sweep]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(sizes, [s["open_s"] for s in sweep], marker="o", label="FileStore open (snapshot + archive)")
    ax.plot(sizes, [s["unpickle_s"] for s in sweep], marker="s", label="unpickle the same records in a loop")
    ax.set_xlabel("messages in the store")
    ax.set_ylabel("seconds")
    ax.set_title(f"Open time against store size\n{_subtitle(results)}")
    ax.legend(fontsize=8)
    return _save(fig, directory, "store_open.png")


def task_throughput(results: Results, directory: str) -> Optional[str]:
    """Tasks per second against the number of workers, ours and ThreadPoolExecutor."""
    rows: List[Dict[str, Any]] = results.get("tasks", {}).get("rows", [])
    if not rows:
        return None
    private = [r for r in rows if r.get("tasks wait in", "private") == "private"]
    through_mq = [r for r in rows if r.get("tasks wait in", "private") != "private"]
    workers = [r["workers"] for r in private]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(workers, [r["TaskHandler tasks/s"] for r in private], marker="o",
            label="TaskHandler (private queues)")
    if through_mq:
        ax.plot([r["workers"] for r in through_mq], [r["TaskHandler tasks/s"] for r in through_mq],
                marker="^", label="TaskHandler(mq=MessageQueue())")
    ax.plot(workers, [r["ThreadPoolExecutor tasks/s"] for r in private], marker="s",
            label="ThreadPoolExecutor")
    ax.set_xscale("log", base=2)
    ax.set_xticks(workers, [str(w) for w in workers])
    ax.set_xlabel("workers")
    ax.set_ylabel("trivial tasks per second")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Task throughput against workers\n{_subtitle(results)}")
    ax.legend(fontsize=8)
    return _save(fig, directory, "tasks_workers.png")


def wakeup_lateness(results: Results, directory: str) -> Optional[str]:
    """Histogram of how late the Loop's timed wake-ups ran, next to a bare Condition."""
    lateness = results.get("loop", {}).get("extra", {}).get("lateness_ms")
    if not lateness:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist([lateness["loop"], lateness["condition"]], bins=40,
            label=["Loop timed wake-up", "bare Condition.wait"], histtype="step")
    ax.set_xlabel("lateness (ms)")
    ax.set_ylabel("wake-ups")
    ax.set_title(f"Timed wake-up lateness (20 ms period)\n{_subtitle(results)}")
    ax.legend(fontsize=8)
    return _save(fig, directory, "loop_lateness.png")


def draw_all(results: Results, directory: str) -> List[str]:
    """Every chart whose data is present; their paths."""
    charts = [fsync_throughput, open_time, task_throughput, wakeup_lateness]
    paths = [chart(results, directory) for chart in charts]
    return [p for p in paths if p is not None]
