"""Command line: ``python -m unidist_queue {inspect,verify,compact,dump,demo}``.

* ``inspect PATH``: the store's files and sizes, its queues and their counts.
* ``verify PATH``: check every snapshot and record; exit status 1 on damage, 0 (with a
  note) when only a torn tail was found, which opening the store would cut. Only the
  end of the history can be torn: a damaged tail in an archive that records in a newer
  archive follow is damage.
* ``compact PATH``: write a snapshot and shorten the archive (takes the store's lock).
* ``dump PATH [--queue Q] [--json]``: the ready messages, one per line.
* ``demo``: a short run of the library.

The serializer is read from the files. ``--hmac-key-env VAR`` names the environment
variable holding the HMAC key of a signed store. ``inspect``, ``verify`` and ``dump``
only read (no lock, nothing changed) and may run while another process holds the store;
on a pickle store without a key they unpickle the files, which runs code from them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any, List, NamedTuple, Optional, Tuple

from .errors import StoreError
from .store.file import FileStore

_STORE_COMMANDS = {
    "inspect": "show the files, queues and counts of a store",
    "verify": "check every snapshot and archive record (exit 1 on damage)",
    "compact": "write a snapshot now and shorten the archive",
    "dump": "print the ready messages",
}


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` and run the command; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from .demo import main as demo

        return demo(child=args.child)
    try:
        key = _key(args.hmac_key_env)
        command = {"inspect": _inspect, "verify": _verify, "compact": _compact, "dump": _dump}[args.command]
        return command(args, key)
    except (StoreError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unidist_queue")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="show the library at work for a few seconds")
    demo.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)  # the demo's first run
    for name, text in _STORE_COMMANDS.items():
        sub = commands.add_parser(name, help=text)
        sub.add_argument("path", help="the store's directory")
        sub.add_argument("--hmac-key-env", metavar="VAR", help="environment variable holding the HMAC key")
        if name == "dump":
            sub.add_argument("--queue", help="only this queue")
            sub.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _key(variable: Optional[str]) -> Optional[bytes]:
    if variable is None:
        return None
    if variable not in os.environ:
        raise KeyError(f"environment variable {variable} is not set")
    return os.environ[variable].encode("utf-8")


def _reader(args: argparse.Namespace, key: Optional[bytes]) -> Any:
    from .queues import MessageQueue

    if not os.path.isdir(args.path):
        raise StoreError(f"{args.path} is not a directory")
    return MessageQueue(store=FileStore(args.path, read_only=True, serializer=None, hmac_key=key))


def _inspect(args: argparse.Namespace, key: Optional[bytes]) -> int:
    with _reader(args, key) as mq:
        store = mq.store
        assert isinstance(store, FileStore)
        print(f"store {args.path}: serializer {store.serializer or '-'}, signed: {'yes' if key else 'no'}")
        for name in sorted(os.listdir(args.path)):
            print(f"  {name:<16} {os.path.getsize(os.path.join(args.path, name)):>12,} bytes")
        print(f"{'queue':<20} {'ready':>8} {'delayed':>8} {'reserved':>8}")
        for q in mq.queues():
            s = mq.stats(q)
            print(f"{q:<20} {s.ready:>8} {s.delayed:>8} {s.reserved:>8}")
    return 0


def _compact(args: argparse.Namespace, key: Optional[bytes]) -> int:
    from .queues import MessageQueue

    before = _size(args.path)
    with MessageQueue(store=FileStore(args.path, serializer=None, hmac_key=key, fsync="never")) as mq:
        mq.compact()
    print(f"compacted {args.path}: {before:,} -> {_size(args.path):,} bytes")
    return 0


def _size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))


def _dump(args: argparse.Namespace, key: Optional[bytes]) -> int:
    with _reader(args, key) as mq:
        names = [args.queue] if args.queue is not None else mq.queues()
        for q in names:
            for m in mq.messages(q):
                if args.json:
                    row = {"id": m.id, "queue": m.queue, "enqueued_at": m.enqueued_at,
                           "attempts": m.attempts, "body": m.body}
                    print(json.dumps(row, default=repr, ensure_ascii=False))
                else:
                    print(f"{m.id}\t{m.queue}\t{m.enqueued_at:.6f}\t{m.body!r}")
    return 0


class _Checked(NamedTuple):
    """What checking one file found."""

    name: str
    ok: bool
    text: str
    records: int = 0  # valid archive records
    torn: Optional[Tuple[int, str]] = None  # an archive's damaged tail: (offset, the note on it)


def _verify(args: argparse.Namespace, key: Optional[bytes]) -> int:
    if not os.path.isdir(args.path):
        raise StoreError(f"{args.path} is not a directory")
    checked: List[_Checked] = []
    for name in sorted(os.listdir(args.path), key=_order):
        path = os.path.join(args.path, name)
        if name.startswith("snapshot.") and not name.endswith(".tmp"):
            checked.append(_Checked(name, *_verify_snapshot(path, key)))
        elif name.startswith("archive.") and not name.endswith(".tmp"):
            checked.append(_verify_archive(name, path, key))
    status = 0
    for i, c in enumerate(checked):
        ok, text = c.ok, c.text
        if c.torn is not None:
            followed = [n.name for n in checked[i + 1 :] if n.records]
            if followed:  # records were written after it: it was complete then
                ok = False
                text += (f"; DAMAGED at offset {c.torn[0]}: a damaged end of an archive that "
                         f"the records of {followed[0]} follow (only the newest archive can be torn)")
            else:
                text += c.torn[1]
        print(f"{c.name}: {text}")
        status = max(status, 0 if ok else 1)
    print("damage found" if status else "ok")
    return status


def _order(name: str) -> Tuple[int, str]:
    m = re.search(r"\.(\d+)$", name)
    return (int(m.group(1)) if m else -1, name)


def _verify_snapshot(path: str, key: Optional[bytes]) -> Tuple[bool, str]:
    from .store.snapshot import read_snapshot

    try:
        snap = read_snapshot(path, key, None)
    except StoreError as exc:
        return False, f"DAMAGED: {exc}"
    return True, f"ok (state up to seq {snap.last_seq})"


def _verify_archive(name: str, path: str, key: Optional[bytes]) -> _Checked:
    """Check one archive; a damaged tail is judged by :func:`_verify` (is a newer archive's
    record after it?)."""
    from .store.archive import ArchiveScan, Framer, unpack_header
    from .store.serializers import by_id
    from .store.snapshot import check_settings

    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return _Checked(name, True, "empty file (ignored on open)")
    try:
        header = unpack_header(data, path)
        check_settings(path, header.serializer, header.flags, key, None)
        scan = ArchiveScan(data, path, Framer(header, key), salvage=True)
        for _record in scan.records(by_id(header.serializer).loads):
            pass
    except Exception as exc:
        return _Checked(name, False, f"DAMAGED: {exc}")
    torn = [d for d in scan.damages if d.kind == "torn"]
    damaged = [d for d in scan.damages if d.kind != "torn"]
    text = f"{scan.count} records, last seq {scan.last_seq}"
    if damaged:
        text += "; DAMAGED at offsets " + ", ".join(str(d.offset) for d in damaged)
        return _Checked(name, False, text, scan.count)
    if torn:
        cut = len(data) - torn[0].offset
        note = f"; note: torn tail at offset {torn[0].offset} ({cut} bytes), cut on the next open"
        return _Checked(name, True, text, scan.count, (torn[0].offset, note))
    return _Checked(name, True, text + "; ok", scan.count)


if __name__ == "__main__":
    sys.exit(main())
