"""TaskHandler over Redis: a worker-only process runs the tasks this process submits,
and their results and exceptions reach this process's futures (DESIGN 12, issue 15
point 5). The worker is a real OS process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import _redis_tasks
import pytest
from conftest import child_env
from helpers import WAIT

from unidist_queue import RedisMessageQueue, SerializationError, TaskHandler

WORKER = """
import os, sys, time
from unidist_queue import RedisMessageQueue, TaskHandler
url, stop = sys.argv[1], sys.argv[2]
with RedisMessageQueue(url) as mq:
    th = TaskHandler(max_workers=2, mq=mq)
    print("ready", flush=True)
    while not os.path.exists(stop):
        time.sleep(0.05)
    th.shutdown(wait=True, timeout=30)
"""


def test_a_worker_process_runs_the_tasks_and_the_outcomes_reach_the_futures(
    tmp_path: Path, redis_url: str
) -> None:
    stop = tmp_path / "stop"
    worker = subprocess.Popen([sys.executable, "-c", WORKER, redis_url, str(stop)],
                              env=child_env(os.path.dirname(__file__)), stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        with RedisMessageQueue(redis_url) as mq:
            th = TaskHandler(max_workers=0, mq=mq)  # submits only: every task runs in the worker
            squares = [th.submit(_redis_tasks.square, n) for n in range(5)]
            failing = th.submit(_redis_tasks.boom, "from the worker")
            outcomes = [f.result(timeout=WAIT) for f in squares]
            assert [value for value, _ in outcomes] == [0, 1, 4, 9, 16]
            assert {pid for _, pid in outcomes} == {worker.pid}
            with pytest.raises(ValueError, match="from the worker"):
                failing.result(timeout=WAIT)
            with pytest.raises(SerializationError):
                th.submit(lambda: 1)  # no name another process can import: refused at submit
            th.shutdown(timeout=WAIT)
    finally:
        stop.touch()
        try:
            worker.wait(timeout=WAIT)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=WAIT)
            if worker.stdout is not None:
                worker.stdout.close()
    assert worker.returncode == 0
