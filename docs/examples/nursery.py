"""A background consumer supervised by the application's nursery."""

from __future__ import annotations

import os

import trio

from trio_mqttconn import Message, MqttClient


async def main() -> None:
    uri = os.environ.get("MQTT_URI", "mqtt://localhost")
    received: list[Message] = []
    done = trio.Event()

    def on_message(message: Message) -> None:
        received.append(message)
        if len(received) == 3:
            done.set()

    async with trio.open_nursery() as nursery:
        client = MqttClient(uri, client_id="nursery-example")
        await nursery.start(client.run)  # returns after the first CONNACK
        await client.subscribe("jobs/#", qos=1, listener=on_message)
        for n in range(3):
            await client.publish(f"jobs/{n}", f"job {n}", qos=1)
        with trio.fail_after(10):
            await done.wait()
        await client.aclose()  # cancels its tasks and waits for them
    print([message.text for message in received])


if __name__ == "__main__":
    trio.run(main)
