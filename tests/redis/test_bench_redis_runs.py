"""``benchmarks/bench_redis.py --quick --repeat 1`` runs and prints its table.

A smoke test of the benchmark, not a measurement: it starts its own private server (so
it needs ``redis-server``: skipped without it, a failure under ``CI=true``), measures
every row once with small sizes, prints the table and writes the JSON. RQ and huey are
optional there (the ``bench`` extra): a missing peer reads ``None``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from redisserver import require_server

import unidist_queue

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_redis.py"
TARGETS = [">= 0.6x", ">= 0.8x", ">= 15x (goal 30x)", ">= 2x"]


def test_quick_run_prints_the_table_with_every_target(tmp_path: Path) -> None:
    require_server()
    if not hasattr(unidist_queue, "RedisMessageQueue"):
        pytest.skip("unidist_queue.RedisMessageQueue is not on this branch yet (the benchmark measures it)")
    out = tmp_path / "bench_redis.json"
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--repeat", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("bench_redis: median of 1 interleaved repetitions  (Python ")
    assert lines[1].split() == ["figure", "ours", "baseline", "baseline", "figure", "ratio", "target"]
    assert set(lines[2]) == {"-", " "}
    for target in TARGETS:
        assert any(target in line for line in lines[3:]), f"no row with target {target}"
    data = json.loads(out.read_text(encoding="utf-8"))
    targeted = [r for r in data["rows"] if r["target"] in TARGETS]
    assert [r["target"] for r in targeted] == TARGETS
    for r in targeted:  # our figures and their ratios were measured
        assert r["ours"] > 0 and r["baseline figure"] > 0, r
        assert r["ratio"] == pytest.approx(r["ours"] / r["baseline figure"]), r
