"""The store a command works on: refused unless it is one, its key, and reading it.

:func:`target` checks PATH and the key before anything opens the store (nothing is
created or changed in a directory that is not a store); :func:`reading` opens it
read-only, without the lock; :func:`report` prints what opening found (a torn tail,
stretches skipped by ``--salvage``) on stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterable, Iterator, NamedTuple, Optional, Tuple

from ..errors import StoreError
from ..queues import MessageQueue
from ..store.file import FileStore
from ..store.loading import Finding
from ..store.probe import Probe, key_fits, probe

__all__ = ["Refused", "Target", "missing_code", "reading", "report", "target"]

_ATTEMPTS = 3  # opens tried when a file vanishes under a reader (another process compacted)


class Refused(Exception):
    """The command cannot run on what it was given: exit status 2, the message as its line."""


class Target(NamedTuple):
    """A store that :func:`target` accepted: its path, its HMAC key, what the probe found."""

    path: str
    key: Optional[bytes]
    found: Probe


def target(path: str, variable: Optional[str]) -> Target:
    """Check that ``path`` is a store and that the key in ``$variable`` fits it.

    Only reads. Cost: see :func:`~unidist_queue.store.probe.probe` and
    :func:`~unidist_queue.store.probe.key_fits`.

    :raises StoreError: ``path`` is not a store, or cannot be read.
    :raises Refused: a signed store without its key, a key that does not match, a key
        for an unsigned store, or ``$variable`` unset or empty.
    """
    found = probe(path)
    key = os.environ.get(variable, "").encode("utf-8") if variable is not None else b""
    if found.signed and not key:
        how = ("name the environment variable holding it with --hmac-key-env VAR" if variable is None
               else f"the environment variable {variable} is not set or empty")
        raise Refused(f"{path} is signed: its HMAC key is needed to read it ({how})")
    if variable is None:
        return Target(path, None, found)
    if not key:
        raise Refused(f"the environment variable {variable} (--hmac-key-env) is not set or empty")
    if not found.signed:
        raise Refused(f"{path} is not signed, but --hmac-key-env gave a key: refusing to trust it")
    if key_fits(path, found, key) is False:
        raise Refused(f"the key in {variable} does not match {path}: a wrong key")
    return Target(path, key, found)


@contextlib.contextmanager
def reading(t: Target, salvage: bool = False) -> Iterator[Tuple[MessageQueue, FileStore]]:
    """A read-only queue on the store ``t`` (no lock, nothing written), closed on exit.

    An open that finds a file gone (another process compacted meanwhile) is tried again.

    :raises CorruptArchive: damage that stops the open (unless ``salvage``).
    :raises StoreError: the files cannot be read.
    """
    attempt = 1
    while True:
        store = FileStore(t.path, read_only=True, serializer=None, hmac_key=t.key,
                          recovery="salvage" if salvage else "tolerate_tail")
        try:
            mq = MessageQueue(store=store)
            break
        except StoreError as exc:
            if attempt == _ATTEMPTS or not isinstance(exc.__cause__, FileNotFoundError):
                raise
            attempt += 1
    with mq:
        yield mq, store


def report(findings: Iterable[Finding], cut: bool) -> bool:
    """Print each finding on stderr; return whether any is damage (not a torn tail).

    ``cut``: the store was opened writable, so a torn tail was cut (else: would be).
    """
    damaged = False
    for f in findings:
        if f.kind == "torn":
            what = "cut" if cut else "would be cut on open"
            print(f"note: torn tail in {f.path} at offset {f.offset}: {f.size} bytes {what}", file=sys.stderr)
        elif f.kind == "gap":
            damaged = True
            print(f"salvage: records missing before offset {f.offset} of {f.path} (sequence gap)",
                  file=sys.stderr)
        else:
            damaged = True
            print(f"salvage: skipped {f.size} bytes of {f.path} at offset {f.offset}", file=sys.stderr)
    return damaged


def missing_code(exc: BaseException) -> str:
    """What a pickle could not import (``ImportError``, or pickle's ``AttributeError``),
    in words without quotes."""
    if isinstance(exc, ImportError):
        return f"no module named {exc.name}" if exc.name else "a module that cannot be imported"
    return "a name its module does not define"
