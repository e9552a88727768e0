"""``inspect`` and ``dump`` of the queues of a Redis server (a ``redis://`` URL as PATH).

The queues of one namespace (``--namespace``, default ``uq``) are read through a
:class:`~unidist_queue.RedisMessageQueue` (its read methods, so, as any call of it, they
apply the timed changes that fell due: promotions, expiries). Nothing else is changed;
the client holds no reservation. ``--serializer`` names the bodies' serializer (the
server does not record it; default ``pickle``) and ``--hmac-key-env VAR`` the HMAC key
that signs them. Exit statuses as for a store: 0 done, 2 the command could not run (no
server there, an unknown queue, a body that fails its check or cannot be read).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Optional

from .rows import chosen_queues, print_messages
from .target import Refused

if TYPE_CHECKING:
    from ..redisq import RedisMessageQueue

__all__ = ["SCHEMES", "is_url", "redis_dump", "redis_inspect"]

SCHEMES = ("redis://", "rediss://", "unix://")


def is_url(path: str) -> bool:
    """Whether PATH names a Redis server rather than a store directory."""
    return path.startswith(SCHEMES)


def _key(variable: Optional[str]) -> Optional[bytes]:
    if variable is None:
        return None
    key = os.environ.get(variable, "").encode("utf-8")
    if not key:
        raise Refused(f"the environment variable {variable} (--hmac-key-env) is not set or empty")
    return key


def _open(args: argparse.Namespace) -> RedisMessageQueue:
    from ..redisq import RedisMessageQueue  # only here: importing the CLI never imports redis

    return RedisMessageQueue(args.path, namespace=args.namespace, serializer=args.serializer,
                             hmac_key=_key(args.hmac_key_env))


def redis_inspect(args: argparse.Namespace) -> int:
    """The server's durability and each queue's counts. Exit status 0."""
    with _open(args) as mq:
        names = mq.queues()
        durable = {True: "yes (AOF)", False: "no (no AOF)"}[mq.stats(names[0] if names else "-").durable]
        print(f"redis {args.path}, namespace {args.namespace}: {len(names)} queues, durable: {durable}")
        print(f"{'queue':<20} {'ready':>8} {'delayed':>8} {'reserved':>8}")
        for q in names:
            s = mq.stats(q)
            print(f"{q:<20} {s.ready:>8} {s.delayed:>8} {s.reserved:>8}")
    return 0


def redis_dump(args: argparse.Namespace) -> int:
    """The ready messages of every queue (or ``--queue Q``), one per line. Exit status 0.

    :raises Refused: ``--queue`` names no queue of the namespace.
    """
    with _open(args) as mq:
        for q in chosen_queues(mq.queues(), args.queue, f"namespace {args.namespace}"):
            print_messages(mq.messages(q), args.json)
    return 0
