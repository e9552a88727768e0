"""``Message`` and ``QueueView`` are generic in the body type for type checkers (DESIGN
section 3): typed_example.py passes ``mypy --strict``, wrong uses in it included (each
marked ``# type: ignore[code]``, so that ``warn_unused_ignores`` fails the check if the
type checker stopped refusing them), and runs on this interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import unidist_queue
from unidist_queue import AsyncQueueView, Message, QueueView

EXAMPLE = Path(__file__).with_name("typed_example.py")
ROOT = Path(__file__).resolve().parents[2]


def test_the_typed_example_runs() -> None:
    namespace: dict = {}
    exec(compile(EXAMPLE.read_text(), str(EXAMPLE), "exec"), namespace)
    assert namespace["main"]() == ["tea", "jam", "cake", "scones"]


def test_subscripted_classes_work_at_run_time() -> None:
    msg = Message[int](1, "q", 5, 0.0)
    assert msg == Message(1, "q", 5, 0.0) and msg.body == 5
    assert QueueView[str] is not QueueView  # a typing alias, as queue.Queue[str] is
    assert AsyncQueueView[str].__args__ == (str,)  # a types.GenericAlias, as asyncio.Queue[str]
    assert not hasattr(msg, "__dict__")  # still slotted


def test_mypy_strict_accepts_the_example_and_refuses_its_wrong_uses() -> None:
    pytest.importorskip("mypy", reason="mypy is in the test extras; not installed here")
    env = dict(os.environ)
    source = Path(unidist_queue.__file__).resolve().parents[1]
    if (source / "setup.cfg").exists():  # a checkout (PYTHONPATH, editable install): check it
        env["MYPYPATH"] = str(source)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(EXAMPLE)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Success: no issues found in 1 source file")
