"""An asyncio program never imports trio: not on import, not while it runs a client.

trio is a dependency of the package (the engine takes trio's fast paths when it runs
on trio), but an aiomqtt user who switched the import runs on asyncio and should not
pay trio's import time and memory (about 12 MiB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests._examples import run_python

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

PROGRAM = """
import sys

import anyio

import trio_mqttconn
from trio_mqttconn import MqttClient
from trio_mqttconn.aiomqtt import Client

imported = "trio" in sys.modules


async def main(host: str, port: int, topic: str) -> None:
    async with MqttClient(f"mqtt://{host}:{port}") as client:
        async with client.subscription(topic, qos=1) as subscription:
            await client.publish(topic, b"engine", qos=1)
            assert (await subscription.receive()).payload == b"engine"
    async with Client(host, port) as shim:
        await shim.subscribe(topic, qos=1)
        await shim.publish(topic, "shim", qos=1)
        message = await anext(shim.messages)
        assert message.payload == b"shim"


anyio.run(main, sys.argv[1], int(sys.argv[2]), sys.argv[3], backend="asyncio")
print(imported, "trio" in sys.modules)
"""


def test_an_asyncio_program_does_not_import_trio(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    arguments = ["-c", PROGRAM, mosquitto.host, str(mosquitto.port), unique_topic]
    result = run_python(arguments, timeout=60)
    assert result.stdout.split() == ["False", "False"]
