"""The connection to Redis of one RedisMessageQueue: scripts, errors, server checks (internal).

:class:`Conn` owns (or borrows) a redis-py client, ``redis.Redis`` or
``redis.cluster.RedisCluster``, set to never retry: a request that may have reached the
server is never sent again (an add could happen twice); the next call reconnects.
Operations run as Redis 7 functions (``FCALL``; the library is loaded once per server);
on "Function not found" (a restart, a failover, ``FUNCTION FLUSH``) the library is loaded,
on the node that answered, and the same call is made again, which is no resend: the
function did not run. A server without functions gets ``EVALSHA`` instead (on
``NOSCRIPT``, ``EVAL``).

With a ``redis.Redis``, an operation goes straight to a connection of the client's pool
(``send_command``/``read_response``), skipping the client's per-command layers (retries
are off anyway, and ``FCALL`` replies need no callback), which are a third of a round
trip's cost from Python; the connections it holds are reused, one per concurrent caller,
and go back to the pool at :meth:`Conn.close`. A failed call disconnects its connection,
so the next call connects again. Every redis-py error becomes :class:`~unidist_queue.StoreError` with
redis-py's exception as ``__cause__``.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.retry import Retry

from ..errors import StoreError
from ._scripts import LIBRARY, Script

__all__ = ["Conn"]

logger = logging.getLogger("unidist_queue.redisq")

Client = Union["redis.Redis", RedisCluster]
Arg = Union[str, bytes, int, float]
Packer = Callable[[Any], Any]


def _fresh(conn: Any) -> None:
    """As the pool checks a connection it hands out: one with something to read (the
    server closed it, say after a restart) is dropped, so the next send connects afresh
    (connecting is the one thing retried)."""
    try:
        if conn.can_read():
            conn.disconnect()
    except (RedisError, OSError):
        conn.disconnect()


def _packer(client: Client) -> Optional[Packer]:
    """hiredis's ``pack_command`` when it encodes as the client would (UTF-8, strict):
    a tenth of the cost of the client's own packing; else None."""
    encoder = client.get_encoder()
    if (encoder.encoding, encoder.encoding_errors) != ("utf-8", "strict"):
        return None
    try:  # by name: hiredis is optional and ships no type stubs
        hiredis = importlib.import_module("hiredis")
    except ImportError:  # pragma: no cover - redis-py works without hiredis
        return None
    packer: Packer = hiredis.pack_command
    return packer


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


MAX_CONNECTIONS = 2**31
"""The pool of a client made from a URL: unbounded in practice (as redis-py before 8),
so a call never fails for want of a connection; it holds one only while it runs."""


