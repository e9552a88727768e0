"""Helpers of the cross-process and server-level Redis tests (``from procs_helpers import ...``).

:class:`Child` runs a small Python script in a real child process (``python -c``, never a
fork), with this checkout on its ``PYTHONPATH``. The script talks to the parent through
lines: it prints flushed lines on stdout (read by a thread, so every read has a
deadline) and reads lines on stdin. A child that hangs is killed by :meth:`Child.close`.

Every wait in these tests is bounded by :data:`WAIT` (generous: never reached when all
is well); no assertion depends on how long something took.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Optional, Sequence

import pytest
from conftest import child_env

WAIT = 30.0  # seconds: the bound of every wait

# prepended to every child script: a child that hangs dumps its stacks and exits
PRELUDE = """\
import faulthandler, sys
faulthandler.dump_traceback_later(90, exit=True)
from unidist_queue.redisq import RedisMessageQueue
"""


class Child:
    """A child Python process running ``script`` (after :data:`PRELUDE`) with ``args``.

    ``line()`` returns its next stdout line (fails the test if none comes within
    :data:`WAIT` or the child ends); ``send()`` writes a line to its stdin; ``kill()``
    SIGKILLs it; ``finish()`` waits for a clean exit. A context manager: leaving it
    kills the child if it still runs and joins the reader thread. ``paths`` go on the
    child's ``PYTHONPATH`` after this checkout (a folder of modules it must import).
    """

    def __init__(self, tmp: Path, script: str, *args: object, paths: Sequence[str] = ()) -> None:
        self.stderr_path = tmp / f"child-{time.monotonic_ns()}.stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", PRELUDE + script, *map(str, args)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=child_env(*paths),
                cwd=str(tmp),
            )
        assert self.proc.stdout is not None
        self._lines: queue.Queue[Optional[str]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,),
                                        name="child-stdout")
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._lines.put(raw.decode().rstrip("\n"))
        self._lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def line(self) -> str:
        """The child's next stdout line."""
        try:
            line = self._lines.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail(f"no line from the child within {WAIT} s; stderr:\n{self.stderr()}")
        if line is None:
            self._lines.put(None)
            status = self.proc.wait(timeout=WAIT)
            pytest.fail(f"the child ended (status {status}); stderr:\n{self.stderr()}")
        return line

    def expect(self, word: str) -> List[str]:
        """The fields after ``word`` of the child's next line, which must start with it."""
        fields = self.line().split()
        assert fields and fields[0] == word, f"expected {word!r}, got {fields}; stderr:\n{self.stderr()}"
        return fields[1:]

    def remaining(self) -> List[str]:
        """Every line the child printed and :meth:`line` did not return yet; the child must
        have ended (the lines a killed child printed before it died)."""
        assert self.proc.poll() is not None
        self._reader.join(WAIT)
        lines = []
        while (line := self._lines.get(timeout=WAIT)) is not None:
            lines.append(line)
        self._lines.put(None)
        return lines

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL the child and reap it."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=WAIT) == -signal.SIGKILL

    def finish(self) -> None:
        """Wait for the child to exit on its own; it must exit with status 0."""
        status = self.proc.wait(timeout=WAIT)
        assert status == 0, f"the child exited with {status}; stderr:\n{self.stderr()}"

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=WAIT)
        self._reader.join(WAIT)
        assert not self._reader.is_alive()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @classmethod
    def ready(cls, tmp: Path, script: str, *args: object, paths: Sequence[str] = ()) -> Child:
        """A new child, once it printed ``ready`` (killed if it does not)."""
        child = cls(tmp, script, *args, paths=paths)
        try:
            child.expect("ready")
        except BaseException:
            child.close()
            raise
        return child

    def stop(self) -> None:
        """Send ``stop``; the child must answer ``stopped`` and exit with status 0."""
        self.send("stop")
        self.expect("stopped")
        self.finish()


TASK_WORKER = r"""
from unidist_queue import TaskHandler
url, ns, lease, workers = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
with RedisMessageQueue(url, namespace=ns, session_lease=lease) as mq:
    th = TaskHandler(max_workers=workers, mq=mq)
    print("ready", flush=True)
    sys.stdin.readline()  # "stop" (or SIGKILLed while waiting here)
    th.shutdown(wait=True, timeout=30)
print("stopped", flush=True)
"""
"""A worker-only process: ``TaskHandler(mq=RedisMessageQueue(url, namespace=ns,
session_lease=lease), max_workers=workers)`` until told ``stop`` (see :func:`task_worker`)."""


def task_worker(tmp: Path, url: str, workers: int, *, namespace: str = "uq", lease: float = 60.0,
                paths: Sequence[str] = ()) -> Child:
    """A child running :data:`TASK_WORKER`, once ready; :meth:`Child.stop` shuts it down
    (waiting for its tasks). ``paths``: where the tasks' modules are."""
    return Child.ready(tmp, TASK_WORKER, url, namespace, lease, workers, paths=paths)


def wait_for(predicate: Callable[[], Any], what: str, wait: float = WAIT) -> Any:
    """Poll ``predicate`` (every 20 ms) until it returns a true value; return that value.
    Fails the test naming ``what`` if it does not within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {wait} s")
        time.sleep(0.02)


def info(client: Any, section: str) -> Dict[str, Any]:
    """``INFO section`` of a raw redis-py client."""
    return dict(client.info(section))


def wait_subscribed(client: Any, n: int = 1) -> None:
    """Wait until at least ``n`` pub/sub subscriptions (channels or patterns) exist on the
    server: a blocked caller's doorbell is listening."""
    def subscribed() -> bool:
        channels = client.pubsub_channels()
        numsub = sum(int(c) for _, c in client.pubsub_numsub(*channels)) if channels else 0
        return numsub + int(client.pubsub_numpat()) >= n

    wait_for(subscribed, f"{n} pub/sub subscription(s)")
