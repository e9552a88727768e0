"""Shared benchmark harness: interleaved repetitions, medians, a table and ``--json``.

Every benchmark script measures ours and a standard baseline in the same run. Each
*case* is a callable returning a figure (a rate or a time); :func:`run_cases` calls all
cases once per repetition, in turn (interleaved), so a noisy neighbour hits both sides
alike, and reports the median of the repetitions. Ratios, not absolute numbers, are the
figures to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

Case = Tuple[str, Callable[[], float]]


def body(i: int) -> Dict[str, Any]:
    """A small event, about 150 bytes pickled."""
    return {"user": i, "event": "click", "data": "x" * 100}


class Scratch:
    """Fresh directories under one temporary root (its name starts with ``prefix``); the
    caller removes ``root`` at exit."""

    def __init__(self, prefix: str) -> None:
        self.root = tempfile.mkdtemp(prefix=prefix)
        self.n = 0

    def new(self) -> str:
        self.n += 1
        return os.path.join(self.root, f"d{self.n}")

    def done(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--repeat", type=int, default=9, help="repetitions (median reported)")
    p.add_argument("--json", nargs="?", const=True, default=False, metavar="PATH",
                   help="print JSON instead of a table; with PATH, write the JSON there and print the table")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for smoke tests")
    return p


def run_cases(cases: Sequence[Case], repeat: int) -> Dict[str, float]:
    """Run every case ``repeat`` times, interleaved; return the median figure of each."""
    samples: Dict[str, List[float]] = {name: [] for name, _ in cases}
    for _ in range(repeat):
        for name, fn in cases:
            samples[name].append(fn())
    return {name: statistics.median(values) for name, values in samples.items()}


def environment() -> Dict[str, Any]:
    """The facts printed with every table."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
    }


def report(
    title: str,
    rows: Sequence[Dict[str, Any]],
    as_json: Union[bool, str],
    notes: Optional[Sequence[str]] = None,
    extra: Optional[Dict[str, Any]] = None,
) -> None:
    """Print ``rows`` (dicts with the same keys) as a table, or as JSON with the environment.

    ``as_json``: True prints JSON instead of the table; a path (``--json PATH``) writes
    the JSON to that file and prints the table. ``extra``: more data for the JSON output
    only (raw samples, sweeps), for plots.
    """
    env = environment()
    if as_json:
        data = {"title": title, "environment": env, "rows": list(rows),
                "notes": list(notes or []), "extra": dict(extra or {})}
        if as_json is True or as_json == "-":
            json.dump(data, sys.stdout, indent=2)
            sys.stdout.write("\n")
            return
        with open(str(as_json), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
    print(f"{title}  (Python {env['python']}, {env['cores']} cores)")
    if rows:
        keys = list(rows[0])
        cells = [[_fmt(row[k]) for k in keys] for row in rows]
        widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
        print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
        print("  ".join("-" * w for w in widths))
        for c in cells:
            print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))
    for note in notes or []:
        print(note)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)
