"""The pip-services component: MqttConnection and a queue sharing it, in a nursery.

The broker comes from the MQTT_URI environment variable (mqtt://localhost:1883 when
it is not set).
"""

from __future__ import annotations

import logging
import os

import trio

from trio_mqttconn import (
    ConfigParams,
    Context,
    DefaultMqttFactory,
    Descriptor,
    Message,
    MqttConnection,
    MqttMessageQueue,
    References,
)


class OrderListener:
    """An IMqttMessageListener: pip-services calls on_message(topic, data, packet)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received: list[str] = []
        self.done = trio.Event()

    def on_message(self, topic: str, data: bytes, packet: Message) -> None:
        self.received.append(f"{topic}: {data.decode()} (QoS {packet.qos})")
        if len(self.received) == self.expected:
            self.done.set()


async def main() -> None:
    uri = os.environ.get("MQTT_URI", "mqtt://localhost:1883")
    prefix = f"example/{os.getpid()}"  # several runs may share one broker

    # What a pip-services container would do: configure, set references, open.
    config = ConfigParams.from_tuples(
        "connection.uri", uri,
        "options.keepalive_timeout", 10_000,  # milliseconds
        "options.reconnect_timeout", 500,
    )  # fmt: skip
    connection = MqttConnection()
    connection.configure(config)
    references = References.from_tuples(
        Descriptor("pip-services", "logger", "python", "default", "1.0"),
        logging.getLogger("example"),
        Descriptor("pip-services", "connection", "mqtt", "default", "1.0"),
        connection,
    )
    connection.set_references(references)

    listener = OrderListener(expected=3)
    async with trio.open_nursery() as nursery:
        connection.bind(nursery)  # the engine's tasks live in this nursery
        await connection.open(None)  # returns after CONNACK
        await connection.subscribe(f"{prefix}/orders/+", {"qos": 1}, listener)
        for number in range(3):
            await connection.publish(
                f"{prefix}/orders/{number}", f"order {number} created", {"qos": 1}
            )
        with trio.fail_after(10):
            await listener.done.wait()
        for line in listener.received:
            print(line)

        # A message queue on the same (shared) connection, made as a container makes
        # it: by its upstream descriptor (the name is the descriptor's).
        queue = DefaultMqttFactory().create(
            Descriptor("pip-services", "message-queue", "mqtt", "invoices", "1.0")
        )
        assert isinstance(queue, MqttMessageQueue)
        queue.bind(nursery)
        queue_config = ConfigParams.from_tuples(
            "topic", f"{prefix}/invoices",
            "options.autosubscribe", True,
            "options.serialize_envelope", True,
            "options.qos", 1,
        )  # fmt: skip
        queue.configure(queue_config)
        queue.set_references(references)
        await queue.open(None)
        # A context carries the trace id to pip-services loggers; a plain id works too.
        await queue.send_as_object(
            Context.from_trace_id("trace-1"), "invoice.created", {"order": 1}
        )
        envelope = await queue.receive(None, 10_000)
        assert envelope is not None
        print(
            f"queue {queue.get_name()}: {envelope.message_type} "
            f"{envelope.get_message_as()} (trace {envelope.trace_id})"
        )
        await queue.close(None)
        await connection.close(None)  # DISCONNECT, its tasks are done
    print("closed:", not connection.is_open())


if __name__ == "__main__":
    trio.run(main)
