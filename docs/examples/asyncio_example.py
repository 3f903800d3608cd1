"""The same engine under asyncio, through anyio."""

from __future__ import annotations

import asyncio
import os

from trio_mqttconn import MqttClient, QoS


async def main() -> None:
    uri = os.environ.get("MQTT_URI", "mqtt://localhost")
    async with (
        MqttClient(uri) as client,
        client.subscription("greetings", qos=QoS.EXACTLY_ONCE) as sub,
    ):
        await client.publish("greetings", "hello from asyncio", qos=2)
        message = await sub.receive()
        print(message.text, message.qos.name)


if __name__ == "__main__":
    asyncio.run(main())
