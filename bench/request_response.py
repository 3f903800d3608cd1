"""MQTT 5 request/response: round trips per second, trio_mqttconn vs zmqtt vs gmqtt.

``python bench/request_response.py [--quick] [--seconds S] [--output bench/RESULTS.md]``
(``nox -s bench`` runs it). One private mosquitto. One responder (trio_mqttconn on
trio, in this process) subscribes to ``bench/<run>/req/#`` at QoS 1 and answers every
request with its payload, each response published at QoS 1 by a task of its own, so
it serves many requests at once. Each requesting client runs in its own process: it
connects, warms up, then keeps N requests in flight (N = 1 and 20 concurrent
requesters, each a loop of ``request -> wait for the response``) for a fixed time,
and reports the round trips it completed and the CPU time it spent. Requests are
QoS 1, 64 B.

Requesters:

* **trio_mqttconn** (trio, and asyncio through anyio): ``client.request()``, one
  response topic per client, correlation data per request;
* **zmqtt** 0.2.5, the only other Python client with a ``request()``: as documented
  (a fresh response topic per request, which it subscribes and unsubscribes), and
  with one fixed response topic passed in the request's properties;
* **gmqtt** 0.8: correlation by hand, as its users write it (one response topic,
  a dict of futures keyed by correlation data, ``on_message`` resolving them;
  QoS 1 publishes kept within gmqtt's packet-id pool).

Prints a table with ratios to trio_mqttconn (trio) and replaces its own section of
RESULTS.md (between the ``bench/request_response.py`` markers), leaving the rest of
the file as it is. Bounded: every requester runs a fixed time and is killed after
60 s.
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
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import trio
from _results import replace_section

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from trio_mqttconn import MqttClient, QoS  # noqa: E402
from trio_mqttconn.testing import Mosquitto  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from trio_mqttconn import Request

BEGIN = "<!-- bench/request_response.py: begin -->"
END = "<!-- bench/request_response.py: end -->"
CONCURRENCY = (1, 20)
WARMUP = 50
PAYLOAD = b"0123456789abcdef" * 4
RUN_LIMIT = 60.0

#: (key, label)
REQUESTERS = (
    ("tmc-trio", "trio_mqttconn (trio)"),
    ("tmc-asyncio", "trio_mqttconn (asyncio)"),
    ("zmqtt", "zmqtt, topic per request (its default)"),
    ("zmqtt-fixed", "zmqtt, one response topic"),
    ("gmqtt", "gmqtt, hand-rolled correlation"),
)


@attrs.frozen
class Row:
    """One requester at one concurrency."""

    key: str
    concurrency: int
    round_trips: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        """Round trips per second."""
        return self.round_trips / self.seconds

    @property
    def cpu_us(self) -> float:
        """Requester CPU time per round trip, microseconds."""
        return self.cpu / self.round_trips * 1e6


# -- the requester processes ----------------------------------------------------------


def report(count: int, seconds: float, cpu: float) -> None:
    """The one line a requester process ends with."""
    print(json.dumps({"count": count, "seconds": seconds, "cpu": cpu}), flush=True)


async def drive(
    request: Callable[[], Coroutine[Any, Any, None]],
    concurrency: int,
    seconds: float,
    run_all: Callable[
        [list[Callable[[], Coroutine[Any, Any, None]]]], Coroutine[Any, Any, None]
    ],
) -> None:
    """Warm up, then keep *concurrency* request loops busy for *seconds*; report."""
    for _ in range(WARMUP):
        await request()
    count = 0
    deadline = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal count
        while time.monotonic() < deadline:
            await request()
            count += 1

    cpu = time.process_time()
    started = time.monotonic()
    await run_all([loop] * concurrency)
    elapsed = time.monotonic() - started
    report(count, elapsed, time.process_time() - cpu)


async def tmc_requester(uri: str, topic: str, concurrency: int, seconds: float) -> None:
    """trio_mqttconn's ``request()`` (on whichever backend anyio runs)."""
    async with MqttClient(uri) as client:

        async def request() -> None:
            response = await client.request(topic, PAYLOAD, qos=QoS.AT_LEAST_ONCE)
            assert response.payload == PAYLOAD

        async def run_all(loops: list[Callable[[], Coroutine[Any, Any, None]]]) -> None:
            async with anyio.create_task_group() as tg:
                for loop in loops:
                    tg.start_soon(loop)

        await drive(request, concurrency, seconds, run_all)


