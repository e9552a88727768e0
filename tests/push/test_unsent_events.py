"""A Pusher that closes, or reaches interpreter exit, with events its queue cannot keep
says how many it loses (WARNING); with a durable queue it only notes (INFO) that they
wait for a restart (issue 13)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from conftest import child_env
from push_helpers import WAIT, Receiver, logged_failures

from unidist_queue import FileStore, MessageQueue, Pusher

LOGGER = "unidist_queue.push"


def down_pusher(n: int, **options: object) -> Pusher:
    """A Pusher whose receiver is down (one failed attempt, known), holding ``n`` events."""
    with logged_failures() as failures:
        p = Pusher(Receiver(failures=10**6), buffer_delay=0, retry_delay=3600, max_retry_delay=3600,
                   **options)  # type: ignore[arg-type]
        for i in range(n):
            p.push(i)
        failures.wait(1)
    return p


def unsent_records(caplog: pytest.LogCaptureFixture) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and "unsent" in r.getMessage()]


def test_a_private_queue_loses_them_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    p = down_pusher(12)
    p.close(timeout=WAIT)
    (record,) = unsent_records(caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "Pusher 'push' closed with 12 unsent events; they are lost (the queue is not durable)")


def test_an_in_memory_queue_passed_in_keeps_them_until_the_process_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with MessageQueue() as mq:
        p = down_pusher(5, mq=mq, queue="events")
        p.close(timeout=WAIT)
        (record,) = unsent_records(caplog)
        assert record.levelno == logging.WARNING
        assert record.getMessage().startswith("Pusher 'events' closed with 5 unsent events; they are lost")
        assert "(the queue is not durable)" in record.getMessage()
        assert mq.count("events") == 5  # left there, in a queue passed in


def test_a_durable_queue_keeps_them_and_says_so_at_info(caplog: pytest.LogCaptureFixture, path: str) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with MessageQueue(FileStore(path)) as mq:
        p = down_pusher(7, mq=mq)
        p.close(timeout=WAIT)
    (record,) = unsent_records(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == ("Pusher 'push' closed with 7 unsent events; they stay in the "
                                   "durable queue and are sent after a restart")
    assert not [r for r in caplog.records if r.name == LOGGER and "lost" in r.getMessage()]


@pytest.mark.parametrize("durable", [False, True])
def test_a_queue_closed_first_is_reported_as_last_seen(
    caplog: pytest.LogCaptureFixture, path: str, durable: bool
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    mq = MessageQueue(FileStore(path) if durable else None)
    p = down_pusher(3, mq=mq)
    assert p.stats().pending == 3
    mq.close()
    p.close(timeout=WAIT)
    (record,) = unsent_records(caplog)
    assert record.levelno == (logging.INFO if durable else logging.WARNING)
    assert "closed with 3 unsent events" in record.getMessage()


def test_nothing_left_nothing_said(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    receiver = Receiver()
    p = Pusher(receiver, buffer_delay=3600)
    for i in range(4):
        p.push(i)
    p.close(timeout=WAIT)  # the last flush sends them
    assert receiver.bodies() == [0, 1, 2, 3]
    assert unsent_records(caplog) == []


# The child: a receiver that always fails, events pushed to a private queue ("-") or a
# durable one (a path), and an exit without close() (unless told "close").
CHILD = r"""
import sys
from unidist_queue import FileStore, MessageQueue, Pusher
def send(batch):
    raise ConnectionError("receiver down")
mq = MessageQueue(FileStore(sys.argv[1])) if sys.argv[1] != "-" else None
p = Pusher(send, mq=mq, buffer_delay=0, retry_delay=3600, max_retry_delay=3600)
for i in range(12):
    p.push(i)
if "close" in sys.argv[2:]:
    p.close()
"""


def run_child(*args: str) -> str:
    """Run the child to its end; return its stderr (the log's last-resort handler).

    It ends by itself (it is never killed), so coverage may measure it: its settings
    are kept in its environment.
    """
    env = child_env()
    env.update((k, v) for k, v in os.environ.items() if k.startswith("COVERAGE_PROCESS_"))
    done = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True,
                          text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_interpreter_exit_with_unsent_events_warns_with_their_number() -> None:
    lines = [line for line in run_child("-").splitlines() if "unsent" in line]
    assert lines == ["Pusher 'push' reached interpreter exit with 12 unsent events; "
                     "they are lost (the queue is not durable)"]


def test_interpreter_exit_with_a_durable_queue_loses_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "store")
    assert "unsent" not in run_child(path)  # INFO only: below the last resort's WARNING
    with MessageQueue(FileStore(path)) as mq:
        assert mq.all("push") == list(range(12))


def test_a_pusher_closed_before_exit_is_not_reported_again() -> None:
    lines = [line for line in run_child("-", "close").splitlines() if "unsent" in line]
    assert lines == ["Pusher 'push' closed with 12 unsent events; they are lost (the queue is not durable)"]
