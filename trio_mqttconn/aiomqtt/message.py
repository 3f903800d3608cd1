"""aiomqtt's ``Message``: what ``client.messages`` yields."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._paho import PacketTypes, Properties, properties_from_record
from .topic import Topic, TopicLike

if TYPE_CHECKING:
    from trio_mqttconn import Message as EngineMessage

__all__ = ["Message"]


class Message:
    """A message received from the broker, as aiomqtt delivers it.

    Not meant to be built by applications (tests may): ``client.messages`` yields
    them. The attributes are plain, mutable attributes, as in aiomqtt. Messages order
    by ``mid`` (``<``), so they can go into a ``PriorityQueue`` directly. The repr
    shows the payload's size, not its content.

    Args:
        topic: The topic the message was published to; a string becomes a `Topic`
            (and is validated: ``Invalid topic: ...``).
        payload: The payload, stored as given (received messages carry ``bytes``).
        qos: The QoS the message was delivered with.
        retain: Whether the broker sent it from its retained store.
        mid: The packet identifier (0 for QoS 0).
        properties: The MQTT 5 properties (always present, possibly empty, on an MQTT
            5 connection); None on MQTT 3.1.1.
    """

    topic: Topic
    """The topic the message was published to."""
    payload: bytes
    """The message payload."""
    qos: int
    """The QoS the message was delivered with."""
    retain: bool
    """Whether this is a retained message."""
    mid: int
    """The packet identifier (0 for QoS 0)."""
    properties: Properties | None
    """(MQTT 5 only) the properties of the PUBLISH."""

    def __init__(
        self,
        topic: TopicLike,
        payload: bytes,
        qos: int,
        retain: bool,
        mid: int,
        properties: Properties | None,
    ) -> None:
        self.topic = topic if isinstance(topic, Topic) else Topic(topic)
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.mid = mid
        self.properties = properties

    @classmethod
    def _from_engine(cls, message: EngineMessage, *, mqtt5: bool) -> Message:
        # What the shim's client puts in the queue: mid 0 for QoS 0, and properties
        # only on MQTT 5 connections (paho's convention, which aiomqtt passes on).
        return cls(
            topic=message.topic,
            payload=message.payload,
            qos=int(message.qos),
            retain=message.retain,
            mid=message.packet_id or 0,
            properties=(
                properties_from_record(message.properties, PacketTypes.PUBLISH)
                if mqtt5
                else None
            ),
        )

    def __lt__(self, other: Message) -> bool:
        return self.mid < other.mid

    def __repr__(self) -> str:
        return (
            f"Message(topic={self.topic.value!r}, payload=<{len(self.payload)} bytes>, "
            f"qos={self.qos}, retain={self.retain}, mid={self.mid})"
        )
