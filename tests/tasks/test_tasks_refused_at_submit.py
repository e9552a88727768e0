"""A durable series refuses at ``submit`` a task whose function a fresh interpreter could
not find by name: ``SerializationError`` is raised by the call, no future is returned,
nothing is stored.

Refused: lambdas, nested functions, functions whose ``module:qualname`` gives back
another object, and functions of ``__main__`` when the program is a script (or a
package's ``__main__``). A function of a module run with ``python -m pkg.mod`` is stored
under ``pkg.mod`` and runs in a fresh interpreter. The ``__main__`` cases run real child
interpreters (``python script.py``, ``python -m``) with ``PYTHONPATH``.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from conftest import child_env

from unidist_queue.errors import SerializationError
from unidist_queue.queues import MessageQueue
from unidist_queue.store.file import FileStore
from unidist_queue.tasks import TaskHandler

WAIT = 30.0  # bound on every wait (a child interpreter starts in well under a second)


def twice(x: int) -> int:
    return 2 * x


def _nested() -> Callable[[], int]:
    def inner() -> int:
        return 1

    return inner


def impostor(x: int) -> int:
    return x


impostor.__qualname__ = "twice"  # its module:qualname gives back another object: twice


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[tuple[MessageQueue, TaskHandler]]:
    mq = MessageQueue(store=FileStore(tmp_path / "s", fsync="never"))
    th = TaskHandler(0, mq=mq)
    try:
        yield mq, th
    finally:
        th.shutdown(timeout=WAIT)
        mq.close()


def assert_nothing_stored(mq: MessageQueue, th: TaskHandler, series: str) -> None:
    assert mq.count(f"task:{series}") == 0
    assert mq.stats(f"task:{series}").added == 0
    assert th.status()["series"].get(series, {"waiting": 0})["waiting"] == 0


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda x: x, "no importable name"),
        (_nested(), "no importable name"),
        (impostor, "names another object"),
    ],
    ids=["lambda", "nested", "not-the-same-object"],
)
def test_a_function_not_found_again_by_name_is_refused(
    durable: tuple[MessageQueue, TaskHandler], fn: Callable[..., Any], match: str
) -> None:
    mq, th = durable
    with pytest.raises(SerializationError, match=match):
        th.submit(fn, 1)
    with pytest.raises(SerializationError, match=match):
        th.submit_to("other", fn, 1)
    assert_nothing_stored(mq, th, "default")
    assert_nothing_stored(mq, th, "other")
    th.submit(twice, 1)  # the handler goes on: a good task is stored
    assert mq.count("task:default") == 1


def test_a_refused_task_leaves_nothing_in_the_store(tmp_path: Path) -> None:
    with MessageQueue(store=FileStore(tmp_path / "s")) as mq, TaskHandler(0, mq=mq) as th, pytest.raises(
        SerializationError
    ):
        th.submit(_nested())
    with MessageQueue(store=FileStore(tmp_path / "s")) as mq:
        assert mq.count("task:default") == 0 and mq.stats("task:default").added == 0


def main_module(
    monkeypatch: pytest.MonkeyPatch, spec_name: str | None, name: str = "__main__"
) -> types.FunctionType:
    """Stand in for the main module ``name``: a module run as a script (``spec_name=None``)
    or with ``python -m spec_name``; returns one of its functions."""
    main = types.ModuleType(name)
    main.__spec__ = None if spec_name is None else types.SimpleNamespace(name=spec_name)  # type: ignore[assignment]
    exec("def job(x):\n    return x\n", main.__dict__)
    monkeypatch.setitem(sys.modules, name, main)
    return main.job  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("spec_name", "match"),
    [
        (None, "main script"), ("", "main script"), ("__main__", "main script"),
        ("tool.__main__", "runs the program"),
    ],
    ids=["script", "empty-spec-name", "spec-named-main", "package-main"],
)
def test_functions_of_a_main_script_are_refused(
    durable: tuple[MessageQueue, TaskHandler], monkeypatch: pytest.MonkeyPatch, spec_name: str | None,
    match: str,
) -> None:
    mq, th = durable
    job = main_module(monkeypatch, spec_name)
    with pytest.raises(SerializationError, match=match) as info:
        th.submit(job, 1)
    assert "importable module" in str(info.value) or "another module" in str(info.value)
    assert_nothing_stored(mq, th, "default")


def test_the_main_module_of_a_multiprocessing_child_follows_the_same_rule(
    durable: tuple[MessageQueue, TaskHandler], monkeypatch: pytest.MonkeyPatch
) -> None:
    mq, th = durable
    with pytest.raises(SerializationError, match="main script"):
        th.submit(main_module(monkeypatch, None, "__mp_main__"), 1)
    th.submit(main_module(monkeypatch, "tool.jobs", "__mp_main__"), 1)
    assert [m.body[0] for m in mq.messages("task:default")] == ["tool.jobs:job"]


def test_a_function_of_a_module_run_with_dash_m_is_stored_under_its_module(
    durable: tuple[MessageQueue, TaskHandler], monkeypatch: pytest.MonkeyPatch
) -> None:
    mq, th = durable
    job = main_module(monkeypatch, "tool.jobs")
    th.submit(job, 1)
    (message,) = mq.messages("task:default")
    assert message.body[0] == "tool.jobs:job"  # not imported here: module code runs once
    assert "tool" not in sys.modules
    other = main_module(monkeypatch, "tool.jobs")  # __main__ now holds another job
    with pytest.raises(SerializationError, match="names another object"):
        th.submit(job, 1)
    del sys.modules["__main__"].job
    with pytest.raises(SerializationError, match="cannot be found again"):
        th.submit(other, 1)
    assert mq.count("task:default") == 1


def test_a_series_that_is_not_durable_takes_functions_of_a_script(
    mq: MessageQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = main_module(monkeypatch, None)
    with TaskHandler(1, mq=mq) as th:
        assert th.submit(job, 7).result(WAIT) == 7


# -- real child interpreters -------------------------------------------------------------------

SUBMIT = """
import sys
from unidist_queue import FileStore, MessageQueue, TaskHandler
from unidist_queue.errors import SerializationError


