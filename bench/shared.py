"""Shared subscriptions: aggregate msg/s of 1, 2 and 4 consumer processes in one group.

``python bench/shared.py [--quick] [--qos 1] [--output bench/RESULTS.md]``
(``nox -s bench`` runs it). One private mosquitto; one producer (this process)
publishes numbered messages with 20 in flight to ``bench/<run>/jobs/<n>``; N
consumer processes subscribe to ``$share/bench/bench/<run>/jobs/#``, so the broker
gives each message to one of them. Three kinds of consumer:

* **no work**: the consumer only counts: what the client, the broker and the
  producer can move;
* **100 µs CPU per message**: a handler that computes (spins on the process clock);
* **1 ms wait per message**: a handler that awaits something slow (a database, an
  HTTP call), one message at a time, as ``async for`` code does.

Prints a table and replaces its own section of RESULTS.md (between the
``bench/shared.py`` markers), leaving the rest of the file as it is. Bounded: every
run has a fixed message count and fails after 120 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

import attrs
import trio
from _results import replace_section

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trio_mqttconn import MqttClient, QoS
from trio_mqttconn.testing import Mosquitto

HERE = Path(__file__).resolve().parent
BEGIN = "<!-- bench/shared.py: begin -->"
END = "<!-- bench/shared.py: end -->"
#: Publishes the producer keeps in flight (mosquitto's default receive maximum).
IN_FLIGHT = 20
CONSUMERS = (1, 2, 4)
#: (key, label, messages per run)
WORKS = (
    ("none", "no work", 20_000),
    ("cpu", "100 µs CPU per message", 10_000),
    ("wait", "1 ms wait per message", 2_000),
)
RUN_LIMIT = 120.0


@attrs.frozen
class Row:
    """One run: a kind of work and a number of consumers."""

    work: str
    consumers: int
    messages: int
    rate: float
    """Messages consumed per second, all consumers together."""
    shares: tuple[int, ...]
    """Messages each consumer handled."""
    producer_cpu: float
    """CPU seconds of the producer per wall second of the run (1.0 = one core)."""
    broker_cpu: float
    consumers_cpu: float


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of process *pid* so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


# -- the consumer process -------------------------------------------------------------


async def consumer(uri: str, prefix: str, work: str, qos: int) -> None:
    """Handle this process's share until the producer's stop; print what it did.

    The stop message is published after every job, so when it arrives every job the
    broker gave this consumer is already in its subscription: the consumer then
    finishes exactly those (``statistics().delivered`` counts them).
    """
    handled = 0
    first = last = 0.0
    target: int | None = None
    async with (
        MqttClient(uri) as client,
        client.subscription(
            f"$share/bench/{prefix}/jobs/#", qos=qos, buffer=1_000_000
        ) as jobs,
        client.subscription(f"{prefix}/stop", qos=1) as stop,
        trio.open_nursery() as nursery,
    ):

        async def wait_for_stop() -> None:
            nonlocal target
            await stop.receive()
            statistics = jobs.statistics()
            target = statistics.delivered + statistics.parked
            if handled >= target:
                nursery.cancel_scope.cancel()

        nursery.start_soon(wait_for_stop)
        await client.publish(f"{prefix}/ready", b"", qos=1)
        cpu = time.process_time()
        async for _ in jobs:
            if work == "cpu":
                _spin(100e-6)
            elif work == "wait":
                await trio.sleep(1e-3)
            handled += 1
            last = time.monotonic()
            if handled == 1:
                first = last
            if target is not None and handled >= target:
                break
        nursery.cancel_scope.cancel()
    cpu = time.process_time() - cpu
    # CLOCK_MONOTONIC is one clock for every process of the machine (Linux).
    print(json.dumps({"handled": handled, "first": first, "last": last, "cpu": cpu}))


# -- the producer and the table -----------------------------------------------------


async def run_one(
    broker: Mosquitto, work: str, consumers: int, messages: int, qos: int
) -> Row:
    """Start *consumers* processes, publish *messages*, collect their reports."""
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    reports: list[dict[str, float]] = []

    async def run_consumer() -> None:
        command = [sys.executable, __file__, "--consumer", prefix, "--work", work]
        result = await trio.run_process(
            [*command, "--qos", str(qos), broker.uri], capture_stdout=True
        )
        reports.append(json.loads(result.stdout.decode().splitlines()[-1]))

    assert broker.pid is not None
    with trio.fail_after(RUN_LIMIT):
        async with (
            MqttClient(broker.uri) as client,
            client.subscription(f"{prefix}/ready", qos=1) as ready,
            trio.open_nursery() as nursery,
        ):
            for _ in range(consumers):
                nursery.start_soon(run_consumer)
            for _ in range(consumers):
                await ready.receive()
            broker_cpu = _cpu_of(broker.pid)
            producer_cpu = time.process_time()
            started = time.monotonic()

            async def publish_every(start: int) -> None:
                for number in range(start, messages, IN_FLIGHT):
                    await client.publish(f"{prefix}/jobs/{number}", b"x" * 64, qos=qos)

            async with trio.open_nursery() as publishers:
                for start in range(IN_FLIGHT):
                    publishers.start_soon(publish_every, start)
            producer_cpu = time.process_time() - producer_cpu
            await client.publish(f"{prefix}/stop", b"", qos=1)
        broker_cpu = _cpu_of(broker.pid) - broker_cpu
    handled = [int(report["handled"]) for report in reports]
    if sum(handled) != messages:
        raise SystemExit(f"{work}, {consumers} consumers: handled {handled}")
    ended = max(report["last"] for report in reports)
    wall = ended - started
    return Row(
        work=work,
        consumers=consumers,
        messages=messages,
        rate=messages / wall,
        shares=tuple(sorted(handled)),
        producer_cpu=producer_cpu / wall,
        broker_cpu=broker_cpu / wall,
        consumers_cpu=sum(report["cpu"] for report in reports) / wall,
    )


def table(rows: list[Row]) -> str:
    """The Markdown table of *rows*."""
    labels = {key: label for key, label, _ in WORKS}
    lines = [
        "| consumers' work | consumers | msg/s consumed, all | vs 1 consumer "
        "| messages per consumer | producer CPU | broker CPU | consumers' CPU |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    single = {row.work: row.rate for row in rows if row.consumers == 1}
    for row in rows:
        lines.append(
            f"| {labels[row.work]} | {row.consumers} | {row.rate:,.0f} "
            f"| {row.rate / single[row.work]:.2f}x "
            f"| {', '.join(f'{n:,}' for n in row.shares)} "
            f"| {row.producer_cpu:.0%} | {row.broker_cpu:.0%} | {row.consumers_cpu:.0%} |"
        )
    return "\n".join(lines)


def section(rows: list[Row], qos: int, command: str, load: str) -> str:
    """This script's section of RESULTS.md."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cores = os.cpu_count()
    return f"""{BEGIN}
## Shared subscriptions: 1, 2 and 4 consumer processes in one group

Produced by `{command}` (`nox -s bench` runs `python bench/shared.py`).
One mosquitto, one producer (QoS {qos}, 64 B, {IN_FLIGHT} in flight), N consumer
processes subscribed to `$share/bench/<run>/jobs/#` (MQTT 5, trio). msg/s counts from
the producer's first publish to the last message consumed. CPU columns are CPU seconds
per wall second of the run (100 % = one core; this machine has {cores}).

{table(rows)}

What limits it:

- **No work**: one consumer takes messages faster than one Python producer publishes
  them at QoS {qos} and mosquitto routes them, so the consumed rate is the producer's
  publish rate. More consumers split the same stream and add nothing; on {cores}
  cores every extra process competes with the producer and with mosquitto (one
  thread) for CPU, so the total may even drop. Past this point scale producers and
  brokers, not consumers.
- **CPU work per message**: 100 µs caps one consumer below 10,000 msg/s. More
  consumers help only while there are idle cores: on {cores} cores shared with the
  broker and the producer, a second consumer helps little and a fourth not at all.
- **Waiting work per message** (I/O-bound handlers): one consumer handles at most
  1 / (1 ms + overhead) messages per second; each consumer adds about that much,
  because waiting costs no CPU. This is what a shared group is for. (Inside one
  process a pool of tasks fed from one subscription parallelises the waiting too.)

Machine: {platform.processor() or platform.machine()}, {cores} logical CPUs,
{platform.platform()}, Python {platform.python_version()}, broker:
{broker_version()}; load average before / after: {load}; {when}.
{END}"""


