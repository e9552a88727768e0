"""Opening a persistent store: replaying its records, and the garbage collector meanwhile.

A store is any :class:`~unidist_queue.Store` (DESIGN.md section 8): :class:`RecordStore`
below hands the queue a record list written by hand, as a salvaged archive (records
lost in the middle) or a foreign backend may, to check what replay makes of it.
"""

from __future__ import annotations

import gc
import pickle
import threading
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import pytest
from conftest import ManualClock
from helpers import InMemoryStore

from unidist_queue import FileStore, MessageQueue, StoreError
from unidist_queue.store.base import Record, State

WAIT = 30.0


class RecordStore(InMemoryStore):
    """A persistent store in memory whose ``load`` returns ``records`` (after ``loading``,
    a hook run inside the load)."""

    def __init__(self, records: List[Record], loading: Optional[Any] = None) -> None:
        self.records = list(records)
        self.loading = loading

    def load(self) -> Tuple[Optional[State], Iterator[Record]]:
        if self.loading is not None:
            self.loading()
        return None, iter(self.records)

    def append(self, record: Record, body: Optional[bytes] = None) -> int:
        self.records.append(record if body is None else (*record, pickle.loads(body)))
        return len(self.records)


def test_records_about_messages_it_does_not_hold_are_skipped(clock: ManualClock) -> None:
    t = clock()
    records: List[Record] = [
        ("add", "q", 1, t, None, "a"),
        ("promote", "q", 99),  # never added (its add record was lost)
        ("nack", "q", 98, None),  # never reserved
        ("remove", "q", 97),
        ("reserve", "q", 96),
        ("add", "q", 2, t, t + 40, "b"),
        ("add", "q", 3, t, t + 50, "c"),
        ("promote", "q", 3),  # out of due order: "b" (due first) stays delayed
        ("add", "q", 4, t, t + 60, "d"),
        ("remove", "q", 4),  # a delayed message, not the first due
    ]
    with MessageQueue(store=RecordStore(records), clock=clock) as mq:
        assert mq.all("q") == ["a", "c"]
        s = mq.stats("q")
        assert (s.ready, s.delayed, s.reserved, s.added) == (2, 1, 0, 4)
        clock.advance(100)
        assert mq.all("q") == ["a", "c", "b"]
        assert mq.add("q", "e") == 5


def test_ids_keep_increasing_past_ids_handed_out_to_non_durable_queues(tmp_path: Path) -> None:
    with MessageQueue(store=FileStore(tmp_path, fsync="never")) as mq:
        mq.declare("scratch", durable=False)
        scratch = mq.add("scratch", "not stored")
        durable = mq.add("kept", "stored")
        assert durable > scratch
    with MessageQueue(store=FileStore(tmp_path, fsync="never")) as mq:
        assert mq.all("kept") == ["stored"] and not mq.exists("scratch")
        assert mq.add("kept", "new") > max(scratch, durable)
    records: List[Record] = [("ids", 500), ("add", "q", 7, 0.0, None, "x")]
    with MessageQueue(store=RecordStore(records)) as mq:
        assert mq.all("q") == ["x"]
        assert mq.add("q", "y") >= 500


def test_an_unknown_record_operation_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="unknown record operation 'rename'"):
        MessageQueue(store=RecordStore([("add", "q", 1, 0.0, None, "a"), ("rename", "q", "r")]))


@pytest.fixture
def gc_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()


def test_opening_leaves_a_disabled_collector_disabled(gc_enabled: None, tmp_path: Path) -> None:
    with MessageQueue(store=FileStore(tmp_path, fsync="never")) as mq:
        mq.add("q", "a")
    seen: List[bool] = []
    gc.disable()
    with MessageQueue(store=RecordStore([], loading=lambda: seen.append(gc.isenabled()))):
        assert not gc.isenabled()
    with MessageQueue(store=FileStore(tmp_path, fsync="never")) as mq:
        assert mq.all("q") == ["a"]
        assert not gc.isenabled()
    assert seen == [False]


def test_concurrent_opens_resume_the_collector_when_the_last_one_is_done(gc_enabled: None) -> None:
    inside, release = threading.Event(), threading.Event()
    seen: List[bool] = []

    def slow_load() -> None:
        inside.set()
        assert release.wait(WAIT)

    opened: List[MessageQueue] = []
    t = threading.Thread(target=lambda: opened.append(MessageQueue(store=RecordStore([], slow_load))))
    t.start()
    try:
        assert inside.wait(WAIT)
        assert not gc.isenabled()  # paused by the slow open
        with MessageQueue(store=RecordStore([], loading=lambda: seen.append(gc.isenabled()))):
            assert not gc.isenabled()  # this open is done, the slow one is not
    finally:
        release.set()
        t.join(WAIT)
    assert not t.is_alive() and len(opened) == 1
    opened[0].close()
    assert seen == [False]
    assert gc.isenabled()
