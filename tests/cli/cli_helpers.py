"""Shared by the command-line tests: run ``python -m unidist_queue`` as a subprocess, make
stores, and take a picture of a directory to show that a command changed nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

from unidist_queue import MessageQueue
from unidist_queue.store.file import FileStore

TIMEOUT = 120
_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
# As root, a child reads files whatever their mode; without these capabilities it obeys them.
_NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                "--inh-caps=-dac_override,-dac_read_search"]
CAN_BE_DENIED = not _ROOT or shutil.which("setpriv") is not None
"""Whether :func:`run` can meet a file it may not read (as root: with ``setpriv``)."""


def run(*args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    """``python -m unidist_queue *args`` in a subprocess; ``env`` is added to this one's.
    As root, the child runs without the capabilities that read any file (see
    :data:`CAN_BE_DENIED`)."""
    full = dict(os.environ)
    full.update(env or {})
    prefix = _NO_OVERRIDE if _ROOT and CAN_BE_DENIED else []
    return subprocess.run([*prefix, sys.executable, "-m", "unidist_queue", *args], capture_output=True,
                          text=True, timeout=TIMEOUT, env=full)


def error_line(done: subprocess.CompletedProcess[str], status: int = 2) -> str:
    """Check that ``done`` exited with ``status`` and one ``error:`` line on stderr, no
    traceback and no stray quotes; return that line."""
    assert done.returncode == status, (done.args, done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    assert "'" not in lines[0] and '"' not in lines[0], lines[0]
    return lines[0]


Picture = Dict[str, Tuple[int, int, bytes]]


def picture(path: Path) -> Picture:
    """Every entry under ``path`` (itself included): its mode, mtime and bytes (files)."""
    found: Picture = {}
    if not os.path.lexists(path):
        return found
    for root, dirs, files in os.walk(path):
        for name in [".", *dirs, *files]:
            p = os.path.join(root, name)
            st = os.lstat(p)
            data = Path(p).read_bytes() if os.path.isfile(p) and os.access(p, os.R_OK) else b""
            found[os.path.relpath(p, path)] = (st.st_mode, st.st_mtime_ns, data)
    if os.path.isfile(path):
        st = os.lstat(path)
        found["."] = (st.st_mode, st.st_mtime_ns, b"")
    return found


def make_store(path: Path, n: int = 3, **options: object) -> str:
    """A store at ``path`` with ``n`` messages in ``jobs`` and one in ``other``, closed."""
    with MessageQueue(store=FileStore(path, **options)) as mq:  # type: ignore[arg-type]
        for i in range(n):
            mq.add("jobs", i)
        mq.add("other", "x")
    return str(path)


class Order:
    """A message body whose class this module defines: a child without this folder on
    its path cannot unpickle it."""

    def __init__(self, n: int) -> None:
        self.n = n