async def zmqtt_requester(
    host: str, port: int, topic: str, concurrency: int, seconds: float, fixed: bool
) -> None:
    """zmqtt's ``request()``: its own response topic per request, or one fixed."""
    import asyncio

    import zmqtt

    properties = None
    if fixed:
        properties = zmqtt.PublishProperties(
            response_topic=f"bench/responses/{uuid.uuid4().hex}"
        )
    async with zmqtt.create_client(host, port, version="5.0") as client:

        async def request() -> None:
            response = await client.request(
                topic, PAYLOAD, qos=zmqtt.QoS.AT_LEAST_ONCE, properties=properties
            )
            assert response.payload == PAYLOAD

        async def run_all(loops: list[Callable[[], Coroutine[Any, Any, None]]]) -> None:
            await asyncio.gather(*(loop() for loop in loops))

        await drive(request, concurrency, seconds, run_all)


async def gmqtt_requester(
    host: str, port: int, topic: str, concurrency: int, seconds: float
) -> None:
    """gmqtt with correlation by hand: a dict of futures keyed by correlation data."""
    import asyncio

    from gmqtt.mqtt.constants import MQTTv50  # type: ignore[import-untyped]

    sys.path.insert(0, str(HERE / "_peers"))
    from peer_gmqtt import _Session  # type: ignore[import-not-found]

    session = _Session()
    loop = asyncio.get_running_loop()
    waiting: dict[bytes, asyncio.Future[bytes]] = {}
    response_topic = f"bench/responses/{uuid.uuid4().hex}"

    def on_message(
        client: Any, topic: str, payload: bytes, qos: int, properties: Any
    ) -> int:
        correlation = properties.get("correlation_data", [None])[0]
        future = waiting.pop(correlation, None)
        if future is not None and not future.done():
            future.set_result(payload)
        return 0

    session.client.on_message = on_message
    await session.client.connect(host, port, version=MQTTv50)
    await session.subscribe(response_topic, 1)
    counter = 0

    async def request() -> None:
        nonlocal counter
        counter += 1
        correlation = counter.to_bytes(8, "big")
        future: asyncio.Future[bytes] = loop.create_future()
        waiting[correlation] = future
        try:
            # gmqtt hands out at most receive maximum - 1 packet ids at a time.
            await session.storage.wait_below(19)
            session.client.publish(
                topic,
                PAYLOAD,
                qos=1,
                response_topic=response_topic,
                correlation_data=correlation,
            )
            payload = await future
        finally:
            waiting.pop(correlation, None)
        assert payload == PAYLOAD

    async def run_all(loops: list[Callable[[], Coroutine[Any, Any, None]]]) -> None:
        await asyncio.gather(*(loop() for loop in loops))

    await drive(request, concurrency, seconds, run_all)
    await session.close()


def requester_main(
    key: str, uri: str, topic: str, concurrency: int, seconds: float
) -> None:
    """Run one requester process."""
    import asyncio

    host, port = uri.removeprefix("mqtt://").rsplit(":", 1)
    if key == "tmc-trio":
        trio.run(tmc_requester, uri, topic, concurrency, seconds)
    elif key == "tmc-asyncio":
        anyio.run(tmc_requester, uri, topic, concurrency, seconds, backend="asyncio")
    elif key in ("zmqtt", "zmqtt-fixed"):
        asyncio.run(
            zmqtt_requester(
                host, int(port), topic, concurrency, seconds, key == "zmqtt-fixed"
            )
        )
    elif key == "gmqtt":
        asyncio.run(gmqtt_requester(host, int(port), topic, concurrency, seconds))
    else:
        raise SystemExit(f"unknown requester {key!r}")


# -- the responder and the table ------------------------------------------------------


async def measure(broker: Mosquitto, keys: list[str], seconds: float) -> list[Row]:
    """Serve requests in this process; run every requester at every concurrency."""
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    rows: list[Row] = []
    async with (
        MqttClient(broker.uri) as server,
        server.responder(f"{prefix}/req/#", qos=QoS.AT_LEAST_ONCE) as requests,
        trio.open_nursery() as nursery,
    ):

        async def answer(request: Request) -> None:
            await request.respond(request.payload, qos=QoS.AT_LEAST_ONCE)

        async def serve() -> None:
            async for request in requests:
                nursery.start_soon(answer, request)

        nursery.start_soon(serve)
        for concurrency in CONCURRENCY:
            for key in keys:
                command = [
                    sys.executable,
                    __file__,
                    "--requester",
                    key,
                    broker.uri,
                    f"{prefix}/req/{key}",
                    str(concurrency),
                    str(seconds),
                ]
                with trio.fail_after(RUN_LIMIT):
                    result = await trio.run_process(command, capture_stdout=True)
                line = json.loads(result.stdout.decode().splitlines()[-1])
                row = Row(
                    key, concurrency, int(line["count"]), line["seconds"], line["cpu"]
                )
                rows.append(row)
                print(
                    f"{key:>12} x{concurrency:<3} {row.rate:>9,.0f} round trips/s  "
                    f"{row.cpu_us:>6,.0f} µs CPU each",
                    flush=True,
                )
        nursery.cancel_scope.cancel()
    return rows


