"""Where ``fcntl`` does not exist (Windows), importing the package and everything in memory
works, and a ``FileStore`` that cannot lock its directory is refused at once, creating
nothing (DESIGN section 8).

A child interpreter stands in for such a platform: it sets ``sys.modules["fcntl"] = None``
(so that ``import fcntl`` raises ImportError) before it imports ``unidist_queue``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from unidist_queue import FileStore, MessageQueue

CHILD = textwrap.dedent(
    """
    import sys
    sys.modules["fcntl"] = None                # as on a platform without fcntl
    import os, threading
    import unidist_queue
    from unidist_queue import (
        FileStore, Loop, MessageQueue, Pusher, StoreError, TaskHandler, messagequeue,
    )
    assert "fcntl" not in sys.modules or sys.modules["fcntl"] is None

    with MessageQueue() as mq:
        mq.add("jobs", "a"); mq.add("jobs", "b"); mq.add("jobs", "c")
        assert mq.oldest("jobs") == "a"
        msg = mq.reserve("jobs", timeout=1)
        assert msg.body == "b"
        mq.ack(msg)
        view = mq.view("work")
        view.put("x")
        assert view.get(timeout=1) == "x"
        view.task_done()
        view.join()
        seen = []
        loop = Loop(lambda: seen.extend(mq.all("jobs")), name="consumer")
        loop.start()
        loop.trigger()
        assert loop.wait_quiet(timeout=10)
        loop.stop(timeout=10)
        assert seen == ["c"], seen
    with TaskHandler(max_workers=2) as pool:
        assert pool.submit(pow, 2, 10).result(timeout=10) == 1024
    received = []
    pusher = Pusher(received.extend, buffer_delay=60)
    pusher.push("event")
    assert pusher.flush(timeout=10)
    pusher.close()
    assert [m.body for m in received] == ["event"]
    messagequeue.AddMessage("inbox", 1)
    assert messagequeue.GetMessage_Oldest("inbox") == 1

    with MessageQueue(store=FileStore(sys.argv[2], read_only=True)) as mq:  # reading: no lock
        assert mq.all("q") == [1]
    target = os.path.join(sys.argv[1], "store")
    try:
        FileStore(target)
    except StoreError as exc:
        print("StoreError:", exc)
    else:
        raise SystemExit("FileStore was built without a lock")
    print("left:", sorted(os.listdir(sys.argv[1])))
    print("in memory: ok")
    """
)


def _existing_store(path: Path) -> str:
    """A store made here (this platform has fcntl), for the child to read."""
    store = str(path / "made-here")
    mq = MessageQueue(store=FileStore(store))
    mq.add("q", 1)
    mq.close()
    return store


def test_memory_works_and_filestore_is_refused_without_fcntl(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    store = _existing_store(tmp_path)
    env = dict(os.environ, PYTHONWARNINGS="error")
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(empty), store],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    assert lines[0].startswith("StoreError: cannot open the store directory ")
    assert "no fcntl" in lines[0] and str(empty / "store") in lines[0]
    assert lines[1:] == ["left: []", "in memory: ok"]
    assert child.stderr == ""
    assert os.listdir(empty) == []
