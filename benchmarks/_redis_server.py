"""A private, CPU-pinned ``redis-server`` for the Redis benchmark.

The server is the tests' own (``tests/redisserver.py``: loopback only, a free port, a
temporary directory, stopped by its process id); this module only adds the pinning the
issue asks for: loopback round trips move 3-4x when the scheduler puts a client on the
server's CPU, so the server runs on the first CPU this process may use and every client
(this process, the threads it starts later and the processes it spawns) on the others.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, List, Optional, Set

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from redisserver import INSTALL_HINT, Server, start_server

__all__ = ["INSTALL_HINT", "PinnedServer", "installed"]


def installed() -> bool:
    """Whether ``redis-server`` is on the PATH (the benchmark cannot run without it)."""
    return shutil.which("redis-server") is not None


class PinnedServer:
    """A private ``redis-server`` on CPU ``server_cpus``; this process moves to ``client_cpus``.

    ``aof``: ``appendonly yes`` with ``appendfsync always`` (durability as
    ``fsync="always"``); without it the server keeps nothing on disk, which measures the
    round trips and the scripts rather than the disk. ``stop()`` stops the server and
    gives this process its CPUs back. With a single CPU nothing is pinned
    (``pinned`` is False).
    """

    def __init__(self, directory: Path, *, aof: bool = False) -> None:
        if not installed():
            raise RuntimeError(INSTALL_HINT)
        self.original: Set[int] = set(os.sched_getaffinity(0))
        cpus = sorted(self.original)
        self.pinned = len(cpus) >= 2
        self.server_cpus: Set[int] = {cpus[0]} if self.pinned else set(cpus)
        self.client_cpus: Set[int] = set(cpus[1:]) if self.pinned else set(cpus)
        # the server forks from this thread: it inherits the affinity set here, and so do
        # the threads it starts (bio, io threads) and any child it forks (a rewrite)
        os.sched_setaffinity(0, self.server_cpus)
        try:
            self.server: Server = start_server(directory, aof=aof)
        finally:
            os.sched_setaffinity(0, self.client_cpus)
        for tid in self._threads():  # belt and braces: every thread it has now
            os.sched_setaffinity(tid, self.server_cpus)

    @property
    def url(self) -> str:
        return self.server.url

    def url_db(self, db: int) -> str:
        """The server's URL for database ``db`` (each system measured gets its own)."""
        return f"redis://127.0.0.1:{self.server.port}/{db}"

    def _threads(self) -> List[int]:
        try:
            return [int(t) for t in os.listdir(f"/proc/{self.server.pid}/task")]
        except OSError:
            return []

    def describe(self) -> str:
        """One line for the table's notes."""
        if not self.pinned:
            return "server and clients share the only CPU (nothing pinned)"
        return (f"redis-server pinned to CPU {sorted(self.server_cpus)}, clients to CPU "
                f"{sorted(self.client_cpus)} (os.sched_setaffinity)")

    def stop(self) -> None:
        self.server.stop()
        os.sched_setaffinity(0, self.original)

    def __enter__(self) -> PinnedServer:
        return self

    def __exit__(self, *exc: Optional[Any]) -> None:
        self.stop()
