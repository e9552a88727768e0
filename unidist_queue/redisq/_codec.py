"""Bodies to bytes and back for Redis, signed with HMAC-SHA256 when a key is given (internal).

The serializers are the store's (:mod:`unidist_queue.store.serializers`); this module
only adds the signature: with a key, the stored bytes are ``tag + payload`` where ``tag``
is the 32-byte HMAC-SHA256 of the payload, checked with :func:`hmac.compare_digest`
*before* the payload is deserialized, so a body written or changed by someone without
the key is never unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Optional, Union

from ..errors import StoreError
from ..store.serializers import Serializer, by_name

__all__ = ["TAG_SIZE", "Codec", "check_key"]

TAG_SIZE = 32


def check_key(key: Any) -> Optional[bytes]:
    """``hmac_key`` as bytes (a ``str`` is encoded as UTF-8), or ``None``.

    :raises TypeError: neither bytes, str nor None.
    :raises ValueError: empty.
    """
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError(f"hmac_key must be bytes, str or None, not {type(key).__name__}")
    if not len(key):
        raise ValueError("hmac_key must not be empty")
    return bytes(key)


class Codec:
    """``dumps(body) -> bytes`` and ``loads(bytes) -> body``, with an optional signature.

    ``Codec(serializer="pickle", hmac_key=None)``. Stateless once built: thread-safe.
    Cost: O(size of the body), plus one HMAC over it with a key.

    :raises ValueError: an unknown serializer, or an empty key.
    :raises TypeError: a key that is neither bytes nor str.
    """

    __slots__ = ("_key", "_ser")

    def __init__(self, serializer: str = "pickle", hmac_key: Union[bytes, str, None] = None) -> None:
        self._ser: Serializer = by_name(serializer)
        self._key = check_key(hmac_key)

    def dumps(self, body: Any) -> bytes:
        """The bytes to store for ``body``.

        :raises SerializationError: ``body`` cannot be serialized.
        """
        data = self._ser.dumps(body)
        if self._key is None:
            return data
        return hmac.new(self._key, data, hashlib.sha256).digest() + data

    def loads(self, data: bytes) -> Any:
        """The body stored as ``data``; with a key, only once its tag checks out.

        :raises StoreError: the tag does not match (a wrong key, or the body was changed
            in Redis: it is not deserialized), or the payload cannot be decoded.
        """
        if self._key is not None:
            tag, data = data[:TAG_SIZE], data[TAG_SIZE:]
            expected = hmac.new(self._key, data, hashlib.sha256).digest()
            if not hmac.compare_digest(expected, tag):
                raise StoreError("a message body fails its HMAC check (a wrong hmac_key, or it was "
                                 "changed in Redis): it was not deserialized")
        try:
            return self._ser.loads(data)
        except Exception as exc:
            raise StoreError(f"a message body cannot be decoded with {self._ser.name}: {exc}") from exc
