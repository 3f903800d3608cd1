"""``bench``: publish -> receive throughput at QoS 0/1/2 and QoS 1 round-trip latency.

Each throughput phase uses two clients, a subscriber and a publisher, on one trio
loop: the publisher sends *count* messages (QoS 1/2 with a window of concurrent
publishes, so the broker's acknowledgements overlap), and the rate is messages
received over the time from the first publish to the last receipt. The latency phase
is one client that publishes at QoS 1 to a topic it subscribes to, one message at a
time, and times publish -> receipt. Everything is bounded by ``--time-limit``: a phase
cut short is reported with what it got. Progress goes to stderr (a bar redrawn in
place on a terminal, a line per phase otherwise); the table goes to stdout.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import TYPE_CHECKING, Final

import attrs
import trio

from .. import MqttClient, ProtocolVersion, QoS, __version__
from ._args import CliError
from ._checks import number

if TYPE_CHECKING:
    import argparse

__all__ = ["run_bench"]

_WINDOW: Final = 32
_IDLE: Final = 5.0
_BAR: Final = 24


@attrs.define
class _Progress:
    """A plain-text progress bar on stderr."""

    label: str
    total: int
    tty: bool = attrs.field(factory=lambda: sys.stderr.isatty())
    done: int = 0
    _shown: float = -1.0

    def _line(self) -> str:
        filled = _BAR * self.done // max(self.total, 1)
        percent = 100 * self.done // max(self.total, 1)
        bar = "#" * filled + "-" * (_BAR - filled)
        return f"{self.label:<26} [{bar}] {percent:3d}% {self.done}/{self.total}"

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.tty and (now := time.monotonic()) - self._shown >= 0.1:
            self._shown = now
            sys.stderr.write("\r" + self._line())
            sys.stderr.flush()

    def finish(self, note: str = "") -> None:
        sys.stderr.write(("\r" if self.tty else "") + self._line() + note + "\n")
        sys.stderr.flush()


@attrs.define
class _Result:
    label: str
    messages: int
    seconds: float
    value: str


def _rate(received: int, seconds: float) -> str:
    return f"{received / seconds:,.0f} msg/s" if received and seconds > 0 else "-"


async def _throughput(
    uri: str, protocol: ProtocolVersion, qos: QoS, count: int, payload: bytes
) -> _Result:
    label = f"QoS {int(qos)} publish -> receive"
    topic = f"trio-mqttconn/bench/{os.getpid()}/qos{int(qos)}"
    progress = _Progress(label, count)
    received = 0
    first = last = 0.0
    done_publishing = trio.Event()
    async with (
        MqttClient(uri, protocol=protocol, reconnect=False) as subscriber,
        MqttClient(uri, protocol=protocol, reconnect=False) as publisher,
        subscriber.subscription(topic, qos=qos, buffer=count) as sub,
    ):

        async def receive() -> None:
            nonlocal received, last
            async for _ in sub:
                received += 1
                last = trio.current_time()
                progress.step()
                if received >= count:
                    return

        async def publish(share: int) -> None:
            for _ in range(share):
                await publisher.publish(topic, payload, qos=qos)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                first = trio.current_time()
                async with trio.open_nursery() as publishers:
                    window = 1 if qos is QoS.AT_MOST_ONCE else _WINDOW
                    for index in range(window):
                        share = count // window + (index < count % window)
                        publishers.start_soon(publish, share)
                done_publishing.set()
                # A broker may drop QoS 0 messages it cannot deliver in time.
                with trio.move_on_after(_IDLE):
                    while received < count:
                        before = received
                        await trio.sleep(0.5)
                        if received == before and qos is QoS.AT_MOST_ONCE:
                            break
                nursery.cancel_scope.cancel()
        finally:
            lost = count - received
            progress.finish(f"  ({lost} not received)" if lost else "")
    return _Result(label, received, last - first, _rate(received, last - first))


async def _latency(uri: str, protocol: ProtocolVersion, pings: int) -> list[_Result]:
    topic = f"trio-mqttconn/bench/{os.getpid()}/ping"
    progress = _Progress("QoS 1 round trip", pings)
    times: list[float] = []
    try:
        async with (
            MqttClient(uri, protocol=protocol, reconnect=False) as client,
            client.subscription(topic, qos=1) as sub,
        ):
            for _ in range(pings):
                start = trio.current_time()
                await client.publish(topic, b"ping", qos=1)
                await sub.receive()
                times.append(trio.current_time() - start)
                progress.step()
    finally:
        progress.finish()
    ordered = sorted(times)
    results = []
    for name, q in (("p50", 0.50), ("p99", 0.99)):
        value = (
            f"{ordered[max(math.ceil(q * len(ordered)) - 1, 0)] * 1000:.2f} ms"
            if ordered
            else "-"
        )
        results.append(
            _Result(f"QoS 1 round trip {name}", len(times), sum(times), value)
        )
    return results


def _table(results: list[_Result]) -> str:
    rows = [("measurement", "messages", "seconds", "result")] + [
        (r.label, str(r.messages), f"{r.seconds:.3f}", r.value) for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


async def _measure(
    uri: str, args: argparse.Namespace, levels: list[QoS], limit: float
) -> list[_Result]:
    results: list[_Result] = []
    protocol = args.protocol
    payload = os.urandom(args.size_bytes)
    with trio.move_on_after(limit) as scope:
        for level in levels:
            results.append(
                await _throughput(uri, protocol, level, args.count_n, payload)
            )
        results += await _latency(uri, protocol, args.pings_n)
    if scope.cancelled_caught:
        sys.stderr.write(f"stopped after --time-limit {limit:g} s\n")
    return results


def run_bench(args: argparse.Namespace) -> int:
    """Check the arguments of ``bench``, run it and print the table; returns 0."""
    args.count_n = number("-n", args.count, 1, 1_000_000)
    args.size_bytes = number("-s", args.size, 0, 10_000_000)
    args.pings_n = number("--pings", args.pings, 0, 100_000)
    limit = float(number("--time-limit", args.time_limit, 1, 86_400))
    levels = sorted(
        {QoS(number("-q", part.strip(), 0, 2)) for part in args.qos.split(",")}
    )
    from ._options import protocol_version

    args.protocol = protocol_version(args.protocol_version)
    if args.url:
        uri, where = args.url, args.url
        results = trio.run(_measure, uri, args, levels, limit)
    else:
        from ..testing import Mosquitto

        with Mosquitto(tls=False) as broker:
            where = f"{broker.uri} (a private mosquitto)"
            results = trio.run(_measure, broker.uri, args, levels, limit)
    sys.stdout.write(
        f"trio_mqttconn {__version__} bench: {args.count_n} messages of "
        f"{args.size_bytes} B per QoS, {args.pings_n} round trips, "
        f"MQTT {'5' if args.protocol is ProtocolVersion.V5 else '3.1.1'}, "
        f"broker {where}\n\n" + _table(results)
    )
    if not results:
        raise CliError("no measurement finished within --time-limit")
    return 0