class Conn:
    """One client, the namespace prefix its scripts route by, and the server's settings.

    ``Conn(url, client, prefix)``: with ``client=None`` a ``redis.Redis`` is made from
    ``url`` (and closed by :meth:`close`); a client passed in is used as it is (its
    retries turned off) and left open. Thread-safe as redis-py's clients are (a
    connection pool). Cost of :meth:`run`: one round trip (two after ``NOSCRIPT``).

    :raises TypeError: ``client`` is not a redis-py ``Redis``/``RedisCluster``, or ``url``
        is not a str.
    :raises ValueError: the client decodes responses (bodies are bytes), or a bad URL.
    """

    def __init__(self, url: str, client: Optional[Client], prefix: str) -> None:
        self.prefix = prefix
        self.owned = client is None
        if client is None:
            if not isinstance(url, str):
                raise TypeError(f"url must be a str, not {type(url).__name__}")
            # one connection per thread in a call at once, as many as that takes (redis-py 8
            # caps a pool at 100 by default and then fails calls: "Too many connections")
            client = redis.Redis.from_url(url, retry=_no_retry(), max_connections=MAX_CONNECTIONS)
        elif not isinstance(client, (redis.Redis, RedisCluster)):
            raise TypeError(f"client must be a redis.Redis or redis.cluster.RedisCluster, "
                            f"not {type(client).__name__}")
        elif client.get_encoder().decode_responses:
            raise ValueError("client must be made with decode_responses=False (bodies are bytes)")
        else:
            client.set_retry(_no_retry())
        self.client: Client = client
        self.functions = True  # False once the server turned FUNCTION LOAD down (Redis < 7)
        # idle connections of a redis.Redis's pool held for direct calls (list.pop and
        # list.append are atomic: no lock); None for a cluster; dropped after a fork
        self._pool = None if isinstance(client, RedisCluster) else client.connection_pool
        self._idle: Optional[List[Any]] = None if self._pool is None else []
        self._pid = os.getpid()
        self._pack = _packer(client)

    def run(self, script: Script, args: Sequence[Arg]) -> Any:
        """Run ``script`` with ``KEYS[1]`` = the prefix and ``ARGV`` = ``args``; its reply.

        :raises StoreError: any Redis error (the connection, the server, the script).
        """
        if self._idle is not None and self.functions:
            return self._direct(script, args)
        client = self.client
        try:
            if self.functions:
                try:
                    return client.fcall(script.function, 1, self.prefix, *args)
                except ResponseError as exc:
                    if "function not found" not in str(exc).lower():
                        raise
                if self._load():
                    return client.fcall(script.function, 1, self.prefix, *args)
            try:
                return client.evalsha(script.sha, 1, self.prefix, *args)
            except NoScriptError:
                return client.eval(script.source, 1, self.prefix, *args)
        except (RedisError, OSError) as exc:  # OSError: a socket closed under the call
            raise StoreError(f"Redis failed the {script.name} script: {exc}") from exc

    def _direct(self, script: Script, args: Sequence[Arg]) -> Any:
        """:meth:`run` with ``FCALL`` on a connection of its own (a ``redis.Redis``)."""
        idle = self._idle
        if self._pid != os.getpid():  # a forked child never uses its parent's sockets
            self._idle = idle = []
            self._pid = os.getpid()
        assert idle is not None
        command = ("FCALL", script.function, 1, self.prefix, *args)
        packed = self._pack(command) if self._pack is not None else None  # (before taking a connection)
        try:
            conn = idle.pop()
            _fresh(conn)
        except IndexError:
            assert self._pool is not None  # (a redis.Redis: idle is a list)
            try:
                conn = self._pool.get_connection()  # (connects)
            except (RedisError, OSError) as exc:
                raise StoreError(f"Redis failed the {script.name} script: {exc}") from exc
        try:
            for attempt in (1, 2):
                conn.send_packed_command([packed] if packed is not None else conn.pack_command(*command))
                try:
                    return conn.read_response()
                except ResponseError as exc:
                    if attempt == 2 or "function not found" not in str(exc).lower():
                        raise
                if not self._load():  # no functions on this server: scripts from now on
                    return self.run(script, args)
            raise AssertionError("unreachable")  # pragma: no cover
        except ResponseError as exc:
            raise StoreError(f"Redis failed the {script.name} script: {exc}") from exc
        except BaseException as exc:  # the connection may be mid-reply: start afresh
            conn.disconnect()
            if isinstance(exc, (RedisError, OSError)):
                raise StoreError(f"Redis failed the {script.name} script: {exc}") from exc
            raise
        finally:
            idle.append(conn)

    def _load(self) -> bool:
        """Load the function library on the server holding the namespace; False if the
        server has no functions (then scripts are used from now on)."""
        client = self.client
        try:
            if isinstance(client, RedisCluster):
                node = client.get_node_from_key(self.prefix)  # type: ignore[no-untyped-call]
                client.execute_command("FUNCTION LOAD", LIBRARY, target_nodes=node)  # type: ignore[no-untyped-call]
            else:
                client.function_load(LIBRARY)
        except ResponseError as exc:
            text = str(exc).lower()
            if "already exists" in text:  # another client loaded it meanwhile
                return True
            if "unknown command" in text or "unknown subcommand" in text:
                self.functions = False
                return False
            raise
        return True

    def pubsub(self) -> Any:
        """A new pub/sub object of the client (for the doorbell)."""
        client: Any = self.client  # redis-py types pubsub() in some releases, not in others
        return client.pubsub()

    def info(self, section: str) -> Dict[str, Any]:
        """``INFO section`` of the server that holds the namespace (its node, in a cluster).

        :raises StoreError: Redis cannot be reached.
        """
        client = self.client
        try:
            if isinstance(client, RedisCluster):
                node = client.get_node_from_key(self.prefix)  # type: ignore[no-untyped-call]
                return client.info(section, target_nodes=node)
            return client.info(section)
        except RedisError as exc:
            raise StoreError(f"cannot read INFO {section} from Redis: {exc}") from exc

    def check(self, require_aof: bool) -> bool:
        """Check the server's settings; return whether AOF is on.

        Logs a WARNING for a ``maxmemory-policy`` other than ``noeviction`` (eviction
        silently deletes queues).

        :raises StoreError: ``require_aof`` and AOF is off, or Redis cannot be reached.
        """
        aof = int(self.info("persistence").get("aof_enabled", 0)) == 1
        if require_aof and not aof:
            raise StoreError("require_aof=True: the Redis server runs without AOF (appendonly no)")
        policy = self.info("memory").get("maxmemory_policy", "noeviction")
        if policy != "noeviction":
            logger.warning("Redis runs with maxmemory-policy %s: it may silently delete queues "
                           "under memory pressure (use noeviction)", policy)
        return aof

    def close(self) -> None:
        """Close the client if this object made it (idempotent); never raises."""
        idle, self._idle = self._idle, None
        if not self.owned and self._pool is not None:
            for conn in idle or ():
                self._pool.release(conn)
        if self.owned:
            try:
                self.client.close()
            except RedisError:  # pragma: no cover - closing sockets does not fail in practice
                logger.debug("closing the Redis client failed", exc_info=True)

