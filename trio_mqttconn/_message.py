"""Message: what subscribers and listeners receive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, final

import attrs

from ._enums import QoS
from ._frozen import unfrozen_twin
from ._properties import EMPTY_PROPERTIES, Properties

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Message", "received_message"]


@final
@attrs.frozen(kw_only=True)
class Message:
    """An application message received from the broker.

    Messages are immutable values; the same instance is handed to every subscription
    it matches.
    """

    topic: str
    """The topic name the message was published to (topic aliases already resolved)."""
    payload: bytes
    """The payload, exactly as published."""
    qos: QoS = QoS.AT_MOST_ONCE
    """The QoS it was delivered with (the lower of the publish and subscription QoS)."""
    retain: bool = False
    """True when the broker sent it from its retained store."""
    dup: bool = False
    """True when the broker marked it as a possible re-delivery."""
    packet_id: int | None = attrs.field(default=None, eq=False)
    """Packet identifier of a QoS 1/2 delivery (informational)."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 properties (content type, response topic, user properties ...)."""
    _acker: Callable[[], None] | None = attrs.field(
        default=None, eq=False, repr=False, alias="acker"
    )

    def ack(self) -> None:
        """Acknowledge the message to the broker (``manual_ack=True`` subscriptions).

        Sends the PUBACK (QoS 1) or PUBREC (QoS 2) once every manually acknowledging
        subscription that received this delivery acknowledged it, in the order the
        messages arrived. Idempotent; a no-op for QoS 0 and for subscriptions
        without ``manual_ack``. An unacknowledged message is re-delivered by the
        broker after a reconnect that resumed the session.
        """
        acker = self._acker
        if acker is not None:
            acker()

    def __repr__(self) -> str:
        """Show every field, but of `properties` only those that are set.

        A received message carries a `Properties` record of 27 fields, nearly all
        None; listing them all buried the topic and payload. Fields declared with
        ``repr=False`` stay out, as in the repr attrs would generate.
        """
        shown = [
            f"{field.name}={getattr(self, field.name)!r}"
            if field.name != "properties"
            else f"properties=Properties({_set_properties(self.properties)})"
            for field in attrs.fields(type(self))
            if field.repr
        ]
        return f"Message({', '.join(shown)})"

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8 (raises UnicodeDecodeError if it is not)."""
        return self.payload.decode("utf-8")


_Unfrozen: Final = unfrozen_twin(Message)
_new = object.__new__


def received_message(
    topic: str,
    payload: bytes,
    qos: QoS,
    retain: bool,
    dup: bool,
    packet_id: int | None,
    properties: Properties,
) -> Message:
    """``Message(...)`` for values the decoder checked already, at a third of its cost.

    (Built on the unfrozen twin, see `._frozen`.)
    """
    message = _new(_Unfrozen)
    message.topic = topic
    message.payload = payload
    message.qos = qos
    message.retain = retain
    message.dup = dup
    message.packet_id = packet_id
    message.properties = properties
    message._acker = None
    message.__class__ = Message
    return message  # type: ignore[no-any-return]


def _set_properties(props: Properties) -> str:
    """``name=value`` for each property that differs from its default, in field order."""
    return ", ".join(
        f"{prop.name}={getattr(props, prop.name)!r}"
        for prop in attrs.fields(Properties)
        if getattr(props, prop.name) != prop.default
    )
