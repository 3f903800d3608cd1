"""Ask a question over MQTT 5 and get the answer back (request/response)."""

from __future__ import annotations

import os

import trio

from trio_mqttconn import MqttClient, Responder


async def serve(requests: Responder) -> None:
    """The service: answer every request on ``svc/<name>/get``."""
    async for request in requests:
        name = request.topic.split("/")[1]
        await request.respond(f"hello, {name}")


async def main() -> None:
    uri = os.environ.get("MQTT_URI", "mqtt://localhost")
    async with (
        MqttClient(uri) as service,
        service.responder("svc/+/get", qos=1) as requests,
        MqttClient(uri) as caller,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(serve, requests)
        for name in ("ada", "grace"):
            response = await caller.request(f"svc/{name}/get", b"", timeout=5)
            print(response.topic, response.payload.decode())
        print(caller.request_statistics())
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
