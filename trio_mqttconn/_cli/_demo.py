"""``demo``: a publish/subscribe round trip at QoS 0, 1 and 2."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import trio

from .. import MqttClient, QoS

if TYPE_CHECKING:
    import argparse

__all__ = ["run_demo"]


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _demo_with(uri: str) -> None:
    _say(f"connecting to {uri}")
    async with MqttClient(uri, client_id="trio-mqttconn-demo") as client:
        _say(f"connected as {client.client_id!r}")
        async with client.subscription("demo/#", qos=QoS.EXACTLY_ONCE) as sub:
            for qos in QoS:
                topic = f"demo/qos{int(qos)}"
                await client.publish(topic, f"hello at {qos.name}", qos=qos)
                _say(f"published  {topic!r} at QoS {int(qos)}")
                with trio.fail_after(10):
                    message = await sub.receive()
                _say(
                    f"received   {message.topic!r}: {message.text!r} "
                    f"(QoS {int(message.qos)})"
                )
        stats = client.statistics()
    _say(
        f"done: {stats.messages_published} published, "
        f"{stats.messages_received} received, {stats.bytes_sent} bytes sent"
    )


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo against ``--broker`` or a private mosquitto; returns 0."""
    if args.broker:
        trio.run(_demo_with, args.broker)
        return 0
    from ..testing import Mosquitto

    with Mosquitto(tls=False) as broker:
        _say(f"started mosquitto (pid {broker.pid}) on {broker.uri}")
        trio.run(_demo_with, broker.uri)
    return 0
