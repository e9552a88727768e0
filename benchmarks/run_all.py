"""Run every benchmark of the library and write ``benchmarks/RESULTS.rst`` (issue 7).

Each ``bench_*.py`` script runs in a fresh process with ``--json``; this script gathers
their rows into one table per area (queue, store, loop, tasks, pusher, asyncio, redis): our figure, the
baseline measured in the same run, and the ratio, with the Python version and the
machine's core count. ``--plot DIR`` also draws PNG charts with matplotlib (the
``bench`` extra): throughput by fsync policy, open time against store size, task
throughput against workers (against ``ThreadPoolExecutor``) and the distribution of the
Loop's timed wake-up lateness.

Run: ``python benchmarks/run_all.py [--quick] [--repeat 9] [--plot DIR] [--out FILE]``.
A full run takes several minutes; ``--quick`` is a smoke test with small sizes. The
redis area starts its own ``redis-server``: where none is installed it is left out (with
a line on stderr), and ``--no-redis`` leaves it out anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))

Row = Dict[str, Any]
Table = List[List[str]]

# The areas, in report order: (title, script, extra arguments).
AREAS = [
    ("queue", "MessageQueue against queue.Queue", "bench_queue.py", []),
    ("store", "FileStore against the raw write floor", "bench_store.py", ["--open-sweep"]),
    ("loop", "Loop against a bare threading.Condition", "bench_loop.py", []),
    ("batches", "Batch methods against single calls", "bench_batches.py", []),
    ("tasks", "TaskHandler against ThreadPoolExecutor", "bench_tasks.py",
     ["--workers", "1", "2", "4", "8", "--with-mq"]),
    ("pusher", "Pusher against queue.Queue", "bench_push.py", []),
    ("asyncio", "asyncio against janus and asyncio.Queue", "bench_async.py", []),
    ("redis", "RedisMessageQueue against redis-py floors, RQ and huey", "bench_redis.py", []),
]


def run_script(script: str, extra: Sequence[str], quick: bool, repeat: int) -> Dict[str, Any]:
    """Run one benchmark script with ``--json`` in a fresh interpreter; return its output."""
    command = [sys.executable, os.path.join(HERE, script), "--json", "--repeat", str(repeat), *extra]
    if quick:
        command.append("--quick")
    print(f"running {script} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    print(f"  {script}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


# -- one table per area -----------------------------------------------------------------------


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _generic(rows: List[Row], ours: str, base_name: Optional[str], base: str) -> Table:
    """Rows with a ``figure`` column, our value, the baseline's name and value, a ratio."""
    table = []
    for r in rows:
        name = r.get(base_name, "") if base_name else ""
        table.append([str(r["figure"]).strip(), _num(r[ours]), str(name), _num(r[base]),
                      _num(r.get("ratio", "")), str(r.get("target", ""))])
    return table


def _tasks(rows: List[Row]) -> Table:
    return [[f"{r['workers']} workers, {r['tasks']:,} trivial tasks, {r.get('tasks wait in', 'private')}",
             _num(r["TaskHandler tasks/s"]), "ThreadPoolExecutor", _num(r["ThreadPoolExecutor tasks/s"]),
             _num(r["ratio"]), ">= 1.5x" if r.get("tasks wait in", "private") == "private" else "(report)"]
            for r in rows]


def _loop(rows: List[Row]) -> Table:
    return [[r["figure"], _num(r["loop"]), "threading.Condition", _num(r["condition"]), _num(r["ratio"]),
             r["target"]] for r in rows]


ADAPTERS: Dict[str, Callable[[List[Row]], Table]] = {
    "queue": lambda rows: _generic(rows, "ours /s", "baseline", "baseline /s"),
    "store": lambda rows: _generic(rows, "ours", "baseline", "baseline value"),
    "loop": _loop,
    "batches": lambda rows: _generic(rows, "ours /s", "baseline", "baseline /s"),
    "tasks": _tasks,
    "pusher": lambda rows: _generic(rows, "ours", "baseline", "baseline figure"),
    "asyncio": lambda rows: _generic(rows, "ours", "baseline", "baseline figure"),
    "redis": lambda rows: _generic(rows, "ours", "baseline", "baseline figure"),
}

