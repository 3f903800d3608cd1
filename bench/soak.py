"""Soak test: mixed QoS traffic through a faulty network, then count what arrived.

``nox -s soak`` (10 minutes by default; ``nox -s soak -- --duration 60`` for one).
Outside CI: it runs for minutes and its faults are random (the seed is printed, and
``--seed`` repeats a run's fault schedule).

One private mosquitto (persistence on) sits behind a `FaultProxy`. Through it:

* a **publisher** (persistent session) publishes numbered messages at QoS 0, 1 and 2
  from three tasks, and remembers every number whose ``publish()`` returned;
* a **fast subscriber** and a **slow subscriber** (persistent sessions, small
  buffers; the slow one awaits 1 ms per message, so its buffer fills, messages are
  parked and their acknowledgements withheld) receive ``soak/#`` at QoS 2;
* a **listener subscriber** (persistent session) receives ``soak/#`` at QoS 2 through
  a synchronous ``listener=`` (called by the task reading the connection, or by the
  dispatcher task when messages queue for it);
* a **chaos** task resets or closes every connection, blackholes traffic for a few
  seconds (the keepalive must notice), or stalls it, at random moments.

At the end the network heals, the publishers stop, and the subscribers drain. The
run fails (exit 1) if either subscriber misses a QoS 1 or QoS 2 message whose
``publish()`` returned, or receives a QoS 2 message twice. QoS 0 is counted only.
"""

from __future__ import annotations

import argparse
import collections
import functools
import random
import sys
import time
from pathlib import Path

import anyio
import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests._faultproxy import FaultProxy
from trio_mqttconn import (
    ClientStatistics,
    ConnectionLost,
    Message,
    MqttClient,
    MqttError,
    QoS,
)
from trio_mqttconn.testing import Mosquitto

#: Reconnect quickly: the run is about surviving drops, not about waiting.
_CLIENT_OPTIONS: dict[str, object] = {
    "keepalive": 2,
    "clean_start": False,
    "session_expiry": 3600,
    "reconnect_delay": 0.05,
    "max_reconnect_delay": 0.5,
    "connect_timeout": 5.0,
}


@attrs.define
class Tally:
    """What one subscriber received, per QoS."""

    name: str
    seen: dict[int, collections.Counter[int]] = attrs.Factory(
        lambda: {qos: collections.Counter() for qos in (0, 1, 2)}
    )

    def record(self, payload: bytes) -> None:
        qos, number = payload.split(b":")
        self.seen[int(qos)][int(number)] += 1


@attrs.define
class Soak:
    """One run's settings and what it observed."""

    duration: float
    seed: int
    acked: dict[int, set[int]] = attrs.Factory(lambda: {0: set(), 1: set(), 2: set()})
    faults: collections.Counter[str] = attrs.Factory(collections.Counter)
    losses: collections.Counter[str] = attrs.Factory(collections.Counter)
    publishing: bool = True

    def lost(self, name: str, exc: BaseException) -> None:
        # "the connection broke: <details>" -> one line per kind of loss
        self.losses[f"{name}: {str(exc).split(':')[0][:60]}"] += 1

    async def publisher(self, client: MqttClient, qos: int) -> None:
        number = 0
        while self.publishing:
            number += 1
            payload = f"{qos}:{number}".encode()
            try:
                await client.publish(f"soak/q{qos}", payload, qos=QoS(qos))
            except ConnectionLost:
                # Only QoS 0 says so (its bytes may not have left): not
                # acknowledged, not counted. QoS 1/2 wait for the next link.
                if qos:
                    raise
                continue
            self.acked[qos].add(number)
            # Paced (about 300 messages/s per QoS), so that the slow subscriber
            # can catch up after a fault: the run checks delivery, not speed.
            await anyio.sleep(1 / 300)

    async def subscriber(
        self,
        client: MqttClient,
        tally: Tally,
        delay: float,
        ready: anyio.Event,
    ) -> None:
        async with client.subscription(
            "soak/#", qos=QoS.EXACTLY_ONCE, buffer=64
        ) as sub:
            ready.set()
            async for message in sub:
                tally.record(message.payload)
                if delay:
                    await anyio.sleep(delay)

    async def listener(
        self, client: MqttClient, tally: Tally, ready: anyio.Event
    ) -> None:
        def record(message: Message) -> None:
            tally.record(message.payload)

        await client.subscribe("soak/#", qos=QoS.EXACTLY_ONCE, listener=record)
        ready.set()

    async def chaos(self, proxy: FaultProxy, rng: random.Random) -> None:
        while True:
            await anyio.sleep(rng.uniform(0.5, 4.0))
            fault = rng.choice(["reset", "close", "blackhole", "stall", "cut"])
            self.faults[fault] += 1
            if fault == "reset":
                proxy.drop(rst=True)
            elif fault == "close":
                proxy.drop(rst=False)
            elif fault == "cut":
                proxy.cut_after(rng.randint(1, 4000), rng.choice(["up", "down"]))
                await anyio.sleep(1.0)
                proxy.heal()
            else:
                # long enough, sometimes, for the keepalive (2 s) to declare it dead
                getattr(proxy, fault)(rng.choice(["up", "down", "both"]))
                await anyio.sleep(rng.uniform(0.2, 4.0))
                proxy.heal()


