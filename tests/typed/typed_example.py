"""Typed use of ``unidist_queue``, checked by ``mypy --strict`` (see test_typed_example.py).

``Message`` and ``QueueView`` are generic in the body type, as ``queue.Queue`` is. The lines
ending in ``# type: ignore[...]`` are wrong uses that the type checker must refuse:
``--strict`` turns on ``warn_unused_ignores``, so if one of them stopped being an error
the check would fail, and it cannot pass by checking nothing. Nothing here runs those
lines (``main`` is what the test runs).
"""

from __future__ import annotations

from typing import Any, List

import attrs

from unidist_queue import AsyncQueueView, Message, MessageQueue, QueueAPI, QueueView


@attrs.frozen
class Order:
    item: str
    qty: int


def take(orders: QueueView[Order]) -> Order:
    return orders.get(timeout=1)


async def take_async(orders: AsyncQueueView[Order]) -> Order:
    return await orders.get()  # as asyncio.Queue[Order]


def items(messages: List[Message[Order]]) -> List[str]:
    return [m.body.item for m in messages]


def reserve_order(mq: QueueAPI) -> Message[Order]:
    return mq.reserve("orders", timeout=1)  # a Message[Any]: it narrows to Message[Order]


def main() -> List[str]:
    with MessageQueue() as mq:
        orders: QueueView[Order] = mq.view("orders")
        orders.put(Order("tea", 2))
        orders.put_nowait(Order("jam", 1))
        first: Order = take(orders)
        untyped: QueueView = mq.view("orders")  # a bare QueueView is QueueView[Any]
        anything: Any = untyped.get_nowait()
        mq.add("orders", Order("cake", 3))
        msg = reserve_order(mq)
        mq.ack(msg)
        envelope = Message(1, "orders", Order("scones", 4), 0.0)
        return [first.item, anything.item, msg.body.item, *items([envelope])]


def wrong_uses(orders: QueueView[Order], msg: Message[Order]) -> None:
    """Never called: each line is an error the type checker must report."""
    orders.put("tea")  # type: ignore[arg-type]
    orders.put_nowait(3)  # type: ignore[arg-type]
    name: str = orders.get()  # type: ignore[assignment]
    qty: str = msg.body.qty  # type: ignore[assignment]
    msg.body.colour  # type: ignore[attr-defined]  # noqa: B018
    wrong: Message[Order] = Message(1, "orders", "tea", 0.0)  # type: ignore[arg-type]
    print(name, qty, wrong)


async def wrong_async_uses(orders: AsyncQueueView[Order]) -> None:
    """Never called: each line is an error the type checker must report."""
    await orders.put("tea")  # type: ignore[arg-type]
    orders.put_nowait(3)  # type: ignore[arg-type]
    name: str = await orders.get()  # type: ignore[assignment]
    print(name)


if __name__ == "__main__":
    print(main())
