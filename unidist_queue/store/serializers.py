"""Serializers for message bodies and snapshots: ``"pickle"`` (default) and ``"json"`` (safe).

A serializer turns a body into bytes and back. Its one-byte id is written in every file
header, so a store always knows which serializer wrote a file and refuses to read it
with another one.

* :class:`PickleSerializer` (id 1): pickle protocol 5, pinned so files do not change
  with the Python version. Represents almost any object. **Loading pickle runs code**:
  only open files you trust, or sign them (``FileStore(hmac_key=...)``).
* :class:`JsonSerializer` (id 2): the standard library's :mod:`json`, UTF-8. Loading
  runs no code. Accepts ``None``, ``bool``, ``int``, ``str``, finite ``float``, and
  lists, tuples (which come back as lists) and dicts with ``str`` keys of those;
  anything else (sets, bytes, non-string keys, NaN, custom objects) raises
  :class:`~unidist_queue.SerializationError` rather than coming back changed.

Both are stateless and thread-safe.
"""

from __future__ import annotations

import abc
import json
import math
import pickle
from typing import Any, Dict

from ..errors import SerializationError

__all__ = [
    "PICKLE_PROTOCOL",
    "JsonSerializer",
    "PickleSerializer",
    "Serializer",
    "by_id",
    "by_name",
    "pickling_error",
]

PICKLE_PROTOCOL = 5
"""The pickle protocol every file is written with."""


class Serializer(abc.ABC):
    """Base class: ``dumps`` an object to bytes, ``loads`` it back. Subclasses set ``name`` and ``ident``."""

    name = ""
    ident = 0

    @abc.abstractmethod
    def dumps(self, obj: Any) -> bytes:
        """Serialize ``obj``.

        :raises SerializationError: ``obj`` cannot be represented (the cause is chained).
        """

    @abc.abstractmethod
    def loads(self, data: Any) -> Any:
        """Deserialize bytes (or a memoryview) written by :meth:`dumps`.

        :raises Exception: whatever the decoder raises on bad input; callers check
            checksums first, so this only happens for files written by another tool.
        """


class PickleSerializer(Serializer):
    """Pickle, protocol :data:`PICKLE_PROTOCOL`. Loading runs code from the data: see the module docs."""

    name = "pickle"
    ident = 1

    def dumps(self, obj: Any) -> bytes:
        """Pickle ``obj``; every failure (``PicklingError``, ``TypeError``, ``RecursionError``,
        an exception from ``__reduce__``, ...) becomes :class:`SerializationError`. Cost: O(size)."""
        try:
            return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)
        except Exception as exc:
            raise pickling_error(obj, exc) from exc

    #: Unpickle ``data`` (:func:`pickle.loads` itself, for speed at load time). Runs code
    #: named in the data: only for trusted or signed files.
    loads = staticmethod(pickle.loads)  # type: ignore[assignment]


def pickling_error(obj: Any, exc: Exception) -> SerializationError:
    """The :class:`SerializationError` for ``obj`` failing to pickle with ``exc``."""
    return SerializationError(f"cannot pickle {type(obj).__name__}: {exc}")


class JsonSerializer(Serializer):
    """JSON for values that round-trip (tuples come back as lists). Loading runs no code."""

    name = "json"
    ident = 2

    def dumps(self, obj: Any) -> bytes:
        """Encode ``obj`` as UTF-8 JSON after checking that it round-trips. Cost: O(size).

        :raises SerializationError: a set, bytes, non-string key, NaN or infinity, a custom
            object, or nesting too deep.
        """
        try:
            _check_json(obj)
            return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
                "utf-8", "surrogatepass"
            )
        except SerializationError:
            raise
        except Exception as exc:  # RecursionError, ValueError from json, ...
            raise SerializationError(f"cannot encode {type(obj).__name__} as JSON: {exc}") from exc

    def loads(self, data: Any) -> Any:
        """Decode UTF-8 JSON."""
        return json.loads(bytes(data).decode("utf-8", "surrogatepass"))


def _check_json(obj: Any) -> None:
    """Raise :class:`SerializationError` unless ``obj`` survives a JSON round trip (up to tuples)."""
    kind = type(obj)
    if obj is None or kind is bool or kind is int or kind is str:
        return
    if kind is float:
        if not math.isfinite(obj):
            raise SerializationError(f"JSON cannot represent {obj!r} exactly")
        return
    if kind is list or kind is tuple:
        for item in obj:
            _check_json(item)
        return
    if kind is dict:
        for key, value in obj.items():
            if type(key) is not str:
                raise SerializationError(f"JSON object keys must be str, not {type(key).__name__}")
            _check_json(value)
        return
    raise SerializationError(f"JSON cannot represent {kind.__name__} exactly")


_BY_NAME: Dict[str, Serializer] = {"pickle": PickleSerializer(), "json": JsonSerializer()}
_BY_ID: Dict[int, Serializer] = {s.ident: s for s in _BY_NAME.values()}


def by_name(name: str) -> Serializer:
    """The serializer called ``name``.

    :raises ValueError: unknown name.
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"serializer must be one of {sorted(_BY_NAME)}, not {name!r}") from None


def by_id(ident: int) -> Serializer:
    """The serializer whose header id is ``ident``.

    :raises KeyError: unknown id (a damaged or foreign file).
    """
    return _BY_ID[ident]
