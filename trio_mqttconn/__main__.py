"""Command line: ``python -m trio_mqttconn pub | sub | demo``.

* ``pub URI TOPIC MESSAGE [--qos N] [--retain]`` publishes one message;
* ``sub URI FILTER [--qos N] [--count N]`` prints messages until interrupted (or N);
* ``demo [--broker URI]`` starts a private mosquitto (unless a broker is given) and
  shows a publish/subscribe round trip at QoS 0, 1 and 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import trio

from ._client import MqttClient
from ._enums import ProtocolVersion, QoS
from ._exceptions import MqttError

if TYPE_CHECKING:
    from collections.abc import Sequence


def _protocol(text: str) -> ProtocolVersion:
    return ProtocolVersion.V311 if text in ("3", "3.1.1", "4") else ProtocolVersion.V5


async def _pub(args: argparse.Namespace) -> None:
    async with MqttClient(args.uri, protocol=_protocol(args.protocol)) as client:
        await client.publish(args.topic, args.message, qos=args.qos, retain=args.retain)
    print(f"published to {args.topic} (QoS {args.qos})")


async def _sub(args: argparse.Namespace) -> None:
    async with (
        MqttClient(args.uri, protocol=_protocol(args.protocol)) as client,
        client.subscription(args.filter, qos=args.qos) as sub,
    ):
        seen = 0
        async for message in sub:
            print(f"{message.topic} (QoS {int(message.qos)}): {message.payload!r}")
            seen += 1
            if args.count and seen >= args.count:
                return


async def _demo_with(uri: str) -> None:
    print(f"connecting to {uri}")
    async with MqttClient(uri, client_id="trio-mqttconn-demo") as client:
        print(f"connected as {client.client_id!r}")
        async with client.subscription("demo/#", qos=QoS.EXACTLY_ONCE) as sub:
            for qos in QoS:
                topic = f"demo/qos{int(qos)}"
                await client.publish(topic, f"hello at {qos.name}", qos=qos)
                print(f"published  {topic!r} at QoS {int(qos)}")
                with trio.fail_after(10):
                    message = await sub.receive()
                print(
                    f"received   {message.topic!r}: {message.text!r} (QoS {int(message.qos)})"
                )
        stats = client.statistics()
    print(
        f"done: {stats.messages_published} published, "
        f"{stats.messages_received} received, {stats.bytes_sent} bytes sent"
    )


def _demo(args: argparse.Namespace) -> None:
    if args.broker:
        trio.run(_demo_with, args.broker)
        return
    from .testing import Mosquitto

    with Mosquitto(tls=False) as broker:
        print(f"started mosquitto (pid {broker.pid}) on {broker.uri}")
        trio.run(_demo_with, broker.uri)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m trio_mqttconn`` and the ``trio-mqttconn`` script."""
    parser = argparse.ArgumentParser(
        prog="trio-mqttconn", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--protocol", default="5", help="MQTT version: 5 (default) or 3.1.1"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    pub = commands.add_parser("pub", help="publish one message")
    pub.add_argument("uri")
    pub.add_argument("topic")
    pub.add_argument("message")
    pub.add_argument("--qos", type=int, default=0, choices=(0, 1, 2))
    pub.add_argument("--retain", action="store_true")
    sub = commands.add_parser("sub", help="print received messages")
    sub.add_argument("uri")
    sub.add_argument("filter")
    sub.add_argument("--qos", type=int, default=0, choices=(0, 1, 2))
    sub.add_argument("--count", type=int, default=0, help="stop after N messages")
    demo = commands.add_parser("demo", help="publish/subscribe round trip")
    demo.add_argument(
        "--broker", help="broker URI (default: start a private mosquitto)"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "pub":
            trio.run(_pub, args)
        elif args.command == "sub":
            trio.run(_sub, args)
        else:
            _demo(args)
    except MqttError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
