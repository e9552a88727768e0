"""Parsing the command line, running a command, and turning every failure into one line.

:func:`main` never lets a traceback out: a known failure prints ``error: ...`` on stderr
and returns its exit status (see :mod:`unidist_queue.cli`); output cut by a closed pipe
ends quietly (status 0: the reader chose to stop).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Iterator, List, NoReturn, Optional, Tuple

from .. import __version__
from ..errors import CorruptArchive, StoreError
from .redisurl import is_url
from .target import Refused, missing_code

__all__ = ["main"]

_STORE_COMMANDS = {
    "inspect": "show the files, queues and counts of a store (only reads)",
    "verify": "check every snapshot and archive record (only reads; exit 1 on damage)",
    "compact": "write a snapshot now and shorten the archive (takes the store's lock)",
    "dump": "print the ready messages (only reads)",
}
_SALVAGE = "read past mid-file damage, reporting each skipped stretch on stderr (exit status 1 if any)"


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``python -m unidist_queue`` with ``argv`` (default: ``sys.argv[1:]``); return
    the exit status: 0 done, 1 damage found, 2 the command could not run.

    Never raises: every error is one line on stderr (``--help`` and ``--version`` print
    and return 0). Not thread-safe (it writes to ``sys.stdout``), as any command line.
    """
    try:
        args = _Parser.build().parse_args(argv)
        status = _run(args)
        sys.stdout.flush()  # here, where a closed pipe can still be caught
        return status
    except SystemExit as exc:  # argparse: --help, --version, a bad argument (one line printed)
        return exc.code if isinstance(exc.code, int) else 2
    except BrokenPipeError:
        _stdout_to_devnull()
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        status, text = _describe(exc)
        print(f"error: {text}", file=sys.stderr)
        return status


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from ..demo import main as demo

        return demo(child=args.child)
    from .commands import compact, dump, inspect
    from .target import target
    from .verify import verify

    with _library_log():
        if is_url(args.path):
            return _on_redis(args)
        command = {"inspect": inspect, "verify": verify, "compact": compact, "dump": dump}[args.command]
        return command(target(args.path, args.hmac_key_env), args)


def _on_redis(args: argparse.Namespace) -> int:
    """``inspect`` or ``dump`` of a namespace of a Redis server (PATH is its URL)."""
    from .redisurl import redis_dump, redis_inspect

    if args.command == "inspect":
        return redis_inspect(args)
    if args.command == "dump":
        if args.salvage:
            raise Refused("--salvage reads a store directory, not a Redis server")
        return redis_dump(args)
    raise Refused(f"{args.command} works on a store directory; a Redis server keeps its own files")


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (``prog: error: ... (see --help)``, exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    @classmethod
    def build(cls) -> _Parser:
        parser = cls(prog="python -m unidist_queue", description="Look after a unidist_queue FileStore.")
        parser.add_argument("--version", action="version", version=f"unidist_queue {__version__}")
        commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        demo = commands.add_parser("demo", help="show the library at work for a few seconds")
        demo.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)  # the demo's first run
        for name, text in _STORE_COMMANDS.items():
            sub = commands.add_parser(name, help=text, description=text)
            sub.add_argument("path", metavar="PATH",
                             help="the store's directory (inspect, dump: or a redis:// URL)")
            sub.add_argument("--hmac-key-env", metavar="VAR",
                             help="environment variable holding the HMAC key of a signed store")
            if name == "dump":
                sub.add_argument("--queue", metavar="Q", help="only this queue")
                sub.add_argument("--json", action="store_true", help="one JSON object per line")
            if name in ("dump", "compact"):
                sub.add_argument("--salvage", action="store_true", help=_SALVAGE)
            if name in ("inspect", "dump"):
                sub.add_argument("--namespace", default="uq", metavar="NS",
                                 help="with a redis:// URL: the namespace of the queues (default uq)")
                sub.add_argument("--serializer", default="pickle", choices=("pickle", "json"),
                                 help="with a redis:// URL: how the bodies were serialized (default pickle)")
        return parser


@contextlib.contextmanager
def _library_log() -> Iterator[None]:
    """While a command runs, the library's warnings go to stderr as ``warning: ...`` lines,
    except those about findings, which the commands report themselves."""
    logger = logging.getLogger("unidist_queue")
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_Formatter("%(levelname)s: %(message)s"))
    handler.addFilter(lambda record: not getattr(record, "finding", False))
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


class _Formatter(logging.Formatter):
    """``warning: message`` on one line, whatever the record carries."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {' '.join(record.getMessage().split())}"


def _describe(exc: Exception) -> Tuple[int, str]:
    """The exit status and the one line for an error that ended a command."""
    text = _text(exc)
    if isinstance(exc, CorruptArchive):
        if isinstance(exc.__cause__, (ImportError, AttributeError)):
            return 2, (f"{exc.path}: the object at offset {exc.offset} names code that cannot be imported "
                       f"here ({missing_code(exc.__cause__)}): run it where the modules of the "
                       "application can be imported")
        return 1, text
    if isinstance(exc, (Refused, StoreError, OSError)):
        return 2, text
    return 2, f"unexpected {type(exc).__name__}: {text}"


def _text(exc: BaseException) -> str:
    """``exc`` as one line, without the quotes of a repr (a ``KeyError``'s, an
    ``OSError``'s file name): a ``StoreError`` caused by an ``OSError`` keeps only its
    ``strerror``."""
    cause = exc.__cause__
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    elif isinstance(exc, KeyError) and len(exc.args) == 1:
        text = str(exc.args[0])
    else:
        text = str(exc) or type(exc).__name__
        if isinstance(cause, OSError) and cause.strerror:
            text = text.replace(str(cause), cause.strerror)
    return " ".join(text.split())


def _stdout_to_devnull() -> None:
    """After a closed pipe: point stdout at devnull, so the final flush at exit is quiet."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
