"""The commands ``inspect``, ``dump`` and ``compact`` (``verify`` is in :mod:`.verify`).

Each takes the :class:`~.target.Target` the store was checked as and the parsed
arguments, prints its output on stdout (notes and findings on stderr) and returns the
exit status; see :mod:`unidist_queue.cli` for what the statuses mean.
"""

from __future__ import annotations

import argparse
import os
from typing import List, Tuple

from ..queues import MessageQueue
from ..store.file import FileStore
from .rows import chosen_queues, print_messages
from .target import Target, reading, report

__all__ = ["compact", "dump", "inspect"]


def inspect(t: Target, args: argparse.Namespace) -> int:
    """The serializer, whether signed, each file with its size, each queue's counts.

    Only reads. Exit status 0 (a torn tail is a note on stderr).
    """
    with reading(t) as (mq, store):
        report(store.findings, cut=False)
        signed = "yes" if t.found.signed else "no"
        print(f"store {t.path}: serializer {store.serializer or '-'}, signed: {signed}")
        for name, size in _files(t.path):
            print(f"  {name:<16} {size:>12,} bytes")
        print(f"{'queue':<20} {'ready':>8} {'delayed':>8} {'reserved':>8}")
        for q in mq.queues():
            s = mq.stats(q)
            print(f"{q:<20} {s.ready:>8} {s.delayed:>8} {s.reserved:>8}")
    return 0


def _files(path: str) -> List[Tuple[str, int]]:
    """The files of ``path`` with their sizes (a file removed meanwhile is left out)."""
    found = []
    for name in sorted(os.listdir(path)):
        try:
            found.append((name, os.stat(os.path.join(path, name)).st_size))
        except FileNotFoundError:
            continue
    return found


def dump(t: Target, args: argparse.Namespace) -> int:
    """The ready messages of every queue (or ``--queue Q``), one per line.

    Only reads. Exit status 1 if ``--salvage`` skipped damage.

    :raises Refused: ``--queue`` names no queue of the store.
    """
    with reading(t, args.salvage) as (mq, store):
        damaged = report(store.findings, cut=False)
        for q in chosen_queues(mq.queues(), args.queue, t.path):
            print_messages(mq.messages(q), args.json)
    return 1 if damaged else 0


def compact(t: Target, args: argparse.Namespace) -> int:
    """Write a snapshot and start a new archive; print the sizes before and after.

    Takes the store's lock (a torn tail is cut). Exit status 1 if ``--salvage``
    skipped damage (the new snapshot holds what could be read).

    :raises StoreLocked: another process holds the store.
    """
    before = _size(t.path)
    store = FileStore(t.path, serializer=None, hmac_key=t.key, fsync="never",
                      recovery="salvage" if args.salvage else "tolerate_tail")
    with MessageQueue(store=store) as mq:
        damaged = report(store.findings, cut=True)
        mq.compact()
    print(f"compacted {t.path}: {before:,} -> {_size(t.path):,} bytes")
    return 1 if damaged else 0


def _size(path: str) -> int:
    return sum(size for _, size in _files(path))
