"""``inspect`` and ``dump`` of a Redis server's queues (PATH a ``redis://`` URL), run as
``python -m unidist_queue`` against the test session's private server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import List

from conftest import REPO

from unidist_queue import RedisMessageQueue


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "unidist_queue", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def fill(url: str, namespace: str = "uq") -> List[int]:
    with RedisMessageQueue(url, namespace=namespace) as mq:
        ids = mq.add_many("jobs", ["wash", {"dry": 1}])
        mq.add("later", "x", delay=600)
        return ids


def test_inspect_shows_each_queue_and_its_counts(redis_url: str) -> None:
    fill(redis_url)
    done = cli("inspect", redis_url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "namespace uq: 2 queues, durable: yes (AOF)" in lines[0]
    assert lines[2].split() == ["jobs", "2", "0", "0"]
    assert lines[3].split() == ["later", "0", "1", "0"]


def test_dump_prints_the_ready_messages_of_a_namespace(redis_url: str) -> None:
    ids = fill(redis_url, namespace="shop")
    done = cli("dump", redis_url, "--namespace", "shop", "--queue", "jobs", "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["id"], r["body"]) for r in rows] == [(ids[0], "wash"), (ids[1], {"dry": 1})]
    assert cli("dump", redis_url).stdout == ""  # the default namespace is empty


def test_an_unknown_queue_or_a_store_only_command_is_exit_status_2(redis_url: str) -> None:
    fill(redis_url)
    done = cli("dump", redis_url, "--queue", "nope")
    assert done.returncode == 2 and "has no queue nope" in done.stderr
    for command in ("verify", "compact"):
        done = cli(command, redis_url)
        assert done.returncode == 2 and "store directory" in done.stderr, done.stderr
    done = cli("dump", redis_url, "--salvage")
    assert done.returncode == 2 and "--salvage" in done.stderr


def test_no_server_there_is_exit_status_2_in_one_line() -> None:
    from redisserver import free_port

    done = cli("inspect", f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: ")
