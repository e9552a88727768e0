"""Importing unidist_queue never imports redis; RedisMessageQueue is imported on first use."""

from __future__ import annotations

import subprocess
import sys

from conftest import child_env


def test_importing_unidist_queue_does_not_import_redis() -> None:
    code = ("import sys, unidist_queue\n"
            "assert 'redis' not in sys.modules, 'redis imported'\n"
            "assert 'RedisMessageQueue' in unidist_queue.__all__\n"
            "cls = unidist_queue.RedisMessageQueue\n"
            "assert 'redis' in sys.modules and cls.__name__ == 'RedisMessageQueue'\n"
            "from unidist_queue import RedisMessageQueue\n"
            "assert RedisMessageQueue is cls\n"
            "try:\n    unidist_queue.NoSuchName\nexcept AttributeError:\n    pass\n"
            "else:\n    raise SystemExit('no AttributeError')\n")
    done = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
