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
from matplotlib.patches import Patch

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
    """Adds per second to a durable queue, one bar per measured writer, each named.

    Bars are grouped by what they promise: without an fsync per add (ours with
    ``fsync="never"``/``"interval"``, the raw write floor, the disk-queue peers measured
    in the same run), then with one (ours with ``fsync="always"`` at 1 and 8 threads,
    the raw write+fsync floor, the leader/follower group-commit baseline).
    """
    extra = results.get("store", {}).get("extra", {})
    policies = {p["label"]: p for p in extra.get("fsync", [])}
    if not policies:
        return None
    bars = _fsync_bars(policies, extra)
    colors = {"ours": "tab:blue", "floor": "tab:gray", "peer": "tab:orange"}
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(bars) + 2.4))
    y = list(range(len(bars)))[::-1]
    ax.barh(y, [b[1] for b in bars], color=[colors[b[2]] for b in bars])
    ax.set_yticks(y, [b[0] for b in bars], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("adds per second (log scale)")
    ax.set_title(f"Durable add throughput, same run\n{_subtitle(results)}")
    handles = [Patch(color=c) for c in colors.values()]
    ax.legend(handles, ["unidist_queue FileStore", "baseline: raw writes of the same records, or the "
                        "simpler leader/follower store", "peer library, same bodies"], fontsize=7,
              loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)
    return _save(fig, directory, "store_fsync.png")


def _fsync_bars(policies: Dict[str, Any], extra: Dict[str, Any]) -> List[Any]:
    """(label, adds per second, kind) for every bar of the fsync chart, top to bottom."""
    bars: List[Any] = [
        ('ours, fsync="never"', policies["never"]["ours"], "ours"),
        ('ours, fsync="interval" (1 s)', policies["interval"]["ours"], "ours"),
        ("raw: pickle + frame + os.write, no fsync", policies["never"]["floor"], "floor"),
    ]
    bars += [(p["label"], p["rate"], "peer") for p in extra.get("peers", [])]
    bars += [
        ('ours, fsync="always", 1 thread', policies["always, 1 thread"]["ours"], "ours"),
        ('ours, fsync="always", 8 threads (group commit)', policies["always, 8 threads"]["ours"], "ours"),
        ("raw: os.write + os.fsync per record, 1 thread", policies["always, 1 thread"]["floor"], "floor"),
    ]
    group = extra.get("group_commit") or []
    if group:
        last = group[-1]
        bars.append((f"leader/follower fsync, {last['threads']} threads (baseline)",
                     last["leader_follower"], "floor"))
    return bars


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
