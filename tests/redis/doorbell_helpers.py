"""What the doorbell tests share: a Doorbell on the test server, a publisher, bounded
waits, and an event loop running in a thread.

Every wait is bounded by :data:`WAIT`: a hang fails the test, speed never does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from typing import Any, Callable, Coroutine, Iterator, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from unidist_queue.redisq._doorbell import Doorbell

T = TypeVar("T")

WAIT = 30.0
PREFIX = "uq:{t}:n:"
ORIGIN = b"this-client"


def channel_of(queue: str) -> str:
    return PREFIX + queue


@contextlib.contextmanager
def doorbell(url: str, origin: bytes = ORIGIN, retries: bool = False) -> Iterator[Doorbell]:
    """A Doorbell whose connections come from a client of ``url``; closed afterwards.

    The client does not retry (as the queue builds it), unless ``retries``: then it has
    redis-py's default retries, which connect again inside a failed read.
    """
    client = redis.Redis.from_url(url) if retries else redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0))
    bell = Doorbell(client.pubsub, channel_of, origin)
    try:
        yield bell
    finally:
        bell.close()
        client.close()


@contextlib.contextmanager
def publisher(url: str) -> Iterator[redis.Redis]:
    """A plain client of ``url`` (another connection than the doorbell's)."""
    client = redis.Redis.from_url(url)
    try:
        yield client
    finally:
        client.close()


def notify(client: redis.Redis, queue: str, origin: bytes = b"another-client", kind: int = 1) -> None:
    """PUBLISH what a script of the client ``origin`` publishes for a change to ``queue``
    (``origin:kind``; kind 1: messages became ready)."""
    client.publish(channel_of(queue), origin + b":%d" % kind)


def eventually(check: Callable[[], bool]) -> None:
    """Wait (bounded by WAIT) until ``check()`` is true."""
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, "the condition never became true"
        time.sleep(0.005)


def in_thread(fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
    """Run ``fn`` in a new daemon thread; its outcome in the returned future."""
    fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            fut.set_result(fn())
        except BaseException as error:
            fut.set_exception(error)

    threading.Thread(target=run, daemon=True).start()
    return fut


class LoopThread:
    """An event loop running in its own thread, closed (and the thread joined) on exit."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LoopThread:
        self.thread.start()
        return self

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        self.loop.close()


def subscribers(client: redis.Redis, queue: str) -> int:
    """How many connections the server has subscribed to ``queue``'s channel."""
    return int(dict(client.pubsub_numsub(channel_of(queue)))[channel_of(queue).encode()])
