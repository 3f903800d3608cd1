"""A message queue for the aiomqtt shim's Client that reports what it is offered.

Tests await arrivals through `Offers.wait_for` instead of sleeping: the client's
``queue_type`` is swapped for one whose ``put_nowait`` counts every message.
"""

from __future__ import annotations

import asyncio
from typing import cast

import anyio

from trio_mqttconn.aiomqtt import Message

__all__ = ["Offers", "QueueType", "watched_queue"]

QueueType = type[asyncio.Queue[Message]]


class Offers:
    """Counts the messages a client offered its queue, and wakes who waits for N."""

    def __init__(self) -> None:
        self.count = 0
        self._waiters: list[tuple[int, anyio.Event]] = []

    def bump(self) -> None:
        """Count one offered message and wake the waiters it satisfies."""
        self.count += 1
        for entry in list(self._waiters):
            if self.count >= entry[0]:
                self._waiters.remove(entry)
                entry[1].set()

    async def wait_for(self, count: int) -> None:
        """Return once *count* messages have been offered in total."""
        if self.count >= count:
            return
        event = anyio.Event()
        self._waiters.append((count, event))
        await event.wait()


def watched_queue(
    base: QueueType = asyncio.Queue,
) -> tuple[QueueType, Offers]:
    """A ``queue_type`` for the client that reports every ``put_nowait``."""
    offers = Offers()

    def make(maxsize: int = 0) -> asyncio.Queue[Message]:
        queue = base(maxsize=maxsize)
        put = queue.put_nowait

        def put_nowait(item: Message) -> None:
            try:
                put(item)
            finally:
                offers.bump()

        queue.put_nowait = put_nowait  # type: ignore[method-assign]
        return queue

    return cast("QueueType", make), offers