HEADER = ["figure", "ours", "baseline", "baseline figure", "ratio", "target"]


def rst_table(header: List[str], body: Table) -> str:
    """A reStructuredText grid table."""
    cells = [header, *body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(char: str) -> str:
        return "+" + "+".join(char * (w + 2) for w in widths) + "+"

    def row(values: List[str]) -> str:
        return "|" + "|".join(f" {v.ljust(w)} " for v, w in zip(values, widths, strict=True)) + "|"

    out = [line("-"), row(header), line("=")]
    for values in body:
        out += [row(values), line("-")]
    return "\n".join(out)


def _commit() -> str:
    """The commit the benchmarks ran at (``+ changes`` when the tree differed from it)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    # the code measured: the package and the benchmark scripts (not this run's outputs)
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "../unidist_queue", "*.py")
    return head + (" + uncommitted changes" if dirty else "")


def _machine(env: Dict[str, Any]) -> str:
    """The processor model (from /proc/cpuinfo where there is one), cores, OS."""
    model = platform.processor() or env["machine"]
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    return f"{model} ({env['machine']}), {env['cores']} cores, {platform.system()} {platform.release()}"


def write_report(path: str, results: Dict[str, Dict[str, Any]], plots: List[str], quick: bool) -> None:
    """Write RESULTS.rst: the environment, then one table per area with its notes."""
    env = next(iter(results.values()))["environment"]
    heading = "unidist_queue benchmark report"
    lines = [
        "=" * len(heading),
        heading,
        "=" * len(heading),
        "",
        f"Made by ``python benchmarks/run_all.py`` at commit ``{_commit()}`` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, with Python {env['python']} "
        f"({env['implementation']}) on {_machine(env)}.",
        "Each figure is the median of interleaved repetitions, ours and the baseline in the same run;",
        "quote the ratios, not the absolute numbers (the machine is shared and noisy).",
    ]
    if quick:
        lines += ["", ".. warning:: a ``--quick`` run: small sizes and few repetitions."]
    for area, title, _, _ in AREAS:
        if area not in results:
            continue
        data = results[area]
        lines += ["", title, "-" * len(title), "", f"*{data['title']}*", "",
                  rst_table(HEADER, ADAPTERS[area](data["rows"])), ""]
        lines += [f"| {note}" for note in data.get("notes", [])]
    if plots:
        lines += ["", "Charts", "------", ""]
        for png in plots:
            lines += [f".. image:: {png}", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines).rstrip() + "\n")


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes and few repetitions (smoke test)")
    p.add_argument("--repeat", type=int, default=9, help="repetitions per figure (median reported)")
    p.add_argument("--plot", metavar="DIR", help="also write PNG charts into DIR (needs matplotlib)")
    p.add_argument("--out", default=os.path.join(HERE, "RESULTS.rst"), help="the report to write")
    p.add_argument("--only", nargs="+", choices=[a[0] for a in AREAS], help="run only these areas")
    p.add_argument("--no-redis", action="store_true",
                   help="leave out the redis area (it starts a redis-server)")
    args = p.parse_args(argv)
    results: Dict[str, Dict[str, Any]] = {}
    for area, _, script, extra in AREAS:
        if args.only is not None and area not in args.only:
            continue
        if area == "redis" and (args.no_redis or shutil.which("redis-server") is None):
            print("leaving out redis: " + ("--no-redis" if args.no_redis else "no redis-server installed"),
                  file=sys.stderr)
            continue
        results[area] = run_script(script, extra, args.quick, args.repeat)
    plots: List[str] = []
    if args.plot:
        from _plots import draw_all

        os.makedirs(args.plot, exist_ok=True)
        plots = [os.path.relpath(png, os.path.dirname(os.path.abspath(args.out)))
                 for png in draw_all(results, args.plot)]
    write_report(args.out, results, plots, args.quick)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