def table(rows: list[Row]) -> str:
    """The Markdown table of *rows*."""
    labels = dict(REQUESTERS)
    base = {row.concurrency: row.rate for row in rows if row.key == "tmc-trio"}
    lines = [
        "| requester | concurrent requests | round trips/s | vs trio_mqttconn (trio) "
        "| requester CPU per round trip |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = (
            f"{row.rate / base[row.concurrency]:.2f}x"
            if row.concurrency in base
            else "-"
        )
        lines.append(
            f"| {labels[row.key]} | {row.concurrency} | {row.rate:,.0f} | {ratio} "
            f"| {row.cpu_us:,.0f} µs |"
        )
    return "\n".join(lines)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def broker_version() -> str:
    """``mosquitto version x.y.z`` of the broker used."""
    from trio_mqttconn.testing import find_mosquitto

    result = subprocess.run(
        [find_mosquitto(), "-h"], capture_output=True, text=True, check=False
    )
    return (result.stdout or result.stderr).splitlines()[0].strip()


def section(rows: list[Row], command: str, seconds: float, load: str) -> str:
    """This script's section of RESULTS.md."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cores = os.cpu_count()
    return f"""{BEGIN}
## Request/response (MQTT 5): round trips per second

Produced by `{command}` (`nox -s bench` runs `python bench/request_response.py`).
One mosquitto; one responder (trio_mqttconn, trio, QoS 1 responses, one task per
request); each requester in its own process keeps 1 or 20 QoS 1 requests of 64 B in
flight for {seconds:g} s after {WARMUP} warm-up requests. CPU is the requester
process's CPU time per round trip. zmqtt {_version("zmqtt")}, gmqtt
{_version("gmqtt")}, trio_mqttconn {_version("trio_mqttconn")}.

{table(rows)}

Reading it: with one request in flight, a round trip is two PUBLISH/PUBACK
exchanges through mosquitto plus both clients' scheduling, so the rate is the
inverse of that latency. With 20 in flight the requester's CPU per round trip
decides it, until the single responder or mosquitto (one thread) saturates; on
{cores} cores the requester, the responder and the broker share the machine.
zmqtt's default makes a fresh response topic for every request, subscribes to it
(waiting for the SUBACK) before publishing and unsubscribes it afterwards: one more
exchange with the broker per request, and more packets for mosquitto to route.

Machine: {platform.processor() or platform.machine()}, {cores} logical CPUs,
{platform.platform()}, Python {platform.python_version()}, broker:
{broker_version()}; load average before / after: {load}; {when}.
{END}"""


def update_results(path: Path, text: str) -> None:
    """Replace this script's section of *path*, or append it."""
    replace_section(path, text, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per run")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per run")
    parser.add_argument(
        "--requesters",
        default=",".join(key for key, _ in REQUESTERS),
        help="comma-separated subset of " + ", ".join(key for key, _ in REQUESTERS),
    )
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--requester", nargs=5, help=argparse.SUPPRESS)
    # nox -s bench passes its arguments to every script: ignore the others' options.
    args, _ = parser.parse_known_args(argv)
    if args.requester is not None:
        key, uri, topic, concurrency, seconds = args.requester
        requester_main(key, uri, topic, int(concurrency), float(seconds))
        return 0
    seconds = 1.0 if args.quick else args.seconds
    keys = args.requesters.split(",")
    load_before = os.getloadavg()
    with Mosquitto(tls=False, websockets=False, persistence=False) as broker:
        rows = trio.run(measure, broker, keys, seconds)
    load = " / ".join(
        " ".join(f"{value:.2f}" for value in values)
        for values in (load_before, os.getloadavg())
    )
    command = "python bench/request_response.py" + (" --quick" if args.quick else "")
    print(table(rows))
    update_results(Path(args.output), section(rows, command, seconds, load))
    print(f"wrote the request/response section of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
