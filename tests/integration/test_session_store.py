"""The durable session store against a real mosquitto (issue #11, part 2).

The main test is the issue's: a publisher process sending 2,000 QoS 2 and 2,000
QoS 1 messages through a `SqliteSessionStore` is killed with SIGKILL three times
at random points and started again with the same client id and
``clean_start=False``. The subscriber (alive throughout) must get every message
whose ``publish()`` returned, every message the store held at a kill (re-sent by
the next process), and no QoS 2 message twice. Without the store the second
process could not even go on: the QoS 2 messages the first left between PUBREC
and PUBCOMP would hold mosquitto's receive quota for this client forever
(0x97 quota exceeded on every new QoS 2 publish).

No sleeps: the test waits on the publisher's output, its exit and received
messages.
"""

from __future__ import annotations

import os
import random
import sys
import uuid
from collections import Counter
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.streams.text import TextReceiveStream

from tests._examples import ROOT
from trio_mqttconn import (
    MemorySessionStore,
    MqttClient,
    ProtocolVersion,
    QoS,
    SessionStoreError,
    SqliteSessionStore,
)

if TYPE_CHECKING:
    from pathlib import Path

    from trio_mqttconn.testing import Mosquitto

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

TOTAL = 4000
KILLS = 3
QOS1 = QoS.AT_LEAST_ONCE
QOS2 = QoS.EXACTLY_ONCE


@pytest.fixture
def anyio_backend() -> str:
    """The test drives subprocesses, which alternate trio and asyncio themselves."""
    return "trio"


async def _run_publisher(
    uri: str,
    db: Path,
    done: Path,
    run: int,
    backend: str,
    kill_after: int | None,
) -> tuple[list[str], bool]:
    """Run one publisher process; kill it after *kill_after* returned publishes.

    Returns the payloads whose publish returned and whether it finished.
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    command = [
        sys.executable,
        "-m",
        "tests.integration._store_publisher",
        uri,
        str(db),
        str(done),
        str(run),
        backend,
        str(TOTAL),
    ]
    returned: list[str] = []
    finished = False
    async with await anyio.open_process(command, env=env, stderr=None) as process:
        assert process.stdout is not None
        pending = ""
        async for chunk in TextReceiveStream(process.stdout):
            pending += chunk
            *lines, pending = pending.split("\n")
            for line in lines:
                if line == "finished":
                    finished = True
                elif ":" in line:
                    returned.append(line)
            if kill_after is not None and len(returned) >= kill_after:
                process.kill()  # SIGKILL: no goodbye, no flush of anything
                kill_after = None
        code = await process.wait()
    assert finished or code == -9, f"the publisher failed with exit code {code}"
    return returned, finished


async def test_session_store_survives_sigkill(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    sys.stdout.write(f"seed {seed}\n")  # shown when the test fails
    rng = random.Random(seed)
    name = f"store-{uuid.uuid4().hex[:8]}"
    db = tmp_path / f"{name}.db"
    done = tmp_path / "done.txt"
    received: Counter[str] = Counter()
    expected: set[str] = set()  # returned, or held by the store at a kill
    # Set by the collector on each new message, replaced by the waiter: the
    # expected set grows run by run, so only the waiter decides "all there"
    # (an event set when an earlier run's messages were in let it stop early).
    arrived = anyio.Event()

    async with (
        MqttClient(
            mosquitto.uri, client_id=f"{name}-sub", receive_maximum=100
        ) as subscriber,
        subscriber.subscription(f"store/{name}", qos=QOS2) as messages,
    ):

        async def collect() -> None:
            async for message in messages:
                received[message.payload.decode()] += 1
                arrived.set()

        async with anyio.create_task_group() as group:
            group.start_soon(collect)
            returned_indices: set[int] = set()
            held: list[tuple[int, int]] = []
            for run in range(KILLS + 1):
                backend = ("trio", "asyncio")[run % 2]
                kill_after = rng.randrange(100, 900) if run < KILLS else None
                with anyio.fail_after(120):
                    returned, finished = await _run_publisher(
                        mosquitto.uri, db, done, run, backend, kill_after
                    )
                assert finished == (run == KILLS)
                expected.update(returned)
                returned_indices.update(int(p.split(":")[0]) for p in returned)
                done.write_text("".join(f"{i}\n" for i in sorted(returned_indices)))
                if not finished:
                    # What the killed process left in its store: the next one
                    # must deliver it (a kill lands while ~20 are in flight).
                    store = SqliteSessionStore(db)
                    stored = store.open(name, ProtocolVersion.V5)
                    store.close()
                    expected.update(p.payload.decode() for p in stored.outgoing)
                    held.append((len(stored.outgoing), len(stored.released)))
            assert returned_indices == set(range(TOTAL))
            sys.stdout.write(f"stored at kills (messages, PUBREC'd): {held}\n")
            # The kills hit messages in flight, QoS 2 ones past PUBREC among
            # them: the store had work to hand over.
            assert sum(n for n, _ in held) > 0
            with anyio.fail_after(60):
                while not expected <= received.keys():
                    arrived = anyio.Event()
                    await arrived.wait()
            group.cancel_scope.cancel()

    missing = expected - received.keys()
    assert not missing, f"lost {len(missing)} messages, e.g. {sorted(missing)[:5]}"
    twice = {
        payload
        for payload, count in received.items()
        if count > 1 and int(payload.split(":")[0]) % 2
    }
    assert not twice, f"QoS 2 messages delivered twice: {sorted(twice)[:5]}"


async def test_session_store_is_empty_after_a_clean_run(mosquitto: Mosquitto) -> None:
    store = MemorySessionStore()
    name = f"store-{uuid.uuid4().hex[:8]}"
    async with (
        MqttClient(mosquitto.uri, client_id=name, session_store=store) as client,
        client.subscription(f"store/{name}/#", qos=QOS2),
    ):
        for qos in (QOS1, QOS2):
            await client.publish(f"store/{name}/x", b"m", qos=qos)
        assert [s.filter for s in store.state.subscriptions] == [f"store/{name}/#"]
    assert store.state.outgoing == ()
    assert store.state.released == ()
    assert store.state.subscriptions == ()


async def test_session_store_keeps_subscriptions_for_the_next_client(
    mosquitto: Mosquitto,
) -> None:
    store = MemorySessionStore()
    name = f"store-{uuid.uuid4().hex[:8]}"
    async with MqttClient(
        mosquitto.uri,
        client_id=name,
        clean_start=False,
        session_expiry=60,
        session_store=store,
    ) as client:
        await client.subscribe(f"store/{name}/a", qos=QOS1, listener=lambda m: None)
    assert [s.filter for s in store.state.subscriptions] == [f"store/{name}/a"]
    async with MqttClient(
        mosquitto.uri,
        client_id=name,
        clean_start=False,
        session_expiry=0,
        session_store=store,
    ) as again:
        assert [s.filter for s in again.restored_subscriptions] == [f"store/{name}/a"]
        assert again.connack is not None
        assert again.connack.session_present


async def test_session_store_needs_a_client_id() -> None:
    with pytest.raises(ValueError, match="session_store needs a client_id"):
        MqttClient("mqtt://127.0.0.1", session_store=MemorySessionStore())


async def test_session_store_of_another_client_is_refused(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    store = SqliteSessionStore(db)
    store.open("first", ProtocolVersion.V5)
    store.close()
    client = MqttClient(
        mosquitto.uri, client_id="second", session_store=SqliteSessionStore(db)
    )
    with pytest.raises(SessionStoreError, match="'first', not 'second'"):
        async with client:
            pass
