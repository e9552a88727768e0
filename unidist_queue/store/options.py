"""The checked settings of a FileStore: its constructor's keyword arguments, validated."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple

from .serializers import Serializer, by_name

__all__ = ["FSYNC", "RECOVERY", "Options", "check"]

FSYNC = ("always", "interval", "never")
RECOVERY = ("tolerate_tail", "salvage")


class Options(NamedTuple):
    """A FileStore's settings (see :class:`~unidist_queue.FileStore` for each)."""

    fsync: str
    fsync_interval: float
    compact_every: Optional[int]
    serializer: Optional[Serializer]  # None: the one the files were written with
    key: Optional[bytes]  # the HMAC key
    recovery: str
    read_only: bool


def check(fsync: Any, fsync_interval: Any, compact_every: Any, serializer: Any, hmac_key: Any,
          recovery: Any, read_only: Any) -> Options:
    """The settings, checked in this order (the first bad one raises). Pure, O(1).

    :raises TypeError, ValueError: a bad argument (named in the message).
    """
    fsync, interval, compact_every = _check_policy(fsync, fsync_interval, compact_every)
    ser = None if serializer is None else by_name(serializer)
    key = _check_key(hmac_key)
    if recovery not in RECOVERY:
        raise ValueError(f"recovery must be one of {RECOVERY}, not {recovery!r}")
    if not isinstance(read_only, bool):
        raise TypeError("read_only must be a bool")
    return Options(fsync, interval, compact_every, ser, key, recovery, read_only)


def _check_policy(fsync: Any, interval: Any, compact_every: Any) -> Tuple[str, float, Optional[int]]:
    if fsync not in FSYNC:
        raise ValueError(f"fsync must be one of {FSYNC}, not {fsync!r}")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise TypeError(f"fsync_interval must be a number of seconds, not {type(interval).__name__}")
    if not interval > 0:
        raise ValueError(f"fsync_interval must be positive, not {interval!r}")
    if compact_every is not None:
        if isinstance(compact_every, bool) or not isinstance(compact_every, int):
            raise TypeError(f"compact_every must be an int or None, not {type(compact_every).__name__}")
        if compact_every < 1:
            raise ValueError(f"compact_every must be positive, not {compact_every!r}")
    return fsync, float(interval), compact_every


def _check_key(key: Any) -> Optional[bytes]:
    if key is None:
        return None
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError(f"hmac_key must be bytes, not {type(key).__name__}")
    if not len(key):
        raise ValueError("hmac_key must not be empty")
    return bytes(key)
