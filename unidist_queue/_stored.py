"""The stored form of a task: ``(importable function name, args, kwargs[, reply])``.

Internal. A task of a durable series (or of any series over a backend other than an
in-process :class:`~unidist_queue.MessageQueue`) is added to its queue as :data:`Body`; its
function is named by :func:`name_of` (refused at submit when it cannot be found again
under that name in a fresh interpreter) and imported again by :class:`Deferred` when
a worker runs a message that has no live task in this process (left by a process that
died, or added by other code through the queue API). A function that cannot be imported
then is not run: :class:`Deferred` says so, and the worker moves the task to the
series' dead-letter queue ``"task-dead:S"`` (:mod:`unidist_queue._queuetasks`).

The fourth element, ``reply``, a dict ``{"reply_to": "task-reply:<hex>", "key": <int>}``,
names where the task's outcome goes when a handler other than its submitter runs it (the
submitter's reply queue and the task's key there: :mod:`unidist_queue._replies`). It is
a dict of str keys and plain values so that a JSON serializer keeps it; keys this version
does not know are ignored, so a later version may add some. A body of three elements
(stored by the previous version, or added by other code) has no reply address: it runs as
a recovered task, nobody waiting on its outcome. The previous version reads only bodies
of three elements: every worker must run this version before submitters do (an older
worker removes a four-element task as "not a task", logged at WARNING).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

from .errors import SerializationError

__all__ = [
    "Body", "Deferred", "FunctionMissing", "Stored", "body_of", "name_of", "parse_body", "resolve",
]

Body = Tuple[Any, ...]
"""A task as stored: ``(importable function name, args, kwargs)``, plus a reply address
``{"reply_to": queue name, "key": int}`` when its submitter waits for the outcome."""


class Stored(NamedTuple):
    """A stored task as read back (:func:`parse_body`); ``reply_to`` and ``key`` are
    ``None`` for a task without a reply address."""

    name: str
    args: Tuple[Any, ...]
    kwargs: Dict[str, Any]
    reply_to: Optional[str] = None
    key: Optional[int] = None


def body_of(
    fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any], reply_to: str, key: int
) -> Body:
    """The stored form of ``fn(*args, **kwargs)``, with the reply address ``reply_to``
    and ``key``. O(1) plus :func:`name_of`.

    :raises SerializationError: ``fn`` has no importable name.
    """
    return (name_of(fn), tuple(args), dict(kwargs), {"reply_to": reply_to, "key": key})


def parse_body(body: Any) -> Optional[Stored]:
    """``body`` as a stored task (a JSON store gives lists back), or ``None`` if it is not one.

    A fourth element that is not a dict with a str ``reply_to`` and an int ``key`` is
    not a task either (never guessed at). O(1) plus copying the arguments.
    """
    if not (
        isinstance(body, (tuple, list)) and len(body) in (3, 4) and isinstance(body[0], str)
        and isinstance(body[1], (tuple, list)) and isinstance(body[2], dict)
    ):
        return None
    if len(body) == 3:
        return Stored(body[0], tuple(body[1]), dict(body[2]))
    reply = body[3]
    if not isinstance(reply, dict):
        return None
    reply_to, key = reply.get("reply_to"), reply.get("key")
    if not isinstance(reply_to, str) or isinstance(key, bool) or not isinstance(key, int):
        return None
    return Stored(body[0], tuple(body[1]), dict(body[2]), reply_to, key)


def name_of(fn: Callable[..., Any]) -> str:
    """The importable name ``"module:qualname"`` of ``fn``, as a fresh interpreter finds it.

    Refused: a lambda or a local function (``<`` in its ``__qualname__``), an object that
    ``module:qualname`` does not give back (a bound method of an instance, a callable
    object, a renamed function), a function of a module that cannot be imported. A
    function of ``__main__`` (or of ``__mp_main__``, the main module in a
    ``multiprocessing`` child) is stored under the name of the module that runs as
    ``__main__`` when the program was started as ``python -m pkg.mod`` (its
    ``__main__.__spec__`` names it), since a fresh interpreter imports it as
    ``pkg.mod``; it is refused when the program is a script (``python script.py``,
    ``python -c``, an interactive session: no module name), and for ``python -m pkg``
    (``pkg.__main__`` runs the program when imported).

    Cost: one import look-up (``sys.modules``) and ``getattr`` per dotted part.

    :raises SerializationError: ``fn`` cannot be found again by name in a fresh
        interpreter (the message says why and what to do).
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        raise SerializationError(f"{fn!r} has no importable name (durable tasks need module-level functions)")
    if module in _MAIN_NAMES:
        return _main_name(fn, module, qualname)
    name = f"{module}:{qualname}"
    try:
        found = resolve(name)
    except Exception as exc:
        raise SerializationError(f"{fn!r} cannot be imported back as {name!r}: {exc}") from exc
    if found is not fn and found != fn:
        raise SerializationError(f"{name!r} names another object than {fn!r}")
    return name


_MAIN_NAMES = ("__main__", "__mp_main__")  # the main module (multiprocessing's children: the second)


def _main_name(fn: Callable[..., Any], module: str, qualname: str) -> str:
    """The name of a function of the main module (see :func:`name_of`), found without
    importing it again (which would run the program's module code a second time)."""
    main = sys.modules.get(module)
    spec = getattr(main, "__spec__", None)
    real = getattr(spec, "name", None)
    if not isinstance(real, str) or not real or real in _MAIN_NAMES:
        raise SerializationError(
            f"{fn!r} is defined in the main script, which a fresh interpreter cannot import "
            "by name: move it into an importable module (or run the program with python -m)"
        )
    if real.endswith(".__main__"):
        raise SerializationError(
            f"{fn!r} is defined in {real}, which runs the program when imported: "
            "move it into another module of the package"
        )
    found: Any = main
    try:
        for part in qualname.split("."):
            found = getattr(found, part)
    except AttributeError as exc:
        raise SerializationError(f"{fn!r} cannot be found again in {real}: {exc}") from exc
    if found is not fn and found != fn:
        raise SerializationError(f"'{real}:{qualname}' names another object than {fn!r}")
    return f"{real}:{qualname}"


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


class FunctionMissing(ImportError):
    """A stored task's function cannot be imported by name (raised by :class:`Deferred`)."""


class Deferred:
    """A stored task's function, imported by name on its first call (by the worker that
    runs it, outside every lock: an import runs a module's code).

    A call whose import fails raises :class:`FunctionMissing` (the task did not run) and
    sets :attr:`missing` to why; the worker then moves the task to its series'
    dead-letter queue instead of settling it. A later call tries the import again.
    Thread-safe: two first calls import once each at most.
    """

    __slots__ = ("_fn", "missing", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._fn: Optional[Callable[..., Any]] = None
        #: Why the last import failed (``None``: it has not failed).
        self.missing: Optional[str] = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = self._fn
        if fn is None:
            try:
                fn = resolve(self.name)
            except Exception as exc:
                self.missing = f"{type(exc).__name__}: {exc}"
                raise FunctionMissing(f"task function {self.name!r} cannot be imported: {exc}") from None
            self._fn = fn
        return fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<task function {self.name}>"
