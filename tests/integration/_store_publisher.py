"""A publisher the durable-session test kills with SIGKILL and starts again.

Usage: ``python -m tests.integration._store_publisher URI DB DONE RUN BACKEND TOTAL``

Publishes messages ``0 .. TOTAL-1`` to ``store/<client id>`` (odd ones at QoS 2,
even ones at QoS 1), 20 at a time, through a client with a `SqliteSessionStore`
in *DB*, skipping the indices listed in the file *DONE* (one per line: earlier
runs' publishes that returned). Each payload is ``"<index>:<RUN>"``; after each
``publish()`` returns, ``"<index>:<RUN>"`` is printed on its own line (flushed),
so the test knows exactly which publishes returned before the kill.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from trio_mqttconn import MqttClient, QoS, SqliteSessionStore

CONCURRENCY = 20


async def main(uri: str, db: str, todo: list[int], run: str) -> None:
    client_id = Path(db).stem
    async with MqttClient(
        uri,
        client_id=client_id,
        clean_start=False,
        session_expiry=600,
        session_store=SqliteSessionStore(db),
    ) as client:
        sys.stdout.write(f"restored {client.statistics().inflight}\n")
        sys.stdout.flush()
        send, receive = anyio.create_memory_object_stream[int](len(todo) or 1)
        for index in todo:
            send.send_nowait(index)
        send.close()

        async def worker() -> None:
            async for index in receive:
                qos = QoS.EXACTLY_ONCE if index % 2 else QoS.AT_LEAST_ONCE
                payload = f"{index}:{run}"
                await client.publish(f"store/{client_id}", payload.encode(), qos=qos)
                sys.stdout.write(payload + "\n")
                sys.stdout.flush()

        async with anyio.create_task_group() as group:
            for _ in range(CONCURRENCY):
                group.start_soon(worker)
    sys.stdout.write("finished\n")
    sys.stdout.flush()


if __name__ == "__main__":
    uri, db, done_file, run, backend, total = sys.argv[1:]
    done_path = Path(done_file)
    done = (
        {int(line) for line in done_path.read_text().split()}
        if done_path.exists()
        else set()
    )
    todo = [i for i in range(int(total)) if i not in done]
    anyio.run(main, uri, db, todo, run, backend=backend)
