"""The demo's parts, in this process: the first run's side with its receiver down, the
closing table when something was lost, and a child that dies before its work is done.

``test_cli.test_demo_runs`` runs the whole demo; its child process is killed with
SIGKILL, so nothing it runs is measured: these tests run that side here. They are unit
tests of the demo's internal parts (``_start_first_run``, ``_report``...), which the
demo's one public function, ``main``, only runs through that child; ruff.toml allows
SLF001 (private members) in this file for that.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Iterator

import pytest

from unidist_queue import demo

WAIT = 30.0


@pytest.fixture
def relay_removed() -> Iterator[None]:
    """The demo relays the library's log records to its output: remove that afterwards."""
    try:
        yield
    finally:
        demo._unrelay()


def test_first_run_side_backs_off_while_the_receiver_is_down_and_loses_nothing(
    tmp_path: Path, relay_removed: None
) -> None:
    library = logging.getLogger("unidist_queue")
    other = logging.NullHandler()
    library.addHandler(other)  # not the demo's: stays
    try:
        out = io.StringIO()
        mq, th = demo._start_first_run(str(tmp_path), out)
        with mq:
            assert th.shutdown(wait=True, timeout=WAIT) == []
            assert demo._run is not None and demo._run.pusher is not None
            pusher = demo._run.pusher
            assert pusher.flush(timeout=WAIT)
            pusher.close(timeout=WAIT)
            assert pusher.stats().failed == demo.DOWN_FOR
        demo._unrelay()
        assert other in library.handlers
    finally:
        library.removeHandler(other)
    text = out.getvalue()
    assert text.count("receiver DOWN") == demo.DOWN_FOR
    assert "receiver back up" in text and "receiver got" in text
    assert "warning: Pusher 'events': send failed" in text  # a library log line, relayed
    assert text.count(" done by ") == len(demo.PHOTOS) + len(demo.USERS)
    report = io.StringIO()
    found = {"resize": 0, "mail": 0, "events": 0}
    assert demo._report(str(tmp_path), found, demo._Run(str(tmp_path), report, "")) == 0
    assert "nothing lost" in report.getvalue()


def test_the_closing_table_counts_what_was_lost(tmp_path: Path) -> None:
    (tmp_path / "done.log").write_text("resize photo-00\nmail user-00\nmail user-00\n")
    (tmp_path / "pushed.log").write_text("1\n2\n3\n")
    (tmp_path / "delivered.log").write_text("1\n2\n2\n9\n")  # 3 lost, 2 twice, 9 from before the kill
    out = io.StringIO()
    found = {"resize": 1, "mail": 2, "events": 1}
    lost = demo._report(str(tmp_path), found, demo._Run(str(tmp_path), out, ""))
    tasks = len(demo.PHOTOS) + len(demo.USERS)
    assert lost == (tasks - 2) + 1
    text = out.getvalue()
    assert f"LOST: {tasks - 2} task(s), 1 event(s)" in text
    assert "(+1 event(s) stored just before the kill, delivered after it)" in text
    rows = {line.split()[0]: line.split()[-5:] for line in text.splitlines()
            if line.strip().startswith(("tasks (", "events ("))}
    assert rows["tasks"] == [str(tasks), "2", "3", "1", str(tasks - 2)]
    assert rows["events"] == ["3", "2", "1", "1", "1"]


def test_nothing_logged_reads_as_nothing_done(tmp_path: Path) -> None:
    out = io.StringIO()
    nothing = {"resize": 0, "mail": 0, "events": 0}
    lost = demo._report(str(tmp_path), nothing, demo._Run(str(tmp_path), out, ""))
    assert lost == len(demo.PHOTOS) + len(demo.USERS)
    assert "LOST" in out.getvalue()


def test_a_child_that_dies_early_stops_the_demo(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")  # the child cannot make its store in here
    out = io.StringIO()
    with pytest.raises(RuntimeError, match="ended early"):
        demo._first_run(str(not_a_directory), out)
    assert not os.path.exists(not_a_directory / "store")
