"""Publish and receive one message with trio (the docs' first program)."""

from __future__ import annotations

import os

import trio

from trio_mqttconn import MqttClient


async def main() -> None:
    uri = os.environ.get("MQTT_URI", "mqtt://localhost")
    async with (
        MqttClient(uri) as client,
        client.subscription("sensors/+/temp", qos=1) as sub,
    ):
        await client.publish("sensors/1/temp", b"21.5", qos=1)
        async for message in sub:
            print(message.topic, message.payload.decode())
            break


if __name__ == "__main__":
    trio.run(main)
