"""A publisher whose session survives its process: kill it, start it again.

Run it twice: what the first run left unfinished (messages sent but not yet
acknowledged, QoS 2 messages between PUBREC and PUBCOMP) is finished by the second,
before it publishes anything new.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import trio

from trio_mqttconn import MqttClient, SqliteSessionStore

URI = os.environ.get("MQTT_URI", "mqtt://127.0.0.1:1883")
STORE = Path(os.environ.get("STORE_DIR", tempfile.gettempdir())) / "durable-pub.db"


async def main() -> None:
    async with MqttClient(
        URI,
        client_id="durable-publisher",  # the store belongs to this client id
        clean_start=False,  # resume the broker's session...
        session_expiry=3600,  # ...which it keeps for an hour after we vanish
        session_store=SqliteSessionStore(STORE),
    ) as client:
        unfinished = client.statistics().inflight
        print(f"taken over from an earlier run: {unfinished} unfinished messages")
        for n in range(10):
            # Returns once the broker has it (PUBCOMP): from then on it is never
            # lost, and never delivered twice, even if this process is killed.
            await client.publish("demo/durable", f"reading {n}".encode(), qos=2)
        print("published 10 messages at QoS 2")


trio.run(main)
