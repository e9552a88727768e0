"""Errors are one line on stderr, never a traceback, with an exit status that says what
happened; a closed pipe ends quietly; ``--version``; ``COMMAND PATH [options]``."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_helpers import TIMEOUT, Order, error_line, make_store, run

import unidist_queue
from unidist_queue import FileStore, MessageQueue
from unidist_queue.cli.target import missing_code


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == f"unidist_queue {unidist_queue.__version__}\n"
    assert unidist_queue.__version__.count(".") == 2


def test_options_may_follow_or_precede_the_path(tmp_path: Path) -> None:
    path = make_store(tmp_path / "s")
    after = run("dump", path, "--queue", "other", "--json")
    before = run("dump", "--json", "--queue", "other", path)
    assert after.returncode == before.returncode == 0
    assert after.stdout == before.stdout and '"body": "x"' in after.stdout


def test_dump_of_an_unknown_queue_is_exit_status_2(tmp_path: Path) -> None:
    path = make_store(tmp_path / "s")
    line = error_line(run("dump", path, "--queue", "nosuch"))
    assert line == f"error: {path} has no queue nosuch (its queues: jobs, other)"


@pytest.mark.parametrize("args", [[], ["dump"], ["frobnicate", "x"], ["dump", "x", "--salvation"],
                                  ["inspect", "x", "--salvage"]])
def test_a_usage_error_is_one_line_with_exit_status_2(args: list[str]) -> None:
    done = run(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "error:" in done.stderr and "(see --help)" in done.stderr


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with MessageQueue(store=FileStore(path)) as mq:
        mq.add_many("jobs", ["a fairly long body to fill the pipe quickly"] * 20_000)
    child = subprocess.Popen([sys.executable, "-m", "unidist_queue", "dump", str(path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    try:
        assert child.stdout.readline().startswith(b"1\tjobs\t")
    finally:
        child.stdout.close()  # as `| head -1` does
        status = child.wait(timeout=TIMEOUT)
        err = child.stderr.read()
        child.stderr.close()
    assert (status, err) == (0, b"")


def _patched_run(raise_: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the command line with ``inspect`` replaced by code raising ``raise_``."""
    path = make_store(tmp_path / "s")
    code = textwrap.dedent(f"""
        import sys
        import unidist_queue.cli.commands as commands
        def inspect(target, args):
            raise {raise_}
        commands.inspect = inspect
        from unidist_queue.cli import main
        sys.exit(main(["inspect", {path!r}]))
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)


def test_an_unexpected_error_is_one_line_without_quotes(tmp_path: Path) -> None:
    line = error_line(_patched_run("KeyError('no such thing')", tmp_path))
    assert line == "error: unexpected KeyError: no such thing"


def test_an_os_error_is_one_line_without_quotes(tmp_path: Path) -> None:
    line = error_line(_patched_run("FileNotFoundError(2, 'No such file or directory', '/x/y')", tmp_path))
    assert line == "error: /x/y: No such file or directory"


def test_an_interrupt_ends_quietly_with_status_130(tmp_path: Path) -> None:
    done = _patched_run("KeyboardInterrupt", tmp_path)
    assert (done.returncode, done.stderr) == (130, "")


def test_bodies_naming_code_that_cannot_be_imported_are_not_damage(tmp_path: Path) -> None:
    """Stored objects of an application's class, read where it cannot be imported."""
    path = str(tmp_path / "s")
    with MessageQueue(store=FileStore(path)) as mq:
        mq.add("orders", Order(1))
        assert pickle.loads(pickle.dumps(Order(2))).n == 2  # importable here, not in the child
    line = error_line(run("dump", path))
    offset = line.split()[6]
    assert line == (f"error: {Path(path, 'archive.0')}: the object at offset {offset} names code that "
                    "cannot be imported here (no module named cli_helpers): run it where the modules of the "
                    "application can be imported")
    done = run("verify", path)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "ok", done.stdout
    assert "1 checked but not decoded here" in done.stdout
    with MessageQueue(store=FileStore(path)) as mq:
        mq.compact()
    done = run("verify", path)
    assert done.returncode == 0 and "snapshot.1: checked, not decoded here" in done.stdout, done.stdout


def test_a_name_missing_from_its_module(tmp_path: Path) -> None:
    """The module imports, but no longer defines the class: verify notes it, dump refuses."""
    path = str(tmp_path / "s")
    with MessageQueue(store=FileStore(path)) as mq:
        mq.add("orders", Order(1))
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "cli_helpers.py").write_text("# Order was removed\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "lib"), os.environ.get("PYTHONPATH", "")])}
    done = run("verify", path, env=env)
    assert done.returncode == 0 and "(a name its module does not define)" in done.stdout, done.stdout
    assert "(a name its module does not define)" in error_line(run("dump", path, env=env))


def test_missing_code_in_words() -> None:
    assert missing_code(ImportError("x")) == "a module that cannot be imported"
    assert missing_code(ModuleNotFoundError("x", name="m")) == "no module named m"