def broker_version() -> str:
    """``mosquitto version x.y.z`` of the broker used."""
    from trio_mqttconn.testing import find_mosquitto

    result = subprocess.run(
        [find_mosquitto(), "-h"], capture_output=True, text=True, check=False
    )
    return (result.stdout or result.stderr).splitlines()[0].strip()


def update_results(path: Path, text: str) -> None:
    """Replace this script's section of *path*, or append it."""
    replace_section(path, text, BEGIN, END)


async def produce(broker: Mosquitto, qos: int, scale: float, rounds: int) -> list[Row]:
    """Run every kind of work with 1, 2 and 4 consumers; print rows as they come.

    With several *rounds* each row is the fastest of its runs (the machine may be
    shared: the slower runs measure the neighbours).
    """
    rows: list[Row] = []
    for work, label, messages in WORKS:
        for consumers in CONSUMERS:
            count = max(int(messages * scale), 100 * consumers)
            runs = [
                await run_one(broker, work, consumers, count, qos)
                for _ in range(rounds)
            ]
            row = max(runs, key=lambda run: run.rate)
            rows.append(row)
            print(
                f"{label:>24} x{consumers}: {row.rate:>9,.0f} msg/s  "
                f"shares {row.shares}  producer {row.producer_cpu:.0%}  "
                f"broker {row.broker_cpu:.0%}  consumers {row.consumers_cpu:.0%}",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/10 of the messages")
    parser.add_argument("--qos", type=int, default=1, choices=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=1, help="best of N runs per row")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--consumer", help=argparse.SUPPRESS)
    parser.add_argument("--work", default="none", help=argparse.SUPPRESS)
    parser.add_argument("uri", nargs="?", help=argparse.SUPPRESS)
    # nox -s bench passes its arguments to every script: ignore the others' options.
    args, _ = parser.parse_known_args(argv)
    if args.consumer is not None:
        trio.run(consumer, args.uri, args.consumer, args.work, args.qos)
        return 0
    qos = QoS(args.qos)
    load_before = os.getloadavg()
    with Mosquitto(tls=False, websockets=False, persistence=False) as broker:
        rows = trio.run(produce, broker, qos, 0.1 if args.quick else 1.0, args.rounds)
    load = " / ".join(
        " ".join(f"{value:.2f}" for value in values)
        for values in (load_before, os.getloadavg())
    )
    command = "python bench/shared.py" + (" --quick" if args.quick else "")
    if args.rounds > 1:
        command += f" --rounds {args.rounds}"
    text = section(rows, qos, command, load)
    print(table(rows))
    update_results(Path(args.output), text)
    print(f"wrote the shared-subscription section of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
