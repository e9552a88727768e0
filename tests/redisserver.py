"""A private ``redis-server`` (Debian's package) for the tests, on loopback only.

:func:`start_server` starts one in a temporary directory on a free port of 127.0.0.1,
with AOF ``appendfsync always`` unless told otherwise, waits until it answers, and
returns a :class:`Server` that stops it by its process id. :func:`start_cluster` starts
three such servers in cluster mode and joins them with ``redis-cli --cluster create``.

No mock and no fakeredis: the Redis tests talk to a real server. Where no server is
installed, :func:`require_server` skips with one line saying how to install it, except in
CI (``CI=true``), where a missing server is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Sequence

import pytest

INSTALL_HINT = "redis-server is not installed (Debian: apt-get install redis-server redis-tools)"
START_TIMEOUT = 20.0


def require_server() -> str:
    """The path of ``redis-server``; skip (or fail under ``CI=true``) if there is none."""
    if os.environ.get("UQ_REDIS_TESTS") == "skip":
        pytest.skip("UQ_REDIS_TESTS=skip: CI runs the Redis tests on one interpreter (see .ci/run)")
    found = shutil.which("redis-server")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(INSTALL_HINT + ": CI needs it", pytrace=False)
        pytest.skip(INSTALL_HINT)
    return found


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now, below 55536 (a cluster node
    also listens on its port + 10000, its bus port, which must be free too)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 55536 and _free(port + 10000):
            return port


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Server:
    """One running ``redis-server`` process: ``url``, ``port``, ``pid``, ``stop()``.

    ``restart()`` stops it (SIGTERM, or SIGKILL with ``kill=True``) and starts it again
    on the same port and directory, so it reloads its AOF.
    """

    def __init__(self, directory: Path, port: int, args: Sequence[str]) -> None:
        self.directory = directory
        self.port = port
        self.args = list(args)
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self._start()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _start(self) -> None:
        cmd = [require_server(), "--port", str(self.port), "--bind", "127.0.0.1",
               "--dir", str(self.directory), "--save", "", *self.args]
        log = open(self.directory / "server.log", "ab")  # noqa: SIM115 (the child keeps it)
        try:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        finally:
            log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT} s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def log_tail(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self, kill: bool = False) -> None:
        """Stop the server by its process id (SIGTERM, SIGKILL with ``kill``), and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=START_TIMEOUT)

    def restart(self, kill: bool = False) -> None:
        """Stop the server and start it again on the same port and directory (AOF reload)."""
        self.stop(kill=kill)
        self._start()


def start_server(directory: Path, *, aof: bool = True, extra: Sequence[str] = ()) -> Server:
    """Start a private server in ``directory`` on a free loopback port.

    With ``aof`` (the default) it runs with ``appendonly yes`` and ``appendfsync always``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    args: List[str] = ["--appendonly", "yes", "--appendfsync", "always"] if aof else ["--appendonly", "no"]
    return Server(directory, free_port(), [*args, *extra])


class Cluster:
    """Three masters in cluster mode on loopback, joined by ``redis-cli --cluster create``."""

    def __init__(self, directory: Path) -> None:
        self.servers: List[Server] = []
        try:
            for i in range(3):
                self.servers.append(start_server(
                    directory / f"node{i}", aof=False,
                    extra=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                           "--cluster-node-timeout", "5000"]))
            self._create()
        except BaseException:
            self.stop()
            raise

    def _create(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            pytest.skip("redis-cli is not installed (Debian: apt-get install redis-tools)")
        nodes = [f"127.0.0.1:{s.port}" for s in self.servers]
        subprocess.run([cli, "--cluster", "create", *nodes, "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + START_TIMEOUT
        waiting = list(self.servers)  # each node decides on its own that the cluster is up
        while time.monotonic() < deadline:
            out = subprocess.run([cli, "-p", str(waiting[0].port), "cluster", "info"],
                                 capture_output=True, timeout=10).stdout
            if b"cluster_state:ok" in out:
                del waiting[0]
                if not waiting:
                    return
                continue
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok on every node")

    @property
    def ports(self) -> List[int]:
        return [s.port for s in self.servers]

    def stop(self) -> None:
        for s in self.servers:
            s.stop()
