"""What every Python benchmark driver shares: the command line, counters, the report.

A driver is run as ``python bench/_peers/<peer>.py ROLE HOST PORT TOPIC QOS SIZE COUNT
NFILTERS BUDGET`` (``bench/mosq_bench.c`` takes the same arguments) and talks to
``bench/clients.py`` through its standard streams:

* it prints ``ready`` once connected (and subscribed), then starts measuring;
* a publisher keeps its connection open until its standard input reaches EOF (the
  harness closes it once the subscriber is done), so nothing is cut off;
* it ends with one line ``result key=value ...`` (numbers only).

Roles:

``sub``
    subscribe to TOPIC and count COUNT messages (stop early after ``IDLE`` s without
    one, or BUDGET s without any); report the rate between the first and the last
    message and the process CPU time spent after ``ready``.
``filters``
    subscribe to NFILTERS filters ``TOPIC/<i>/+``, each routed to its own handler, and
    count COUNT messages in total like ``sub``; also report the time the subscribing took.
``pub``
    publish COUNT messages of SIZE bytes (to ``TOPIC`` or, with NFILTERS > 0, round
    robin to ``TOPIC/<i>/v``); QoS 1/2 keep ``WINDOW`` messages in flight (the broker's
    receive maximum).
``pingpong``
    subscribe to TOPIC, then COUNT times: publish, wait for the publish to complete
    and for the echo; report round-trip percentiles (stop after BUDGET s).
``connect``
    COUNT times (after ``WARMUP_CONNECTS``): connect, subscribe (wait for SUBACK),
    disconnect; report percentiles.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
import time
from typing import TYPE_CHECKING, TypeVar

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

F = TypeVar("F", bound="Callable[[Spec], object]")

IDLE = 1.5
"""Seconds without a message after which a subscriber stops counting."""
WINDOW = 20
"""QoS 1/2 publishes kept in flight (mosquitto's default receive maximum)."""
WARMUP = 20
"""Ping-pong round trips done before measuring."""
WARMUP_CONNECTS = 2
"""Connect cycles done before measuring (first-use imports and caches)."""


@attrs.frozen
class Spec:
    """One driver's job, parsed from the command line."""

    role: str
    host: str
    port: int
    topic: str
    qos: int
    size: int
    count: int
    nfilters: int
    budget: float

    @property
    def payload(self) -> bytes:
        """SIZE bytes of payload."""
        return (b"0123456789abcdef" * (self.size // 16 + 1))[: self.size]

    def topics(self) -> list[str]:
        """The topics a publisher cycles through."""
        if self.nfilters:
            return [f"{self.topic}/{i}/v" for i in range(self.nfilters)]
        return [self.topic]

    def filters(self) -> list[str]:
        """The filters the ``filters`` role subscribes to, one handler each."""
        return [f"{self.topic}/{i}/+" for i in range(self.nfilters)]


def parse(argv: list[str] | None = None) -> Spec:
    """Parse ``ROLE HOST PORT TOPIC QOS SIZE COUNT NFILTERS BUDGET``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 9:
        raise SystemExit(
            "usage: ROLE HOST PORT TOPIC QOS SIZE COUNT NFILTERS BUDGET "
            f"(got {len(args)} arguments)"
        )
    role, host, port, topic, qos, size, count, nfilters, budget = args
    return Spec(
        role,
        host,
        int(port),
        topic,
        int(qos),
        int(size),
        int(count),
        int(nfilters),
        float(budget),
    )


def ready() -> None:
    """Tell the harness the client is connected (and subscribed)."""
    sys.stdout.write("ready\n")
    sys.stdout.flush()


def wait_stdin_eof() -> None:
    """Block until the harness closes our standard input."""
    os.read(0, 1 << 16)
    while os.read(0, 1 << 16):
        pass


def max_rss_kib() -> int:
    """Peak resident set size of this process in KiB.

    Linux's ``VmHWM``: ``ru_maxrss`` is no good here, because a process started by
    fork + exec keeps the parent's peak (the harness's) in it across the exec.
    """
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def report(**values: float) -> None:
    """Print the ``result`` line (peak RSS is added)."""
    values["rss_kib"] = max_rss_kib()
    text = " ".join(f"{key}={value:.6g}" for key, value in values.items())
    sys.stdout.write(f"result {text}\n")
    sys.stdout.flush()


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile of *samples* (0.0 when empty)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


@attrs.define
class Counter:
    """Counts received messages and remembers when the first and the last came."""

    goal: int
    budget: float
    n: int = 0
    first: float = 0.0
    last: float = 0.0
    started: float = attrs.field(factory=time.perf_counter)
    cpu_started: float = attrs.field(factory=time.process_time)

    def hit(self) -> bool:
        """Count one message; True once the goal is reached."""
        now = time.perf_counter()
        if not self.n:
            self.first = now
        self.last = now
        self.n += 1
        return self.n >= self.goal

    def should_stop(self) -> bool:
        """True when the goal is reached, the flow went idle or never started."""
        if self.n >= self.goal:
            return True
        now = time.perf_counter()
        if self.n:
            return now - self.last > IDLE
        return now - self.started > self.budget

    def report(self, **extra: float) -> None:
        """Print the result line: rate between first and last message, CPU per message."""
        cpu = time.process_time() - self.cpu_started
        span = self.last - self.first
        rate = (self.n - 1) / span if self.n > 1 and span > 0 else 0.0
        report(
            received=self.n,
            rate=rate,
            cpu_us=cpu * 1e6 / max(self.n, 1),
            span_s=span,
            **extra,
        )


@attrs.define
class PublishTimer:
    """Measures a publisher: wall time of the publishing, CPU until the harness stops it."""

    count: int
    started: float = attrs.field(factory=time.perf_counter)
    cpu_started: float = attrs.field(factory=time.process_time)
    finished: float = 0.0

    def done(self) -> None:
        """Every publish has completed (written for QoS 0, acknowledged for QoS 1/2)."""
        self.finished = time.perf_counter()

    def report(self, **extra: float) -> None:
        """Print the result line."""
        cpu = time.process_time() - self.cpu_started
        span = self.finished - self.started
        report(
            sent=self.count,
            pub_rate=self.count / span if span > 0 else 0.0,
            cpu_us=cpu * 1e6 / max(self.count, 1),
            **extra,
        )


def report_round_trips(samples: list[float], cpu: float) -> None:
    """Print percentiles of round-trip times (seconds) and CPU per round trip."""
    report(
        n=len(samples),
        p50_us=percentile(samples, 0.50) * 1e6,
        p99_us=percentile(samples, 0.99) * 1e6,
        mean_us=sum(samples) / max(len(samples), 1) * 1e6,
        cpu_us=cpu * 1e6 / max(len(samples), 1),
    )


def round_trips(spec: Spec, warmup: int) -> Iterator[None]:
    """Drive a round-trip measurement: the caller does one round trip per item.

    The first *warmup* items are not measured; then up to COUNT items are timed
    (stopping once BUDGET s have passed) and `report_round_trips` prints the result
    when the iteration ends. Works for sync and async round trips alike::

        for _ in _common.round_trips(spec, _common.WARMUP):
            await round_trip()
    """
    for _ in range(warmup):
        yield
    samples: list[float] = []
    cpu = time.process_time()
    deadline = time.perf_counter() + spec.budget
    for _ in range(spec.count):
        started = time.perf_counter()
        yield
        now = time.perf_counter()
        samples.append(now - started)
        if now > deadline:
            break
    report_round_trips(samples, time.process_time() - cpu)


def roles(*drivers: F) -> dict[str, F]:
    """A driver's role table: each role function under its own name."""
    return {driver.__name__: driver for driver in drivers}