def _check(soak: Soak, tallies: list[Tally]) -> list[str]:
    problems: list[str] = []
    for tally in tallies:
        for qos in (1, 2):
            missing = soak.acked[qos] - set(tally.seen[qos])
            if missing:
                problems.append(
                    f"{tally.name} misses {len(missing)} acknowledged QoS {qos} "
                    f"messages, e.g. {sorted(missing)[:10]}"
                )
        twice = [n for n, count in tally.seen[2].items() if count > 1]
        if twice:
            problems.append(
                f"{tally.name} received {len(twice)} QoS 2 messages more than once, "
                f"e.g. {sorted(twice)[:10]}"
            )
    return problems


async def _drained(soak: Soak, tallies: list[Tally], limit: float) -> bool:
    # A soak script, not a test: looking again every 0.1 s is simplest here.
    with anyio.move_on_after(limit):
        while _check(soak, tallies):  # noqa: ASYNC110
            await anyio.sleep(0.1)
        return True
    return False


async def run(duration: float, seed: int, *, drain_limit: float = 60.0) -> int:
    """Run one soak; print a report; return the exit status (0: nothing lost)."""
    soak = Soak(duration=duration, seed=seed)
    rng = random.Random(seed)
    tallies = [
        Tally("fast subscriber"),
        Tally("slow subscriber"),
        Tally("listener subscriber"),
    ]
    with Mosquitto(tls=False, websockets=False) as broker:
        async with FaultProxy(broker.port) as proxy, anyio.create_task_group() as tg:
            clients = [
                MqttClient(
                    proxy.uri,
                    client_id=f"soak-{name}",
                    on_connection_lost=functools.partial(soak.lost, name),
                    **_CLIENT_OPTIONS,  # type: ignore[arg-type]
                )
                for name in ("pub", "fast", "slow", "listen")
            ]
            publisher, fast, slow, listen = clients
            async with publisher, fast, slow, listen:
                ready = [anyio.Event(), anyio.Event(), anyio.Event()]
                tg.start_soon(soak.subscriber, fast, tallies[0], 0.0, ready[0])
                tg.start_soon(soak.subscriber, slow, tallies[1], 0.001, ready[1])
                tg.start_soon(soak.listener, listen, tallies[2], ready[2])
                for event in ready:
                    await event.wait()
                async with anyio.create_task_group() as traffic:
                    for qos in (0, 1, 2):
                        traffic.start_soon(soak.publisher, publisher, qos)
                    traffic.start_soon(soak.chaos, proxy, rng)
                    started = time.monotonic()
                    while time.monotonic() - started < duration:
                        await anyio.sleep(min(10.0, duration))
                        _progress(soak, tallies, time.monotonic() - started)
                    soak.publishing = False
                    traffic.cancel_scope.cancel()
                proxy.heal()
                # Publishes cut short by the end of the run did not return: they
                # are not counted as acknowledged, whether or not they arrive.
                drained = await _drained(soak, tallies, drain_limit)
                statistics = [client.statistics() for client in clients]
                tg.cancel_scope.cancel()
    problems = _check(soak, tallies)
    _report(soak, tallies, statistics, drained)
    for problem in problems:
        print(f"FAIL: {problem}")
    if not problems:
        print("PASS: nothing acknowledged was lost, no QoS 2 duplicate")
    return 1 if problems else 0


def _progress(soak: Soak, tallies: list[Tally], elapsed: float) -> None:
    acked = " ".join(f"q{q}={len(soak.acked[q])}" for q in (0, 1, 2))
    faults = sum(soak.faults.values())
    print(f"[{elapsed:6.0f} s] acknowledged {acked}; faults {faults}", flush=True)


def _report(
    soak: Soak, tallies: list[Tally], statistics: list[ClientStatistics], drained: bool
) -> None:
    print(f"seed {soak.seed}, {soak.duration:g} s, drained: {drained}")
    print(f"faults: {dict(soak.faults)}")
    for loss, count in sorted(soak.losses.items()):
        print(f"  {count:4d} x {loss}")
    for qos in (0, 1, 2):
        row = [f"QoS {qos}: acknowledged {len(soak.acked[qos])}"]
        for tally in tallies:
            row.append(f"{tally.name} {sum(tally.seen[qos].values())}")
        print("; ".join(row))
    names = ("publisher", "fast", "slow", "listener")
    for name, stats in zip(names, statistics, strict=True):
        print(f"{name}: {stats}")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python bench/soak.py [--duration S] [--seed N] [--backend B]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--backend", choices=["trio", "asyncio"], default="trio")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    try:
        return anyio.run(run, args.duration, seed, backend=args.backend)
    except MqttError as exc:
        print(f"FAIL: the run ended with {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
