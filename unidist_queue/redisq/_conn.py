"""The connection to Redis of one RedisMessageQueue: scripts, errors, server checks (internal).

:class:`Conn` owns (or borrows) a redis-py client, ``redis.Redis`` or
``redis.cluster.RedisCluster``, set to never retry: a request that may have reached the
server is never sent again (an add could happen twice); the next call reconnects.
Operations run as Redis 7 functions (``FCALL``; the library is loaded once per server);
on "Function not found" (a restart, a failover, ``FUNCTION FLUSH``) the library is loaded,
on the node that answered, and the same call is made again, which is no resend: the
function did not run. A server without functions gets ``EVALSHA`` instead (on
``NOSCRIPT``, ``EVAL``). Every redis-py error becomes :class:`~unidist_queue.StoreError` with
redis-py's exception as ``__cause__``.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Sequence, Union

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


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


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
            client = redis.Redis.from_url(url, retry=_no_retry())
        elif not isinstance(client, (redis.Redis, RedisCluster)):
            raise TypeError(f"client must be a redis.Redis or redis.cluster.RedisCluster, "
                            f"not {type(client).__name__}")
        elif client.get_encoder().decode_responses:
            raise ValueError("client must be made with decode_responses=False (bodies are bytes)")
        else:
            client.set_retry(_no_retry())
        self.client: Client = client
        self.functions = True  # False once the server turned FUNCTION LOAD down (Redis < 7)

    def run(self, script: Script, args: Sequence[Arg]) -> Any:
        """Run ``script`` with ``KEYS[1]`` = the prefix and ``ARGV`` = ``args``; its reply.

        :raises StoreError: any Redis error (the connection, the server, the script).
        """
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
        return self.client.pubsub()

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
        if self.owned:
            try:
                self.client.close()
            except RedisError:  # pragma: no cover - closing sockets does not fail in practice
                logger.debug("closing the Redis client failed", exc_info=True)