def work(path, text):
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    mq = MessageQueue(store=FileStore(sys.argv[1]))
    th = TaskHandler(0, mq=mq)
    try:
        future = th.submit(work, sys.argv[2], "ran")
    except SerializationError as exc:
        print("refused:", exc)
    else:
        print("stored:", mq.messages("task:default")[0].body[0])
    th.shutdown()
    mq.close()
"""

RUN_STORED = """
import sys
from unidist_queue import FileStore, MessageQueue, TaskHandler

with MessageQueue(store=FileStore(sys.argv[1])) as mq:
    with TaskHandler(1, mq=mq):
        pass  # shutdown waits for every task its worker can run
    print("left:", mq.count("task:default"))
"""


def run(args: list[str], cwd: Path, *paths: Path) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=child_env(*map(str, paths)),
        capture_output=True, text=True, timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_function_of_a_script_run_as_python_script_py_is_refused(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text(SUBMIT)
    out = run(["script.py", str(tmp_path / "s"), str(tmp_path / "out")], tmp_path)
    assert out.startswith("refused:") and "main script" in out and "importable module" in out
    assert run(["-c", RUN_STORED, str(tmp_path / "s")], tmp_path) == "left: 0\n"
    assert not (tmp_path / "out").exists()


def test_a_function_of_a_module_run_with_python_m_runs_in_a_fresh_interpreter(tmp_path: Path) -> None:
    code = tmp_path / "code"
    (code / "uqjobs").mkdir(parents=True)
    (code / "uqjobs" / "__init__.py").write_text("")
    (code / "uqjobs" / "batch.py").write_text(SUBMIT)
    out = run(["-m", "uqjobs.batch", str(tmp_path / "s"), str(tmp_path / "out")], tmp_path, code)
    assert out == "stored: uqjobs.batch:work\n"
    assert not (tmp_path / "out").exists()
    # a fresh interpreter, another program: it imports uqjobs.batch by name and runs the task
    assert run(["-c", RUN_STORED, str(tmp_path / "s")], tmp_path, code) == "left: 0\n"
    assert (tmp_path / "out").read_text() == "ran"


def test_a_function_of_a_package_run_with_python_m_is_refused(tmp_path: Path) -> None:
    code = tmp_path / "code"
    (code / "uqtool").mkdir(parents=True)
    (code / "uqtool" / "__init__.py").write_text("")
    (code / "uqtool" / "__main__.py").write_text(SUBMIT)
    out = run(["-m", "uqtool", str(tmp_path / "s"), str(tmp_path / "out")], tmp_path, code)
    assert out.startswith("refused:") and "uqtool.__main__" in out
    assert run(["-c", RUN_STORED, str(tmp_path / "s")], tmp_path, code) == "left: 0\n"
