"""``python -m unidist_queue demo``: the whole library at work in a few seconds.

The story, told as it happens, in two processes sharing one durable store (a
:class:`~unidist_queue.store.file.FileStore` in a temporary directory):

1. **First run**, in a child process (``demo --child DIR``): a
   :class:`~unidist_queue.tasks.TaskHandler` with two durable series, ``resize`` and
   ``mail``, and two workers that prefer one series each (priorities 10 and 0). Every
   finished task pushes an event to a :class:`~unidist_queue.Pusher`, whose receiver is
   down for its first attempts: the Pusher backs off, probes with one event, and once the
   receiver answers it sends full batches.
2. **Crash**: once the receiver is back and half the tasks are done, the parent kills the
   child with SIGKILL, tasks and a batch possibly in flight.
3. **Restart**, in the parent: the store is reopened; the tasks that had not finished and
   the events not yet delivered are found there; a new TaskHandler runs the tasks and a
   new Pusher delivers the events.
4. **The closing table**: what was produced, done or delivered, recovered after the
   crash, and lost (nothing). A task or batch in flight at the kill runs (or is sent)
   twice: at-least-once, and the ids show it.

Every side effect a crash must not lose is written with one ``os.write`` to a log file
in the same directory (``done.log``, ``pushed.log``, ``delivered.log``), so the parent
can count after the kill. Only this module prints; the library never does.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any, Dict, List, Optional, TextIO, Tuple

from .message import Message
from .push import Pusher
from .queues import MessageQueue
from .store.file import FileStore
from .tasks import TaskHandler

__all__ = ["mail", "main", "resize"]

PHOTOS = [f"photo-{i:02}" for i in range(12)]
USERS = [f"user-{i:02}" for i in range(12)]
WORK = 0.06  # seconds a task "works"
DOWN_FOR = 3  # attempts the receiver refuses in the first run
WAIT = 30.0  # the longest any step may take before the demo gives up

_run: Optional[_Run] = None  # the current process's run: the tasks and receiver use it


class _Run:
    """One process's side of the demo: its output, its log files and its Pusher."""

    def __init__(self, path: str, out: TextIO, prefix: str) -> None:
        self.path = path
        self.out = out
        self.prefix = prefix
        self.lock = threading.Lock()
        self.pusher: Optional[Pusher] = None

    def say(self, text: str) -> None:
        with self.lock:
            self.out.write(f"{self.prefix}{text}\n")
            self.out.flush()

    def log(self, name: str, lines: List[str]) -> None:
        """Append ``lines`` to ``name``.log in one write (a kill never tears it apart)."""
        fd = os.open(os.path.join(self.path, name + ".log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, "".join(line + "\n" for line in lines).encode())
        finally:
            os.close(fd)


# -- the tasks (stored by importable name in the durable series) -------------------------------


def resize(photo: str) -> str:
    """Series ``resize``: "resize" a photo, then report it as an event."""
    time.sleep(WORK)
    return _finish("resize", photo)


def mail(user: str) -> str:
    """Series ``mail``: "mail" a user, then report it as an event."""
    time.sleep(WORK)
    return _finish("mail", user)


def _finish(series: str, item: str) -> str:
    run = _run
    assert run is not None and run.pusher is not None
    worker = threading.current_thread().name.rsplit("_", 1)[0]
    task = f"{series} {item}"
    msg_id = run.pusher.push({"task": task, "worker": worker})
    run.log("pushed", [str(msg_id)])
    run.log("done", [task])
    run.say(f"{task:<20} done by {worker:<9} -> event {msg_id} queued")
    return task


class _Receiver:
    """The far end of the Pusher: refuses its first ``down_for`` attempts, then logs batches."""

    def __init__(self, run: _Run, down_for: int) -> None:
        self.run = run
        self.down_for = down_for
        self.was_down = False

    def __call__(self, batch: List[Message]) -> None:
        ids = ", ".join(str(m.id) for m in batch)
        if self.down_for > 0:
            self.down_for -= 1
            self.was_down = True
            self.run.say(f"receiver DOWN: refused {len(batch)} event(s) [{ids}]; the Pusher backs off")
            raise ConnectionError("receiver is down")
        self.run.log("delivered", [str(m.id) for m in batch])
        if self.was_down:
            self.was_down = False
            self.run.say("receiver back up")
        self.run.say(f"receiver got {len(batch)} event(s) [{ids}]")


class _Relay(logging.Handler):
    """Shows the library's log messages (the Pusher's backoff) as progress lines."""

    def __init__(self, run: _Run) -> None:
        super().__init__(logging.INFO)
        self.run = run

    def emit(self, record: logging.LogRecord) -> None:
        self.run.say(f"  {record.levelname.lower()}: {record.getMessage()}")


def _unrelay() -> None:
    library = logging.getLogger("unidist_queue")
    for handler in list(library.handlers):
        if isinstance(handler, _Relay):
            library.removeHandler(handler)


def _setup(mq: MessageQueue, run: _Run, down_for: int) -> TaskHandler:
    """The Pusher, then the TaskHandler and its two workers, on ``mq``."""
    global _run
    _run = run
    _unrelay()
    logging.getLogger("unidist_queue").addHandler(_Relay(run))  # no tracebacks: lines tell the story
    run.pusher = Pusher(_Receiver(run, down_for), mq=mq, queue="events", batch_size=4,
                        buffer_delay=0.05, retry_delay=0.04, max_retry_delay=0.16)
    th = TaskHandler(0, mq=mq)
    th.hire([(10, "resize"), (0, "mail")], name="w-resize")
    th.hire([(10, "mail"), (0, "resize")], name="w-mail")
    return th


# -- the first run: the child process -------------------------------------------------------------


def _child(path: str, out: TextIO) -> int:  # pragma: no cover - the child process: SIGKILLed, never measured
    """Submit every task and work until killed (exits by itself after ``WAIT`` seconds)."""
    _start_first_run(path, out)
    time.sleep(WAIT)  # the parent kills us long before
    os._exit(1)


def _start_first_run(path: str, out: TextIO) -> Tuple[MessageQueue, TaskHandler]:
    """The first run's side: open the store, make the Pusher and workers, submit every task."""
    run = _Run(path, out, "")
    mq = MessageQueue(store=FileStore(os.path.join(path, "store")))
    th = _setup(mq, run, DOWN_FOR)
    run.say("hired w-resize (resize 10, mail 0) and w-mail (mail 10, resize 0)")
    for photo in PHOTOS:
        th.submit_to("resize", resize, photo)
    for user in USERS:
        th.submit_to("mail", mail, user)
    run.say(f"submitted {len(PHOTOS)} resize and {len(USERS)} mail tasks (durable series)")
    return mq, th


# -- the parent --------------------------------------------------------------------------------------


def main(child: Optional[str] = None, out: TextIO = sys.stdout) -> int:
    """Run the demo, writing progress to ``out``; return 0 if nothing was lost, else 1.

    ``child``: run the first run's side in directory ``child`` (the parent starts this).
    """
    if child is not None:  # pragma: no cover - runs in the child process, which the demo SIGKILLs
        return _child(child, out)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="unidist_queue-demo.") as path:
        run = _Run(path, out, "")
        run.say(f"unidist_queue demo: a durable store in {path}")
        run.say("== 1. first run (a child process): tasks, workers, a Pusher whose receiver is down")
        _first_run(path, out)
        run.say("== 2. crash: the child was killed with SIGKILL (kill -9), work in flight")
        try:
            found = _restart(path, out)
        finally:
            _unrelay()
        lost = _report(path, found, run)
        run.say(f"({time.monotonic() - started:.1f} s)")
    return 1 if lost else 0


def _first_run(path: str, out: TextIO) -> None:
    """Start the child, relay its lines, and SIGKILL it mid-way."""
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [package_dir, os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    # The child is killed on purpose: a coverage run's settings are not passed on, as a
    # killed child cannot save its data and would leave a damaged data file behind.
    env.pop("COVERAGE_PROCESS_CONFIG", None)
    env.pop("COVERAGE_PROCESS_START", None)
    lines: queue.Queue[Optional[str]] = queue.Queue()
    relay = _Run(path, out, "   first run | ")
    with subprocess.Popen([sys.executable, "-m", "unidist_queue", "demo", "--child", path],
                          stdout=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        stdout = proc.stdout

        def read() -> None:
            for line in stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        reader = threading.Thread(target=read, name="demo-relay", daemon=True)
        reader.start()
        done = got = 0
        try:  # kill once half the tasks are done and the receiver took two batches
            while not (got >= 2 and done >= (len(PHOTOS) + len(USERS)) // 2):
                line = lines.get(timeout=WAIT)
                if line is None:
                    raise RuntimeError("the child process ended early")
                relay.say(line)
                done += " done by " in line
                got += line.startswith("receiver got")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(WAIT)
        while True:  # what it said before it died
            line = lines.get(timeout=WAIT)
            if line is None:
                break
            relay.say(line)
        reader.join(WAIT)


def _restart(path: str, out: TextIO) -> Dict[str, int]:
    """Reopen the store, run what was left, deliver what was left; return what was found."""
    run = _Run(path, out, "     restart | ")
    say = _Run(path, out, "").say
    say("== 3. restart: reopen the store, hire the workers again, make a new Pusher")
    with MessageQueue(store=FileStore(os.path.join(path, "store"))) as mq:
        found = {"resize": mq.count("task:resize"), "mail": mq.count("task:mail"),
                 "events": mq.count("events")}
        say(f"   found in the store: {found['resize']} resize and {found['mail']} mail tasks not done, "
            f"{found['events']} events not delivered")
        th = _setup(mq, run, 0)
        th.shutdown(wait=True)  # runs every recovered task
        pusher = run.pusher
        assert pusher is not None
        if not pusher.flush(timeout=WAIT):
            run.say("the Pusher could not deliver everything in time")
        stats = pusher.stats()
        pusher.close(timeout=WAIT)
        say(f"   Pusher after restart: {stats.sent} events sent in {stats.batches} batches, "
            f"{stats.failed} failed attempts, {stats.pending} pending")
    return found


def _read(path: str, name: str) -> List[str]:
    try:
        with open(os.path.join(path, name + ".log")) as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _report(path: str, found: Dict[str, int], run: _Run) -> int:
    """Print the closing table; return how many tasks and events were lost."""
    tasks = [f"resize {p}" for p in PHOTOS] + [f"mail {u}" for u in USERS]
    done = Counter(_read(path, "done"))
    pushed = set(map(int, _read(path, "pushed")))
    delivered = Counter(map(int, _read(path, "delivered")))
    tasks_lost = len(set(tasks) - set(done))
    events_lost = len(pushed - set(delivered))
    rows: List[List[Any]] = [
        ["", "produced", "done/delivered", "recovered", "twice", "lost"],
        ["tasks (resize + mail)", len(tasks), len(set(tasks) & set(done)), found["resize"] + found["mail"],
         sum(1 for n in done.values() if n > 1), tasks_lost],
        ["events (Pusher)", len(pushed), len(pushed & set(delivered)), found["events"],
         sum(1 for n in delivered.values() if n > 1), events_lost],
    ]
    run.say("== 4. what happened")
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        run.say("   " + "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)
                                  for i, (v, w) in enumerate(zip(r, widths, strict=True))))
    run.say("   recovered: found in the store after the kill and finished by the restart; twice: in")
    run.say("   flight at the kill, so run (or sent) again after it: at-least-once, same ids")
    extra = set(delivered) - pushed
    if extra:
        run.say(f"   (+{len(extra)} event(s) stored just before the kill, delivered after it)")
    if tasks_lost or events_lost:
        run.say(f"LOST: {tasks_lost} task(s), {events_lost} event(s)")
    else:
        run.say("nothing lost: every task ran and every event reached the receiver")
    return tasks_lost + events_lost
