"""``inspect``, ``verify`` and ``dump`` only read: they run while another process holds
the store, and on a torn tail they say what opening would cut, and cut nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
from cli_helpers import TIMEOUT, error_line, make_store, picture, run

from unidist_queue import FileStore, MessageQueue
from unidist_queue.store.archive import FRAME

HOLDER = textwrap.dedent("""
    import sys
    from unidist_queue import FileStore, MessageQueue
    with MessageQueue(store=FileStore(sys.argv[1])) as mq:
        mq.add("jobs", "held")
        print("holding", flush=True)
        sys.stdin.read()  # until the test closes it
""")


@pytest.fixture(params=["this process", "a child process"])
def held(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store with a snapshot and an archive, held by a FileStore open in ``param``."""
    path = make_store(tmp_path / "s")
    with MessageQueue(store=FileStore(path)) as mq:
        mq.compact()
        mq.reserve("other")  # a lease: a restart would count it as ready again
    if request.param == "this process":
        with MessageQueue(store=FileStore(path)) as mq:
            mq.add("jobs", "held")
            yield path
        return
    child = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == "holding\n"
        yield path
    finally:
        child.stdin.close()
        status = child.wait(timeout=TIMEOUT)
        child.stdout.close()
    assert status == 0


def test_reading_commands_run_while_another_store_holds_it_and_change_nothing(held: str) -> None:
    before = picture(Path(held))
    done = run("inspect", held)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith(("jobs ", "other "))]
    assert rows == [["jobs", "4", "0", "0"], ["other", "1", "0", "0"]]
    assert "signed: no" in done.stdout and "archive.1" in done.stdout and "snapshot.1" in done.stdout
    done = run("verify", held)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "ok", done.stdout + done.stderr
    done = run("dump", held, "--queue", "jobs")
    assert done.returncode == 0 and done.stderr == ""
    assert [line.split("\t")[3] for line in done.stdout.splitlines()] == ["0", "1", "2", "'held'"]
    assert picture(Path(held)) == before


def test_compact_is_refused_while_another_store_holds_it(held: str) -> None:
    before = picture(Path(held))
    line = error_line(run("compact", held))
    assert line == f"error: {held} is held by another FileStore (this or another process)"
    assert picture(Path(held)) == before


@pytest.fixture
def torn(tmp_path: Path) -> str:
    """A store whose archive ends in half a record, as a crash leaves it."""
    path = make_store(tmp_path / "s")
    archive = Path(path, "archive.0")
    data = archive.read_bytes()
    archive.write_bytes(data + FRAME.pack(1000, 0, 7) + b"partial record")  # 30 bytes of 1016
    return path


def test_inspect_and_dump_say_what_a_torn_tail_would_lose_and_cut_nothing(torn: str) -> None:
    size = Path(torn, "archive.0").stat().st_size
    archive = Path(torn, "archive.0")
    note = f"note: torn tail in {archive} at offset {size - 30}: 30 bytes would be cut on open\n"
    before = picture(Path(torn))
    for command in ("inspect", "dump"):
        done = run(command, torn)
        assert done.returncode == 0 and done.stderr == note, done.stderr
    assert picture(Path(torn)) == before
    done = run("verify", torn)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.splitlines() == [
        f"archive.0: 6 records, last seq 6; note: torn tail in archive.0 at offset {size - 30}: "
        "30 bytes would be cut on open",
        "ok",
    ]
    assert picture(Path(torn)) == before


def test_compact_cuts_a_torn_tail_and_says_so(torn: str) -> None:
    size = Path(torn, "archive.0").stat().st_size
    done = run("compact", torn)
    assert done.returncode == 0, done.stderr
    archive = Path(torn, "archive.0")
    assert done.stderr == f"note: torn tail in {archive} at offset {size - 30}: 30 bytes cut\n"
    assert run("verify", torn).stdout.splitlines()[-1] == "ok"
