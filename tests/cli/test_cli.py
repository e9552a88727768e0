"""The command line: ``python -m unidist_queue {inspect,verify,compact,dump,demo}``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_inspect_while_another_store_holds_the_lock(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    with MessageQueue(store=FileStore(store)) as mq:
        mq.add("jobs", 5)
        assert main(["inspect", store]) == 0
    out = capsys.readouterr().out
    assert "serializer pickle" in out and "archive.1" in out and "snapshot.1" in out
    assert [line.split() for line in out.splitlines() if line.startswith(("jobs", "other"))] == [
        ["jobs", "4", "0", "0"],
        ["other", "1", "0", "0"],
    ]


def test_dump_text_and_json(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dump", store]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in lines] == ["jobs", "jobs", "jobs", "other"]
    assert main(["dump", store, "--queue", "jobs", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["body"] for r in rows] == [{"n": 1}, "two", [4]]
    assert [r["id"] for r in rows] == [1, 2, 4]


def test_dump_changes_nothing(store: str) -> None:
    before = {n: Path(store, n).read_bytes() for n in os.listdir(store)}
    assert main(["dump", store]) == 0
    assert main(["verify", store]) == 0
    assert {n: Path(store, n).read_bytes() for n in os.listdir(store)} == before


def test_verify_ok_torn_and_damaged(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", store]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "ok"
    archive = Path(store, "archive.1")
    data = archive.read_bytes()
    archive.write_bytes(data[:-3])
    assert main(["verify", store]) == 0
    assert "torn tail" in capsys.readouterr().out
    damaged = bytearray(data)
    damaged[60] ^= 1
    archive.write_bytes(bytes(damaged) + data[40:])  # damage followed by valid records
    assert main(["verify", store]) == 1
    assert "DAMAGED" in capsys.readouterr().out


def test_verify_notes_an_empty_archive_that_opening_ignores(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    Path(store, "archive.2").write_bytes(b"")  # as a crash right after creating it leaves it
    assert main(["verify", store]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "archive.2: empty file (ignored on open)" in out and out[-1] == "ok"
    with MessageQueue(store=FileStore(store)) as mq:
        assert mq.all("jobs") == [{"n": 1}, "two", (4,)]


def test_verify_damaged_snapshot(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    snap = Path(store, "snapshot.1")
    snap.write_bytes(snap.read_bytes()[:-1])
    assert main(["verify", store]) == 1
    assert "snapshot.1: DAMAGED" in capsys.readouterr().out


def test_compact(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compact", store]) == 0
    assert "compacted" in capsys.readouterr().out
    assert sorted(os.listdir(store)) == ["LOCK", "archive.2", "snapshot.2"]
    with MessageQueue(store=FileStore(store)) as mq:
        assert mq.all("jobs") == [{"n": 1}, "two", (4,)]
        assert main(["compact", store]) == 1  # locked
    assert "held by another" in capsys.readouterr().err


def test_hmac_key_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "s")
    with MessageQueue(store=FileStore(path, hmac_key=b"sekrit", serializer="json")) as mq:
        mq.add("q", [1, 2])
    monkeypatch.setenv("UQ_KEY", "sekrit")
    assert main(["dump", path, "--hmac-key-env", "UQ_KEY"]) == 0
    assert "[1, 2]" in capsys.readouterr().out
    assert main(["dump", path]) == 1
    assert "hmac_key" in capsys.readouterr().err
    monkeypatch.setenv("UQ_KEY", "wrong")
    assert main(["verify", path, "--hmac-key-env", "UQ_KEY"]) == 1
    assert main(["verify", path, "--hmac-key-env", "UNSET_VARIABLE_FOR_TEST"]) == 1


def test_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("inspect", "verify", "dump"):
        assert main([command, str(tmp_path / "nope")]) == 1
    assert not (tmp_path / "nope").exists()


def test_subprocess_verify_exit_status(store: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "unidist_queue", "verify", store], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
