"""The command line: ``python -m unidist_queue {inspect,verify,compact,dump,demo}``, what each
prints on a healthy store (the failure cases have a file each: test_cli_*.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run

from unidist_queue import MessageQueue
from unidist_queue.__main__ import main
from unidist_queue.store.file import FileStore


def test_demo_runs() -> None:
    """The demo crashes its first run with SIGKILL, restarts, and loses nothing."""
    done = subprocess.run(
        [sys.executable, "-m", "unidist_queue", "demo"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "receiver DOWN" in out and "first run |" in out and "restart |" in out
    assert "killed with SIGKILL" in out and "found in the store" in out
    table = {line.split()[0]: line.split()[-5:] for line in out.splitlines()
             if line.strip().startswith(("tasks (", "events ("))}
    assert table["tasks"] == ["24", "24", table["tasks"][2], table["tasks"][3], "0"], out
    assert table["events"][0] == table["events"][1] and table["events"][-1] == "0", out
    assert "nothing lost" in out
    assert done.stderr == ""


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = str(tmp_path / "s")
    with MessageQueue(store=FileStore(path)) as mq:
        mq.add("jobs", {"n": 1})
        mq.add("jobs", "two")
        mq.add("other", 3)
        mq.compact()
        mq.add("jobs", (4,))
        mq.reserve("other")
    return path


def test_inspect(store: str) -> None:
    done = run("inspect", store)
    assert done.returncode == 0 and done.stderr == ""
    out = done.stdout
    assert out.splitlines()[0] == f"store {store}: serializer pickle, signed: no"
    assert "archive.1" in out and "snapshot.1" in out and "LOCK" in out
    assert [line.split() for line in out.splitlines() if line.startswith(("jobs", "other"))] == [
        ["jobs", "3", "0", "0"],
        ["other", "1", "0", "0"],
    ]


def test_dump_text_and_json(store: str) -> None:
    done = run("dump", store)
    assert done.returncode == 0 and done.stderr == ""
    assert [line.split("\t")[1] for line in done.stdout.splitlines()] == ["jobs", "jobs", "jobs", "other"]
    done = run("dump", store, "--queue", "jobs", "--json")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["body"] for r in rows] == [{"n": 1}, "two", [4]]
    assert [r["id"] for r in rows] == [1, 2, 4]


def test_verify_ok_and_damaged(store: str) -> None:
    done = run("verify", store)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 3 and lines[2] == "ok", done.stdout
    assert lines[0].startswith("archive.1: ") and lines[0].endswith("; ok")
    assert lines[1].startswith("snapshot.1: ok (state up to seq ")
    archive = Path(store, "archive.1")
    data = archive.read_bytes()
    damaged = bytearray(data)
    damaged[60] ^= 1
    archive.write_bytes(bytes(damaged) + data[40:])  # damage followed by valid records
    done = run("verify", store)
    assert done.returncode == 1 and "archive.1: " in done.stdout and "DAMAGED" in done.stdout
    assert done.stdout.splitlines()[-1] == "damage found"


def test_verify_notes_an_empty_archive_that_opening_ignores(store: str) -> None:
    Path(store, "archive.2").write_bytes(b"")  # as a crash right after creating it leaves it
    done = run("verify", store)
    out = done.stdout.splitlines()
    assert done.returncode == 0 and "archive.2: empty file (ignored on open)" in out and out[-1] == "ok"
    with MessageQueue(store=FileStore(store)) as mq:
        assert mq.all("jobs") == [{"n": 1}, "two", (4,)]


def test_verify_damaged_snapshot(store: str) -> None:
    snap = Path(store, "snapshot.1")
    snap.write_bytes(snap.read_bytes()[:-1])
    done = run("verify", store)
    assert done.returncode == 1 and "snapshot.1: DAMAGED" in done.stdout


def test_compact(store: str) -> None:
    done = run("compact", store)
    assert done.returncode == 0 and done.stdout.startswith(f"compacted {store}: ") and done.stderr == ""
    assert sorted(os.listdir(store)) == ["LOCK", "archive.2", "snapshot.2"]
    with MessageQueue(store=FileStore(store)) as mq:
        assert mq.all("jobs") == [{"n": 1}, "two", (4,)]


def test_main_returns_the_exit_status_in_this_process(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    """main() as a function: it returns the status (SystemExit included) and never raises."""
    assert main(["verify", store]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "ok"
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("unidist_queue ")
    assert main(["dump", store, "--queue", "nosuch"]) == 2
    assert main(["inspect", str(Path(store, "nope"))]) == 2
    assert main(["dump"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == ["error", "error", "python -m unidist_queue dump"]


def test_verify_a_damaged_end_of_an_older_archive_is_damage(tmp_path: Path) -> None:
    """Only the newest archive can be torn: records in a newer one follow this one's end."""
    path = str(tmp_path / "s")
    with MessageQueue(store=FileStore(path)) as mq:
        mq.add("jobs", 1)
    old = Path(path, "archive.0").read_bytes()
    with MessageQueue(store=FileStore(path)) as mq:
        mq.compact()
        mq.add("jobs", 2)
    Path(path, "archive.0").write_bytes(old + b"\x10\x00\x00\x00partial")  # left by a crash, then cut short
    done = run("verify", path)
    assert done.returncode == 1 and done.stdout.splitlines()[-1] == "damage found", done.stdout
    assert "only the newest archive can be torn" in done.stdout.splitlines()[0]
