"""The stored form of a durable task: ``(importable function name, args, kwargs)``.

Internal. A task of a durable series is added to its queue as :data:`Body`; its
function is named by :func:`name_of` (refused at submit when it cannot be found again
under that name in a fresh interpreter) and found again by :func:`importer` when a
worker takes a message that has no live task in this process (left by a process that
died, or added by other code through the queue API).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, Optional, Tuple

from .errors import SerializationError

__all__ = ["Body", "body_of", "importer", "name_of", "parse_body", "resolve"]

Body = Tuple[str, Tuple[Any, ...], Dict[str, Any]]
"""A durable task as stored: ``(importable function name, args, kwargs)``."""


def body_of(fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Body:
    """The stored form of ``fn(*args, **kwargs)``.

    :raises SerializationError: ``fn`` has no importable name.
    """
    return (name_of(fn), tuple(args), dict(kwargs))


def parse_body(body: Any) -> Optional[Body]:
    """``body`` as a stored task (a JSON store gives lists back), or ``None`` if it is not one."""
    if (
        isinstance(body, (tuple, list)) and len(body) == 3 and isinstance(body[0], str)
        and isinstance(body[1], (tuple, list)) and isinstance(body[2], dict)
    ):
        return body[0], tuple(body[1]), dict(body[2])
    return None


def name_of(fn: Callable[..., Any]) -> str:
    """The importable name ``"module:qualname"`` of ``fn``.

    :raises SerializationError: ``fn`` cannot be imported back under that name
        (a lambda, a local function, a bound method, a callable object...).
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        raise SerializationError(f"{fn!r} has no importable name (durable tasks need module-level functions)")
    name = f"{module}:{qualname}"
    try:
        found = resolve(name)
    except Exception as exc:
        raise SerializationError(f"{fn!r} cannot be imported back as {name!r}: {exc}") from exc
    if found is not fn and found != fn:
        raise SerializationError(f"{name!r} names another object than {fn!r}")
    return name


def resolve(name: str) -> Callable[..., Any]:
    """Import the function named ``"module:qualname"``.

    :raises ImportError, AttributeError: it cannot be found.
    :raises TypeError: what it names is not callable.
    """
    module, _, qualname = name.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{name!r} is not callable")
    return obj  # type: ignore[no-any-return]


def importer(name: str) -> Callable[..., Any]:
    """The function named ``name``, or one that raises why it cannot be imported.

    A stored task whose function is gone still runs (and fails with the reason), so it
    is never dropped silently.
    """
    try:
        return resolve(name)
    except Exception as exc:
        error = exc

        def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise ImportError(f"task function {name!r} cannot be imported: {error}")

        return unavailable


class Deferred:
    """A stored task's function, imported by name on its first call (by the worker that
    runs it, outside every lock: an import runs a module's code). Calls then go to
    :func:`importer`'s result. Thread-safe: two first calls import once each at most."""

    __slots__ = ("_fn", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._fn: Optional[Callable[..., Any]] = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = self._fn
        if fn is None:
            fn = self._fn = importer(self.name)
        return fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<task function {self.name}>"
