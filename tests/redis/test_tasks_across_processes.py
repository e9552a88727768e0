"""TaskHandler over Redis: a worker-only process runs the tasks this process submits,
and their results and exceptions reach this process's futures (DESIGN 12, issue 15
point 5). The worker is a real OS process."""

from __future__ import annotations

import os
from pathlib import Path

import _redis_tasks
import pytest
from procs_helpers import WAIT, task_worker

from unidist_queue import RedisMessageQueue, SerializationError, TaskHandler

HERE = os.path.dirname(os.path.abspath(__file__))


def test_a_worker_process_runs_the_tasks_and_the_outcomes_reach_the_futures(
    tmp_path: Path, redis_url: str
) -> None:
    with task_worker(tmp_path, redis_url, 2, paths=[HERE]) as worker:
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
        worker.stop()
