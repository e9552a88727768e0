"""A signed store read without its key is reported as needing it, and a wrong key as
wrong (exit status 2 both), never as damage; damage under the right key is damage."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import error_line, make_store, picture, run

from unidist_queue import FileStore, MessageQueue
from unidist_queue.store.archive import ArchiveScan, Framer, unpack_header

COMMANDS = ("inspect", "verify", "compact", "dump")


@pytest.fixture(params=["archive only", "snapshot and archive"])
def signed(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    path = make_store(tmp_path / "s", hmac_key="sekrit ✓".encode(), serializer="json")
    if request.param == "snapshot and archive":
        with MessageQueue(store=FileStore(path, hmac_key="sekrit ✓".encode(), serializer="json")) as mq:
            mq.compact()
            mq.add("jobs", 3)
    return path


@pytest.mark.parametrize("command", COMMANDS)
def test_without_the_key_it_says_the_key_is_needed(signed: str, command: str) -> None:
    before = picture(Path(signed))
    line = error_line(run(command, signed))
    assert line == (f"error: {signed} is signed: its HMAC key is needed to read it "
                    "(name the environment variable holding it with --hmac-key-env VAR)")
    assert picture(Path(signed)) == before


@pytest.mark.parametrize("value", [None, ""])
def test_with_the_variable_unset_or_empty_it_says_the_key_is_needed(signed: str, value: str) -> None:
    env = {} if value is None else {"UQ_TEST_KEY": value}
    variable = "UQ_TEST_KEY_UNSET" if value is None else "UQ_TEST_KEY"
    line = error_line(run("verify", signed, "--hmac-key-env", variable, env=env))
    assert "is signed: its HMAC key is needed" in line and "is not set or empty" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_a_wrong_key_is_exit_status_2(signed: str, command: str) -> None:
    before = picture(Path(signed))
    line = error_line(run(command, signed, "--hmac-key-env", "UQ_TEST_KEY", env={"UQ_TEST_KEY": "sekrit"}))
    assert line == f"error: the key in UQ_TEST_KEY does not match {signed}: a wrong key"
    assert picture(Path(signed)) == before


def test_the_key_is_the_value_as_utf8_bytes(signed: str) -> None:
    env = {"UQ_TEST_KEY": "sekrit ✓"}
    done = run("verify", signed, "--hmac-key-env", "UQ_TEST_KEY", env=env)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "ok", done.stdout + done.stderr
    done = run("dump", signed, "--queue", "jobs", "--hmac-key-env", "UQ_TEST_KEY", env=env)
    assert done.returncode == 0
    assert [line.split("\t")[3] for line in done.stdout.splitlines()][:3] == ["0", "1", "2"]
    done = run("compact", signed, "--hmac-key-env", "UQ_TEST_KEY", env=env)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_a_key_for_an_unsigned_store_is_refused(tmp_path: Path) -> None:
    path = make_store(tmp_path / "s")
    line = error_line(run("dump", path, "--hmac-key-env", "UQ_TEST_KEY", env={"UQ_TEST_KEY": "k"}))
    assert line == f"error: {path} is not signed, but --hmac-key-env gave a key: refusing to trust it"


def test_a_tampered_record_under_the_right_key_is_damage(tmp_path: Path) -> None:
    path = make_store(tmp_path / "s", n=5, hmac_key=b"k")
    archive = Path(path, "archive.0")
    data = archive.read_bytes()
    header = unpack_header(data, str(archive))
    scan = ArchiveScan(data, str(archive), Framer(header, b"k"))
    assert list(scan.records(lambda b: b)) and not scan.damages
    forged = Framer(header, b"forger").frame(scan.last_seq + 1, b'J["clear","jobs"]')  # checksum-valid
    archive.write_bytes(data + forged)
    done = run("verify", path, "--hmac-key-env", "K", env={"K": "k"})
    assert done.returncode == 1 and "DAMAGED" in done.stdout, done.stdout + done.stderr
    assert "fails its HMAC check" in done.stdout and done.stdout.splitlines()[-1] == "damage found"


def test_an_unset_variable_for_an_unsigned_store_is_refused(tmp_path: Path) -> None:
    path = make_store(tmp_path / "s")
    line = error_line(run("inspect", path, "--hmac-key-env", "UQ_TEST_KEY_UNSET"))
    assert line == "error: the environment variable UQ_TEST_KEY_UNSET (--hmac-key-env) is not set or empty"


def test_an_unsigned_snapshot_in_a_signed_store_is_damage(tmp_path: Path) -> None:
    path = make_store(tmp_path / "s", hmac_key=b"k")
    with MessageQueue(store=FileStore(path, hmac_key=b"k")) as mq:
        mq.compact()
    plain = make_store(tmp_path / "plain")
    with MessageQueue(store=FileStore(plain)) as mq:
        mq.compact()
    Path(path, "snapshot.1").write_bytes(Path(plain, "snapshot.1").read_bytes())
    done = run("verify", path, "--hmac-key-env", "K", env={"K": "k"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "snapshot.1: DAMAGED" in done.stdout and "is not signed" in done.stdout
