"""Shared fixtures, one per concept: a manual clock, a MessageQueue (in memory, on the
manual clock), a store directory, a TaskHandler, and a check that no test leaks threads."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, List

import pytest
from helpers import WAIT
from hypothesis import settings

from unidist_queue import MessageQueue, QueueAPI
from unidist_queue.tasks import TaskHandler

if TYPE_CHECKING:
    from redisserver import Server

    from unidist_queue import RedisMessageQueue

settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile("ci")


class ManualClock:
    """A clock that only moves when told to (``advance``), for time-driven tests."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env(*paths: str) -> dict:  # type: ignore[type-arg]
    """The environment for a child Python process that a test may SIGKILL.

    ``PYTHONPATH`` starts with the repository (and ``paths``), so the child imports this
    checkout. Coverage measurement is left out of the child: a child killed while
    coverage writes its data file would leave a damaged file behind, and a killed
    child's coverage is never saved anyway.
    """
    env = dict(os.environ)
    env.pop("COVERAGE_PROCESS_CONFIG", None)
    env.pop("COVERAGE_PROCESS_START", None)
    env["PYTHONPATH"] = os.pathsep.join([REPO, *paths, *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def mq() -> Iterator[MessageQueue]:
    """An in-memory MessageQueue, closed after the test."""
    with MessageQueue() as queue:
        yield queue


@pytest.fixture
def cmq(clock: ManualClock) -> Iterator[MessageQueue]:
    """An in-memory MessageQueue on the manual ``clock``, closed after the test."""
    with MessageQueue(clock=clock) as queue:
        yield queue


@pytest.fixture
def path(tmp_path: Path) -> str:
    """A store directory that does not exist yet (a FileStore makes it)."""
    return str(tmp_path / "s")


@pytest.fixture
def th() -> Iterator[TaskHandler]:
    """A TaskHandler with no workers, shut down (bounded) after the test."""
    handler = TaskHandler(0)
    yield handler
    handler.shutdown(timeout=WAIT)


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    """Fail a test that leaves threads running (after a short grace period)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not extra, f"threads left running: {extra}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A private redis-server for the whole test session (loopback, a free port, a
    temporary directory, AOF ``always``), stopped by its pid at the end. Skips where no
    server is installed, fails under ``CI=true``."""
    from redisserver import start_server

    server = start_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: Server) -> str:
    """The session server's URL, its data flushed before the test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.script_flush()
    client.close()
    return redis_server.url


@pytest.fixture
def rmq(redis_url: str) -> Iterator[RedisMessageQueue]:
    """A RedisMessageQueue on the flushed test server, closed after the test."""
    from unidist_queue import RedisMessageQueue

    with RedisMessageQueue(redis_url) as queue:
        yield queue


@pytest.fixture
def other(redis_url: str) -> Iterator[RedisMessageQueue]:
    """A second RedisMessageQueue client of the same namespace, closed after the test."""
    from unidist_queue import RedisMessageQueue

    with RedisMessageQueue(redis_url) as queue:
        yield queue


@pytest.fixture(params=["memory", "redis"])
def either_mq(request: pytest.FixtureRequest) -> Iterator[QueueAPI]:
    """The contract tests' queue object, once per backend: an in-memory MessageQueue, and
    a RedisMessageQueue on the flushed test server (DESIGN 12: the same contract on both).
    A contract module takes it as its ``mq`` (``mq = either_mq`` through a fixture)."""
    if request.param == "memory":
        with MessageQueue() as queue:
            yield queue
    else:
        yield request.getfixturevalue("rmq")


def memory_only(reason: str) -> pytest.MarkDecorator:
    """Mark a contract test that checks what DESIGN section 12 lists as different over
    Redis (``reason`` names it): it runs on the in-memory backend only."""
    return pytest.mark.memory_only(reason)


REDIS_ELSEWHERE = ("UQ_REDIS_TESTS=skip: CI runs the Redis tests on one interpreter "
                   "(see .ci/run), to keep its time down")


def _needs_redis(item: pytest.Item) -> bool:
    """Whether ``item`` talks to a Redis server (its folder, or a Redis fixture)."""
    names = getattr(item, "fixturenames", ())
    return ("tests/redis/" in item.nodeid or "Redis" in item.nodeid
            or any("redis" in name or name in ("rmq", "other") for name in names))


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    """Leave out the Redis run of a test marked ``memory_only`` (its reason says why),
    and, with ``UQ_REDIS_TESTS=skip`` in the environment, every test that talks to Redis
    (CI runs those on one interpreter)."""
    skip_redis = os.environ.get("UQ_REDIS_TESTS") == "skip"
    for item in list(items):
        callspec = getattr(item, "callspec", None)
        over_redis = callspec is not None and callspec.params.get("either_mq") == "redis"
        if skip_redis and (over_redis or _needs_redis(item)):
            item.add_marker(pytest.mark.skip(reason=REDIS_ELSEWHERE))
            continue
        if not over_redis:
            continue
        marker = item.get_closest_marker("memory_only")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"DESIGN 12, not over Redis: {marker.args[0]}"))


@pytest.fixture
def bell(redis_url: str) -> Iterator[Any]:
    """A Doorbell of the Redis tests (tests/redis/doorbell_helpers.py) on the test server."""
    from doorbell_helpers import doorbell

    with doorbell(redis_url) as b:
        yield b


@pytest.fixture
def pub(redis_url: str) -> Iterator[Any]:
    """A plain redis-py client that publishes on the doorbell's channels."""
    from doorbell_helpers import publisher

    with publisher(redis_url) as client:
        yield client


# -- the time the Redis tests take (issue 15 asks for it in CI) ------------------------------
_redis_time = {"tests": 0.0, "seconds": 0.0}


def _over_redis(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return (callspec is not None and callspec.params.get("either_mq") == "redis") or _needs_redis(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Add the time of each phase (set-up, call, tear-down) of a test that talks to Redis."""
    yield
    if _over_redis(item):
        _redis_time["seconds"] += call.duration
        _redis_time["tests"] += call.when == "call"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line: how many tests ran against Redis and how long they took (set-up included)."""
    if _redis_time["tests"]:
        terminalreporter.write_line(
            f"Redis tests: {int(_redis_time['tests'])} ran in {_redis_time['seconds']:.1f} s "
            "(set-up, call and tear-down; the private servers' start included)")
