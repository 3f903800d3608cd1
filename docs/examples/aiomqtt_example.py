"""An aiomqtt 2.5 program, unchanged except for its import.

It subscribes to a few temperature topics, publishes readings, and prints what comes
back, dispatching on ``message.topic.matches()``. Written exactly as for aiomqtt;
only ``import aiomqtt`` became ``from trio_mqttconn import aiomqtt``. It runs
under ``asyncio.run`` (below) and, as is, under ``trio.run(main)``.

Usage: ``python aiomqtt_example.py [HOST [PORT [TOPIC_PREFIX]]]``
"""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.parse

from trio_mqttconn import aiomqtt

READINGS: dict[str, float | str] = {"kitchen": 21.5, "garage": 8, "attic": "n/a"}


async def main(
    hostname: str = "localhost", port: int = 1883, prefix: str = "example"
) -> list[str]:
    """Publish the readings and print them as they come back; return the lines."""
    lines: list[str] = []
    will = aiomqtt.Will(f"{prefix}/status", payload="offline", qos=1)
    async with aiomqtt.Client(hostname, port, will=will, timeout=10) as client:
        await client.subscribe(f"{prefix}/temperature/#", qos=1)
        await client.subscribe([(f"{prefix}/status", 1)])
        await client.publish(f"{prefix}/status", payload="online", qos=1)
        for room, value in READINGS.items():
            await client.publish(f"{prefix}/temperature/{room}", payload=value, qos=1)
        async for message in client.messages:
            if message.topic.matches(f"{prefix}/status"):
                line = f"status: {message.payload.decode()}"
            elif message.topic.matches(f"{prefix}/temperature/+"):
                room = message.topic.value.rsplit("/", 1)[-1]
                line = f"{room}: {message.payload.decode()}"
            else:
                continue
            print(line)
            lines.append(line)
            if len(lines) == len(READINGS) + 1:
                break
    return lines


if __name__ == "__main__":
    # HOST and PORT come from the command line, or from $MQTT_URI (the test suite).
    arguments = sys.argv[1:]
    if not arguments and "MQTT_URI" in os.environ:
        where = urllib.parse.urlsplit(os.environ["MQTT_URI"])
        arguments = [where.hostname or "localhost", str(where.port or 1883)]
    asyncio.run(
        main(
            arguments[0] if arguments else "localhost",
            int(arguments[1]) if len(arguments) > 1 else 1883,
            arguments[2] if len(arguments) > 2 else "example",
        )
    )
