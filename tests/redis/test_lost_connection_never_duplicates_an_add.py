"""A lost connection fails the call with ``StoreError`` and never duplicates an add (DESIGN 12).

* The server stops under a client: each call fails with ``StoreError`` (redis-py's
  exception as ``__cause__``); once the server is back the next call reconnects, and the
  queue holds exactly the adds that returned.
* The worst case, an add that ran on the server but whose reply was lost: a proxy
  between client and server cuts the connection instead of passing the reply on. The call
  fails with ``StoreError``; the message is there exactly once (the request was not sent
  again), and the client's next call works.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from typing import Iterator, List, Optional

import pytest
import redis
from procs_helpers import WAIT, wait_subscribed
from redisserver import Server, start_server

from unidist_queue import StoreError
from unidist_queue.redisq import RedisMessageQueue


class CuttingProxy:
    """A TCP proxy on loopback to ``127.0.0.1:upstream``. After :meth:`cut_reply_to`, the
    reply to the next request holding ``marker`` is dropped and its connection closed on
    both sides, as when a network fails after the request got through."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = int(self.listener.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.cuts = 0
        self._marker: Optional[bytes] = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._socks: List[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, name="proxy-accept")]
        self._threads[0].start()

    def cut_reply_to(self, marker: bytes) -> None:
        with self._lock:
            self._marker = marker

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream))
            doomed = threading.Event()  # this connection's next reply is dropped
            with self._lock:
                self._socks += [client, server]
                pumps = [threading.Thread(target=self._pump, args=(client, server, doomed, False)),
                         threading.Thread(target=self._pump, args=(server, client, doomed, True))]
                self._threads += pumps
            for t in pumps:
                t.start()

    def _pump(self, src: socket.socket, dst: socket.socket, doomed: threading.Event, replies: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if replies and doomed.is_set():
                self.cuts += 1
                break
            if not replies:
                with self._lock:
                    if self._marker is not None and self._marker in data:
                        self._marker = None
                        doomed.set()
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self._threads[0].join(WAIT)
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for t in threads:
            t.join(WAIT)
            assert not t.is_alive()
        for s in self._socks:
            s.close()
        self.listener.close()


@pytest.fixture
def proxy(redis_server: Server, redis_url: str) -> Iterator[CuttingProxy]:
    p = CuttingProxy(redis_server.port)
    yield p
    p.close()


def test_an_add_whose_reply_is_lost_is_not_sent_again(proxy: CuttingProxy, redis_url: str) -> None:
    with RedisMessageQueue(proxy.url) as mq, RedisMessageQueue(redis_url) as direct:
        mq.add("q", "warm")  # connected, its scripts loaded
        proxy.cut_reply_to(b"once")
        with pytest.raises(StoreError) as caught:
            mq.add("q", "once")
        assert isinstance(caught.value.__cause__, redis.RedisError)
        assert proxy.cuts == 1
        assert direct.all("q") == ["warm", "once"]

        proxy.cut_reply_to(b"b1")
        with pytest.raises(StoreError):
            mq.add_many("q", ["b1", "b2"])
        assert proxy.cuts == 2
        assert direct.all("q") == ["warm", "once", "b1", "b2"]

        mq.add("q", "after")  # the next call reconnects
        assert direct.all("q") == ["warm", "once", "b1", "b2", "after"]
        ids = [m.id for m in direct.messages("q")]
        assert ids == sorted(set(ids))


def test_a_stopped_server_fails_calls_and_the_next_call_reconnects(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    try:
        mq = RedisMessageQueue(server.url)
        try:
            acked = [*mq.add_many("q", ["a", "b"]), mq.add("q", "c")]
            server.stop(kill=True)
            for call in (lambda: mq.add("q", "lost"), lambda: mq.add_many("q", ["x", "y"]),
                         lambda: mq.count("q"), lambda: mq.get("q", timeout=0),
                         lambda: mq.reserve("q", timeout=0)):
                with pytest.raises(StoreError) as caught:
                    call()
                assert isinstance(caught.value.__cause__, redis.RedisError)
            server.restart()
            assert mq.all("q") == ["a", "b", "c"]
            assert [m.id for m in mq.messages("q")] == acked
            assert mq.add("q", "d") > acked[-1]
        finally:
            mq.close()
    finally:
        server.stop()


def test_a_blocked_get_survives_a_server_restart_or_fails(tmp_path: Path) -> None:
    """A ``get`` blocked while the server restarts either fails with ``StoreError`` or
    keeps waiting and gets the message added once the server is back; it never hangs."""
    server = start_server(tmp_path / "server")
    try:
        raw = redis.Redis.from_url(server.url)
        with raw, RedisMessageQueue(server.url) as waiter:
            outcome: List[object] = []

            def wait() -> None:
                try:
                    outcome.append(waiter.get("q", timeout=WAIT))
                except StoreError as exc:
                    outcome.append(exc)

            t = threading.Thread(target=wait)
            t.start()
            wait_subscribed(raw)
            server.restart(kill=True)
            with RedisMessageQueue(server.url) as adder:
                adder.add("q", "after the restart")
                t.join(WAIT)
                assert not t.is_alive(), "the get hangs"
                if outcome == ["after the restart"]:
                    assert adder.count("q") == 0
                else:
                    assert isinstance(outcome[0], StoreError) and adder.count("q") == 1
    finally:
        server.stop()
