"""DEBUG logging of every packet sent and received (never a password or payload).

Logger ``trio_mqttconn.packets``: one line per packet, with its type, packet id,
topic or filters and sizes. Payloads appear only as their size, CONNECT never with
its password. The engine asks `enabled()` once per chunk or call, so with DEBUG off
the cost is one level check.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Final

from .._events import (
    Disconnected,
    MessageReceived,
    PongReceived,
    PublishCompleted,
    Subscribed,
    Unsubscribed,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._events import Event

__all__ = ["LOGGER", "enabled", "received", "sent"]

LOGGER = logging.getLogger("trio_mqttconn.packets")


#: ``enabled()``: whether packets are logged (DEBUG on ``trio_mqttconn.packets``).
#: A partial, not a function: no Python frame of its own on the hot paths.
enabled: Final[Callable[[], bool]] = functools.partial(
    LOGGER.isEnabledFor, logging.DEBUG
)


def sent(kind: str, size: int, **details: object) -> None:
    """Log one packet we send: *kind* (``PUBLISH`` ...), its size and *details*."""
    LOGGER.debug("sent %s %s(%d bytes)", kind, _details(details), size)


def received(where: str, size: int, events: list[Event]) -> None:
    """Log what one chunk of *size* bytes from *where* held."""
    LOGGER.debug("received %d bytes from %s", size, where)
    for event in events:
        kind = type(event)
        if kind is MessageReceived:
            assert isinstance(event, MessageReceived)
            message = event.message
            LOGGER.debug(
                "received PUBLISH %s(payload %d bytes)",
                _details(
                    {
                        "id": message.packet_id,
                        "topic": message.topic,
                        "qos": int(message.qos),
                        "retain": message.retain,
                        "dup": message.dup,
                    }
                ),
                len(message.payload),
            )
        elif kind is PublishCompleted:
            assert isinstance(event, PublishCompleted)
            LOGGER.debug(
                "received PUBACK/PUBCOMP id=%d reason=%#04x",
                event.packet_id,
                event.reason_code,
            )
        elif kind is Subscribed or kind is Unsubscribed:
            assert isinstance(event, Subscribed | Unsubscribed)
            LOGGER.debug(
                "received %s id=%d reasons=%s",
                "SUBACK" if kind is Subscribed else "UNSUBACK",
                event.packet_id,
                ",".join(f"{code:#04x}" for code in event.reason_codes),
            )
        elif kind is PongReceived:
            LOGGER.debug("received PINGRESP")
        elif kind is Disconnected:
            assert isinstance(event, Disconnected)
            LOGGER.debug("received DISCONNECT reason=%#04x", event.reason_code)


def _details(details: dict[str, object]) -> str:
    return "".join(
        f"{name}={value!r} " for name, value in details.items() if value is not None
    )
