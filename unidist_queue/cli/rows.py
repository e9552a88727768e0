"""What ``dump`` prints, whatever keeps the queues (a store directory or a Redis server)."""

from __future__ import annotations

import json
from typing import Iterable, List, Optional

from ..message import Message
from .target import Refused

__all__ = ["chosen_queues", "print_messages"]


def chosen_queues(names: List[str], wanted: Optional[str], where: str) -> List[str]:
    """``names``, or only ``wanted`` (``--queue``) if given.

    :raises Refused: ``wanted`` is not one of ``names`` (``where`` names what was read).
    """
    if wanted is None:
        return names
    if wanted not in names:
        known = ", ".join(names) if names else "none"
        raise Refused(f"{where} has no queue {wanted} (its queues: {known})")
    return [wanted]


def print_messages(messages: Iterable[Message], as_json: bool) -> None:
    """One line per message: tab-separated ``id queue enqueued_at body`` (the body's repr),
    or with ``as_json`` one JSON object (a body JSON cannot hold as its repr)."""
    for m in messages:
        if as_json:
            row = {"id": m.id, "queue": m.queue, "enqueued_at": m.enqueued_at,
                   "attempts": m.attempts, "body": m.body}
            print(json.dumps(row, default=repr, ensure_ascii=False))
        else:
            print(f"{m.id}\t{m.queue}\t{m.enqueued_at:.6f}\t{m.body!r}")
