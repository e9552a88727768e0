"""QueueView: a put woken after its queue was dropped and made again."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import List

from unidist_queue import FileStore, MessageQueue

WAIT = 30.0


def wait_for_putter(mq: MessageQueue, queue: str) -> None:
    """Wait (bounded) until a thread is parked waiting for room in ``queue`` (an internal
    peek, only to make the wake-up deterministic)."""
    parked = threading.Event()
    for _ in range(3000):
        with mq._mutex:
            q = mq._queues.get(queue)
            if q is not None and q.putters:
                parked.set()
                break
        parked.wait(0.01)
    assert parked.is_set(), "the put never blocked"


def test_a_put_woken_by_drop_stores_its_item_in_the_queue_made_again(tmp_path: Path) -> None:
    """The queue was not durable when the put began; dropped, it is made again durable
    (the store's default), so the item must be stored with its body."""
    with MessageQueue(store=FileStore(tmp_path / "s", fsync="never")) as mq:
        mq.declare("v", durable=False)
        view = mq.view("v", maxsize=1)
        view.put("a")
        outcome: List[BaseException] = []

        def put() -> None:
            try:
                view.put("b", timeout=60)
            except BaseException as exc:
                outcome.append(exc)

        t = threading.Thread(target=put)
        t.start()
        wait_for_putter(mq, "v")
        mq.drop("v")
        t.join(WAIT)
        assert not t.is_alive() and outcome == []
        assert mq.all("v") == ["b"] and mq.stats("v").durable
    with MessageQueue(store=FileStore(tmp_path / "s", fsync="never")) as mq:
        assert mq.all("v") == ["b"]
