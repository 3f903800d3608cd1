"""Side-by-side client benchmark: trio_mqttconn against aiomqtt, paho-mqtt, trio-paho-mqtt, gmqtt, libmosquitto.

Usage::

    python bench/clients.py [--quick] [--rounds N] [--peers a,b] [--scenarios x,y]
                            [--output bench/RESULTS.md]
    python bench/clients.py --profile sub|pub [--profile-qos Q] [--profile-other PEER]

One private mosquitto (``trio_mqttconn.testing.Mosquitto(tls=False)``) serves every
scenario; each client runs in its own process (the drivers in ``bench/_peers/`` and
``bench/mosq_bench.c``, compiled here with ``cc -O2 ... -lmosquitto``), one process at a
time except the publisher/subscriber pairs. Scenarios run one after the other and every
client runs each scenario back to back, so they see the same machine; on a small, shared
machine compare the ratios rather than the absolute numbers.

Scenarios:

* 1 publisher -> 1 subscriber, 64 B and 4 KiB payloads, QoS 0/1/2: messages/s received
  (first to last message) and the CPU time per message of the subscriber process and of
  the publisher process (``time.process_time`` / ``CLOCK_PROCESS_CPUTIME_ID`` inside each).
  Each client is measured twice, as subscriber fed by the reference publisher
  (libmosquitto) and as publisher feeding the reference subscriber, so neither number
  depends on the speed of the client's own other half (``--pairing same`` pairs each
  client with itself instead: end-to-end numbers).
* ping-pong latency at QoS 0 and 1: publish, wait for completion and for the echo.
* one subscriber with 1,000 filters, each routed to its own handler.
* connect + subscribe (SUBACK) + disconnect.
* peak RSS of the subscribers (``VmHWM``: a child's ``ru_maxrss`` keeps the harness's
  peak across exec).

``--profile sub`` (or ``pub``) instead runs a 64 B throughput scenario with
trio_mqttconn's subscriber (publisher) under py-spy (``pip install py-spy``) and prints
the functions with the most self and total time.
"""

from __future__ import annotations

import argparse
import collections
import compileall
import contextlib
import datetime
import os
import platform
import queue
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs
from _results import kept_sections

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_DIR = HERE / "_peers"
LOG = Path(tempfile.gettempdir()) / "trio-mqttconn-bench-drivers.log"

# -- clients -------------------------------------------------------------------------


@attrs.frozen
class Peer:
    """One client under test: a column of the table."""

    key: str
    label: str
    command: tuple[str, ...]
    version: str


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _python_peer(key: str, label: str, script: str, distribution: str) -> Peer:
    return Peer(
        key,
        label,
        (sys.executable, str(PEERS_DIR / script)),
        _version(distribution),
    )


def _tmc_version() -> str:
    sys.path.insert(0, str(ROOT))
    try:
        from trio_mqttconn import __version__
    finally:
        sys.path.pop(0)
    return __version__


def build_mosq_bench(directory: Path) -> tuple[Peer | None, str]:
    """Compile ``mosq_bench.c`` into *directory*; (None, why) when that is impossible."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler (apt-get install gcc)"
    binary = directory / "mosq_bench"
    build = [
        compiler,
        "-O2",
        "-o",
        str(binary),
        str(HERE / "mosq_bench.c"),
        "-lmosquitto",
    ]
    done = subprocess.run(build, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None, (
            "could not build bench/mosq_bench.c (Debian: apt-get install "
            f"libmosquitto-dev): {done.stderr.strip().splitlines()[-1:]}"
        )
    version = subprocess.run(
        [str(binary), "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return Peer("libmosquitto", "libmosquitto (C)", (str(binary),), version), ""


def all_peers(directory: Path) -> tuple[list[Peer], list[str]]:
    """Every client, in table order, and notes on the ones that cannot run."""
    tmc = _tmc_version()
    peers = [
        Peer(
            "tmc-trio",
            "trio_mqttconn (trio)",
            (sys.executable, str(PEERS_DIR / "peer_tmc_trio.py")),
            tmc,
        ),
        Peer(
            "tmc-asyncio",
            "trio_mqttconn (asyncio)",
            (sys.executable, str(PEERS_DIR / "peer_tmc_asyncio.py")),
            tmc,
        ),
        _python_peer("aiomqtt", "aiomqtt", "peer_aiomqtt.py", "aiomqtt"),
        _python_peer("paho", "paho-mqtt (thread)", "peer_paho.py", "paho-mqtt"),
        _python_peer(
            "trio-paho", "trio-paho-mqtt", "peer_trio_paho.py", "trio-paho-mqtt"
        ),
        _python_peer("gmqtt", "gmqtt", "peer_gmqtt.py", "gmqtt"),
    ]
    notes = []
    available = []
    for peer in peers:
        if peer.version == "not installed":
            notes.append(
                f"{peer.label}: not installed (pip install -e '.[bench]'); skipped"
            )
        else:
            available.append(peer)
    c_peer, why = build_mosq_bench(directory)
    if c_peer is None:
        notes.append(f"libmosquitto (C): {why}; skipped")
    else:
        available.append(c_peer)
    return available, notes


# -- running one driver --------------------------------------------------------------


class DriverError(Exception):
    """A driver failed, timed out or printed no result."""


class Driver:
    """A driver process: reads its ``ready`` and ``result`` lines from a thread."""

    def __init__(self, peer: Peer, args: list[str], log: IO[str]) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        env["PYTHONUNBUFFERED"] = "1"
        self.peer = peer
        self.args = args
        self._log = log
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in finish()
        self.process = subprocess.Popen(
            [*peer.command, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def expect(self, word: str, timeout: float) -> str:
        """Wait for the next line starting with *word*."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise DriverError(
                    f"timeout: no {word!r} within {timeout:g} s"
                ) from None
            if line is None:
                raise DriverError(f"exited without {word!r}: {self.stderr_tail()}")
            if line.split(" ", 1)[0] == word:
                return line

    def result(self, timeout: float) -> dict[str, float]:
        """Wait for the ``result`` line and parse it."""
        line = self.expect("result", timeout)
        values = {}
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            values[key] = float(value)
        return values

    def close_stdin(self) -> None:
        """Tell a publisher to finish."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()

    def stderr_tail(self) -> str:
        """The last lines the driver wrote to stderr."""
        self._stderr.seek(0)
        lines = self._stderr.read().strip().splitlines()
        return " | ".join(lines[-3:]) or f"exit status {self.process.poll()}"

    def finish(self, timeout: float = 10.0) -> None:
        """Wait for the process to end; kill its process group when it does not."""
        self.close_stdin()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 9)
            self.process.wait()
        self._stderr.seek(0)
        errors = self._stderr.read().strip()
        if errors:
            self._log.write(
                f"--- {self.peer.key} {shlex.join(self.args)}\n{errors[-4000:]}\n"
            )
        self._stderr.close()


@contextlib.contextmanager
def driver(peer: Peer, args: list[str], log: IO[str]) -> Iterator[Driver]:
    """Start a driver and make sure it is gone afterwards."""
    started = Driver(peer, args, log)
    try:
        yield started
    finally:
        started.finish()


# -- scenarios -----------------------------------------------------------------------


@attrs.frozen
class Settings:
    """Message counts and time limits (``--quick`` divides the counts by 10)."""

    qos0_count: int
    qos12_count: int
    pingpong_qos0: int
    pingpong_qos1: int
    filters: int
    filters_count: int
    connects: int
    pingpong_budget: float
    timeout: float


FULL = Settings(20_000, 5_000, 2_000, 1_000, 1_000, 20_000, 50, 10.0, 60.0)
QUICK = Settings(2_000, 500, 200, 100, 1_000, 2_000, 5, 3.0, 30.0)

Results = dict[str, dict[str, dict[str, float]]]
"""scenario -> peer key -> measured values (``sub.*``, ``pub.*`` or plain)."""


@attrs.define
class Bench:
    """Runs the scenarios against one broker and collects the results."""

    host: str
    port: int
    settings: Settings
    log: IO[str]
    results: Results = attrs.field(factory=dict)
    failures: dict[str, dict[str, str]] = attrs.field(factory=dict)
    reference: Peer | None = None
    """The other side of every throughput pair (None: each client with itself)."""
    run_id: str = attrs.field(factory=lambda: uuid.uuid4().hex[:8])
    _topics: int = 0

    def topic(self) -> str:
        """A topic no earlier run used."""
        self._topics += 1
        return f"bench/{self.run_id}/{self._topics}"

    def args(
        self,
        role: str,
        topic: str,
        *,
        qos: int = 0,
        size: int = 64,
        count: int = 1,
        nfilters: int = 0,
        budget: float = 0.0,
    ) -> list[str]:
        """The driver command line."""
        budget = budget or self.settings.timeout
        return [
            role,
            self.host,
            str(self.port),
            topic,
            str(qos),
            str(size),
            str(count),
            str(nfilters),
            f"{budget:g}",
        ]

    def _store(self, scenario: str, peer: Peer, values: dict[str, float]) -> None:
        best = self.results.setdefault(scenario, {}).get(peer.key)
        if best is None:
            self.results[scenario][peer.key] = values
            return
        # Several rounds: keep each peer's best round for each value.
        for key, value in values.items():
            lower_is_better = key.endswith(("cpu_us", "_us", "_ms", "rss_kib"))
            old = best.get(key, value)
            best[key] = min(old, value) if lower_is_better else max(old, value)

    def _fail(self, scenario: str, peer: Peer, error: Exception) -> None:
        message = str(error)
        self.failures.setdefault(scenario, {})[peer.key] = message
        self.log.write(f"!!! {scenario} {peer.key}: {message}\n")
        print(f"    {peer.label}: FAILED ({message})", flush=True)

    def _run_pair(
        self,
        scenario: str,
        sub_peer: Peer,
        pub_peer: Peer,
        blame: Peer,
        *,
        sub_role: str,
        pub_role: str = "pub",
        qos: int,
        size: int,
        count: int,
        nfilters: int,
    ) -> tuple[dict[str, float], dict[str, float]] | None:
        """Run one subscriber and one publisher; their result values (None: failed)."""
        topic = self.topic()
        timeout = self.settings.timeout
        started = time.monotonic()
        sub_args = self.args(
            sub_role, topic, qos=qos, size=size, count=count, nfilters=nfilters
        )
        pub_args = self.args(
            pub_role, topic, qos=qos, size=size, count=count, nfilters=nfilters
        )
        try:
            with driver(sub_peer, sub_args, self.log) as sub:
                sub.expect("ready", timeout)
                with driver(pub_peer, pub_args, self.log) as pub:
                    pub.expect("ready", timeout)
                    left = timeout - (time.monotonic() - started)
                    sub_values = sub.result(max(left, 1.0))
                    pub.close_stdin()
                    pub_values = pub.result(15.0)
        except DriverError as exc:
            self._fail(scenario, blame, exc)
            return None
        return sub_values, pub_values

    def pair(
        self,
        scenario: str,
        peer: Peer,
        *,
        sub_role: str = "sub",
        pub_role: str = "pub",
        qos: int,
        size: int,
        count: int,
        nfilters: int = 0,
        publisher_too: bool = True,
        subscriber_too: bool = True,
    ) -> None:
        """Measure *peer* as subscriber and (with *publisher_too*) as publisher.

        Against the reference client when there is one (each side measured with the
        same cheap, fast other side), else against itself. Stores ``sub.*`` (the
        subscriber's values) and ``pub.*`` (the publisher's, with ``pub.rate`` and
        ``pub.received`` as counted by the subscriber it fed).
        """
        ref = self.reference or peer

        def run(
            sub_peer: Peer, pub_peer: Peer
        ) -> tuple[dict[str, float], dict[str, float]] | None:
            return self._run_pair(
                scenario,
                sub_peer,
                pub_peer,
                peer,
                sub_role=sub_role,
                pub_role=pub_role,
                qos=qos,
                size=size,
                count=count,
                nfilters=nfilters,
            )

        if subscriber_too:
            ran = run(peer, ref)
            if ran is None:
                return
            sub_values, pub_values = ran
            values = {f"sub.{k}": v for k, v in sub_values.items()}
        else:
            sub_values, pub_values, values = {}, {}, {}
        if publisher_too and ref is not peer:
            ran = run(ref, peer)
            if ran is None:
                return
            ref_sub_values, pub_values = ran
        else:
            ref_sub_values = sub_values
        if publisher_too:
            values.update({f"pub.{k}": v for k, v in pub_values.items()})
            values["pub.rate"] = ref_sub_values.get("rate", 0.0)
            values["pub.received"] = ref_sub_values.get("received", 0.0)
        self._store(scenario, peer, values)
        lost = count - int(sub_values.get("received", count))
        text = (
            f"    {peer.label:24} sub {sub_values.get('rate', 0):>8,.0f} msg/s "
            f"{sub_values.get('cpu_us', 0):6.1f} µs/msg"
        )
        if publisher_too:
            lost += count - int(ref_sub_values.get("received", 0))
            text += (
                f"   pub {values['pub.rate']:>8,.0f} msg/s "
                f"{values.get('pub.cpu_us', 0):6.1f} µs/msg"
            )
        print(text + (f"   LOST {lost}" if lost else ""), flush=True)

    def single(self, scenario: str, peer: Peer, args: list[str], describe: str) -> None:
        """Run one driver (ping-pong, connect cycles) and store its values."""
        try:
            with driver(peer, args, self.log) as one:
                one.expect("ready", self.settings.timeout)
                values = one.result(self.settings.timeout)
        except DriverError as exc:
            self._fail(scenario, peer, exc)
            return
        self._store(scenario, peer, values)
        print(f"    {peer.label:24} " + describe.format(**values), flush=True)

    # The scenarios, in table order.

    def scenarios(self) -> list[tuple[str, Callable[[Peer], None]]]:
        """(scenario key, run-for-one-peer) in run order."""
        s = self.settings
        found: list[tuple[str, Callable[[Peer], None]]] = []
        for size in (64, 4096):
            for qos in (0, 1, 2):
                count = s.qos0_count if qos == 0 else s.qos12_count

                def run(
                    peer: Peer, size: int = size, qos: int = qos, count: int = count
                ) -> None:
                    self.pair(
                        f"tp-{size}-{qos}",
                        peer,
                        sub_role="sub",
                        qos=qos,
                        size=size,
                        count=count,
                    )

                found.append((f"tp-{size}-{qos}", run))
        for qos in (0, 1):
            count = s.pingpong_qos0 if qos == 0 else s.pingpong_qos1

            def ping(peer: Peer, qos: int = qos, count: int = count) -> None:
                args = self.args(
                    "pingpong",
                    self.topic(),
                    qos=qos,
                    count=count,
                    budget=s.pingpong_budget,
                )
                self.single(
                    f"pp-{qos}",
                    peer,
                    args,
                    "p50 {p50_us:8.0f} µs   p99 {p99_us:8.0f} µs   ({n:.0f} round trips)",
                )

            found.append((f"pp-{qos}", ping))

        def filters(peer: Peer) -> None:
            self.pair(
                "filters",
                peer,
                sub_role="filters",
                qos=0,
                size=64,
                count=s.filters_count,
                nfilters=s.filters,
                publisher_too=False,
            )

        found.append(("filters", filters))

        def tasks(peer: Peer) -> None:
            # trio_mqttconn: a task per subscription (the idiom the README shows);
            # the others: their fastest, callbacks (as in "filters").
            self.pair(
                "tasks",
                peer,
                sub_role="tasks" if peer.key.startswith("tmc") else "filters",
                qos=0,
                size=64,
                count=s.filters_count,
                nfilters=s.filters,
                publisher_too=False,
            )

        found.append(("tasks", tasks))

        def ours_only(scenario: str, **options: Any) -> Callable[[Peer], None]:
            def run(peer: Peer) -> None:
                if peer.key.startswith("tmc"):
                    self.pair(
                        scenario, peer, qos=0, size=64, count=s.qos0_count, **options
                    )

            return run

        # One subscription read at half the pace of another on the same topic: the
        # fast one's throughput (trio_mqttconn only: the others have no
        # per-subscription buffers to hold the slow one's messages).
        found.append(("slow", ours_only("slow", sub_role="slow", publisher_too=False)))
        # trio_mqttconn's QoS 0 publisher above uses publish_nowait (as gmqtt and
        # paho publish); this one awaits publish() for every message.
        found.append(
            (
                "await-64-0",
                ours_only("await-64-0", pub_role="pubawait", subscriber_too=False),
            )
        )

        def connects(peer: Peer) -> None:
            args = self.args(
                "connect",
                self.topic(),
                count=s.connects,
                budget=s.pingpong_budget,
            )
            self.single(
                "connect",
                peer,
                args,
                "p50 {p50_us:8.0f} µs   p99 {p99_us:8.0f} µs   ({n:.0f} cycles)",
            )

        found.append(("connect", connects))
        return found


# -- the table -----------------------------------------------------------------------


@attrs.frozen
class Row:
    """One line of the table: a value picked from one scenario's results."""

    label: str
    scenario: str
    key: str
    higher_is_better: bool
    scale: float = 1.0
    digits: int = 0
    cpu: bool = False


def rows(settings: Settings) -> list[Row]:
    """The table's rows."""
    found = []
    for size, size_label in ((64, "64 B"), (4096, "4 KiB")):
        for qos in (0, 1, 2):
            scenario = f"tp-{size}-{qos}"
            name = f"{size_label} QoS {qos}"
            found += [
                Row(f"{name}: msg/s received by it", scenario, "sub.rate", True),
                Row(
                    f"{name}: subscriber CPU µs/msg",
                    scenario,
                    "sub.cpu_us",
                    False,
                    digits=1,
                    cpu=True,
                ),
                Row(f"{name}: msg/s published by it", scenario, "pub.rate", True),
                Row(
                    f"{name}: publisher CPU µs/msg",
                    scenario,
                    "pub.cpu_us",
                    False,
                    digits=1,
                    cpu=True,
                ),
            ]
    for qos in (0, 1):
        found += [
            Row(f"ping-pong QoS {qos}: p50 µs", f"pp-{qos}", "p50_us", False),
            Row(f"ping-pong QoS {qos}: p99 µs", f"pp-{qos}", "p99_us", False),
            Row(
                f"ping-pong QoS {qos}: CPU µs/round trip",
                f"pp-{qos}",
                "cpu_us",
                False,
                digits=1,
                cpu=True,
            ),
        ]
    n = f"{settings.filters:,}"
    found += [
        Row(f"{n} filters, own handler each: msg/s", "filters", "sub.rate", True),
        Row(
            f"{n} filters: subscriber CPU µs/msg",
            "filters",
            "sub.cpu_us",
            False,
            digits=1,
            cpu=True,
        ),
        Row(f"{n} filters: subscribe all, ms", "filters", "sub.subscribe_ms", False),
        Row(
            f"{n} filters, a task per subscription (others: callbacks): msg/s",
            "tasks",
            "sub.rate",
            True,
        ),
        Row(
            f"{n} filters, a task per subscription: subscriber CPU µs/msg",
            "tasks",
            "sub.cpu_us",
            False,
            digits=1,
            cpu=True,
        ),
        Row(
            "64 B QoS 0, `await publish()` per message: msg/s published",
            "await-64-0",
            "pub.rate",
            True,
        ),
        Row(
            "64 B QoS 0, `await publish()` per message: publisher CPU µs/msg",
            "await-64-0",
            "pub.cpu_us",
            False,
            digits=1,
            cpu=True,
        ),
        Row(
            "64 B QoS 0 beside a half-speed subscription (drop_oldest): msg/s",
            "slow",
            "sub.rate",
            True,
        ),
        Row(
            "64 B QoS 0 beside a half-speed subscription: CPU µs/msg",
            "slow",
            "sub.cpu_us",
            False,
            digits=1,
            cpu=True,
        ),
        Row(
            "connect+subscribe+disconnect: p50 ms", "connect", "p50_us", False, 1e-3, 2
        ),
        Row(
            "connect+subscribe+disconnect: p99 ms", "connect", "p99_us", False, 1e-3, 2
        ),
        Row(
            "connect+subscribe+disconnect: CPU ms/cycle",
            "connect",
            "cpu_us",
            False,
            1e-3,
            2,
        ),
        Row(
            "peak RSS, 64 B QoS 0 subscriber: MiB",
            "tp-64-0",
            "sub.rss_kib",
            False,
            1 / 1024,
            1,
        ),
        Row(
            f"peak RSS, {n}-filter subscriber: MiB",
            "filters",
            "sub.rss_kib",
            False,
            1 / 1024,
            1,
        ),
    ]
    return found


def advantage(row: Row, ours: float, theirs: float) -> float | None:
    """How many times better trio_mqttconn is (> 1: better, < 1: worse)."""
    if ours <= 0 or theirs <= 0:
        return None
    return ours / theirs if row.higher_is_better else theirs / ours


def _format(value: float, row: Row) -> str:
    return f"{value * row.scale:,.{row.digits}f}"


def table(
    peers: list[Peer],
    results: Results,
    failures: dict[str, dict[str, str]],
    settings: Settings,
) -> tuple[str, list[str]]:
    """The markdown table and the verdict lines (bar and goal)."""
    ours = "tmc-trio"
    header = [
        "scenario",
        *(p.label for p in peers),
        "vs aiomqtt",
        "vs trio-paho-mqtt",
        "vs gmqtt",
        "bar",
        "goal",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    misses_bar: list[str] = []
    misses_goal: list[str] = []
    unjudged = {"bar": 0, "goal": 0}
    all_rows = rows(settings)
    for row in all_rows:
        by_peer = results.get(row.scenario, {})
        cells = [row.label]
        for peer in peers:
            values = by_peer.get(peer.key)
            if values is None or row.key not in values:
                failed = failures.get(row.scenario, {}).get(peer.key)
                cells.append("failed" if failed else "n/a")
                continue
            text = _format(values[row.key], row)
            received = values.get(row.key.replace(".rate", ".received"))
            if row.key.endswith(".rate") and received is not None:
                lost = _expected(row.scenario, settings) - int(received)
                if lost > 0:
                    text += f" (lost {lost:,})"
            cells.append(text)
        mine = by_peer.get(ours, {}).get(row.key)
        ratios = {}
        for other in ("aiomqtt", "gmqtt", "paho", "trio-paho"):
            theirs = by_peer.get(other, {}).get(row.key)
            ratios[other] = (
                None if mine is None or theirs is None else advantage(row, mine, theirs)
            )
        cells += [
            _ratio(ratios["aiomqtt"]),
            _ratio(ratios["trio-paho"]),
            _ratio(ratios["gmqtt"]),
        ]
        bar = _bar(row, ratios)
        goal = None if ratios["gmqtt"] is None else ratios["gmqtt"] >= 0.95
        goal_cell = _mark(goal)
        if row.key.endswith("rss_kib"):
            goal, rss_ratios = _rss_goal(row, by_peer)
            goal_cell = f"{_mark(goal)} ({rss_ratios})"
        cells += [_mark(bar), goal_cell]
        if bar is False:
            misses_bar.append(row.label)
        if goal is False:
            misses_goal.append(row.label)
        unjudged["bar"] += bar is None
        unjudged["goal"] += goal is None
        lines.append("| " + " | ".join(cells) + " |")
    verdict = [
        "Bar (beat aiomqtt, paho-mqtt and trio-paho-mqtt everywhere, CPU <= 1/2 of "
        "aiomqtt's): " + _verdict(misses_bar, unjudged["bar"], len(all_rows)),
        "Goal (at or ahead of gmqtt, within 5 %; peak RSS as #9 decided: trio against "
        "trio-paho-mqtt, asyncio against paho-mqtt, both within 5 %): "
        + _verdict(misses_goal, unjudged["goal"], len(all_rows)),
    ]
    return "\n".join(lines), verdict


def _verdict(misses: list[str], unjudged: int, total: int) -> str:
    """``met`` or the rows that miss, and how many rows lacked a value to judge."""
    if not misses and unjudged == total:
        return "not judged (a client it compares with has no values)"
    text = "missed in: " + "; ".join(misses) if misses else "met"
    if unjudged:
        text += f" (not judged in {unjudged} row(s): a client has no value there)"
    return text


def _expected(scenario: str, settings: Settings) -> int:
    if scenario in ("filters", "tasks"):
        return settings.filters_count
    if scenario == "slow":
        return settings.qos0_count
    qos = int(scenario.rsplit("-", 1)[1])
    return settings.qos0_count if qos == 0 else settings.qos12_count


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _mark(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "**no**")


def _rss_goal(
    row: Row, by_peer: dict[str, dict[str, float]]
) -> tuple[bool | None, str]:
    """The goal of a peak-RSS row, as #9 decided, and the two ratios it rests on.

    trio's own import is above paho-mqtt's whole client: trio_mqttconn on trio is
    judged against trio-paho-mqtt, on asyncio against paho-mqtt (within 5 %).
    """
    verdicts: list[bool] = []
    shown: list[str] = []
    for ours, theirs, name in (
        ("tmc-trio", "trio-paho", "trio"),
        ("tmc-asyncio", "paho", "asyncio"),
    ):
        mine = by_peer.get(ours, {}).get(row.key)
        other = by_peer.get(theirs, {}).get(row.key)
        ratio = None if mine is None or other is None else advantage(row, mine, other)
        shown.append(f"{name} {_ratio(ratio)}")
        if ratio is not None:
            verdicts.append(ratio >= 0.95)
    goal = all(verdicts) if len(verdicts) == 2 else None
    return goal, ", ".join(shown)


def _bar(row: Row, ratios: dict[str, float | None]) -> bool | None:
    """Beats aiomqtt, paho-mqtt and trio-paho-mqtt (None: one of them has no value)."""
    aio, paho, trio_paho = ratios["aiomqtt"], ratios["paho"], ratios["trio-paho"]
    if aio is None or paho is None or trio_paho is None:
        return None
    if row.key.endswith("rss_kib") or row.key == "sub.subscribe_ms":
        return aio >= 1 and paho >= 1 and trio_paho >= 1
    need = 2.0 if row.cpu else 1.0
    return aio >= need and paho > 1 and trio_paho > 1


# -- machine notes -------------------------------------------------------------------


def machine_notes(broker_version: str) -> list[str]:
    """What the numbers were measured on."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return [
        f"{cpu}, {os.cpu_count()} logical CPUs; {platform.platform()}",
        f"Python {platform.python_version()} ({sys.executable})",
        f"trio_mqttconn source: {ROOT} at {source_revision()}",
        f"broker: {broker_version} on 127.0.0.1 (plain TCP, trio_mqttconn.testing.Mosquitto)",
    ]


def source_revision() -> str:
    """The git commit of the tree under test, ``+dirty`` with local changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return head + (" + uncommitted changes" if dirty else "")


def broker_version() -> str:
    """``mosquitto version x.y.z``."""
    from trio_mqttconn.testing import find_mosquitto

    done = subprocess.run(
        [find_mosquitto(), "-h"], capture_output=True, text=True, check=False
    )
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0] if first else "mosquitto"


# -- profiling -----------------------------------------------------------------------


def profile(
    bench: Bench, peers: list[Peer], *, role: str, qos: int, other: str, top: int
) -> None:
    """Run a 64 B throughput scenario with trio_mqttconn's *role* under py-spy.

    The other side is the *other* peer (trio_mqttconn by default, as in the
    table). Prints the functions with the most self time and the most total time.
    """
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    by_key = {p.key: p for p in peers}
    ours = by_key["tmc-trio"]
    counterpart = by_key.get(other, ours)
    count = 5 * (bench.settings.qos0_count if qos == 0 else bench.settings.qos12_count)
    topic = bench.topic()
    raw = Path(tempfile.gettempdir()) / f"tmc-{role}-qos{qos}-profile.txt"
    nfilters = bench.settings.filters if role == "filters" else 0
    sub_role = "filters" if role == "filters" else "sub"
    sub_args = bench.args(sub_role, topic, qos=qos, count=count, nfilters=nfilters)
    pub_args = bench.args("pub", topic, qos=qos, count=count, nfilters=nfilters)
    if role == "filters":
        role = "sub"
    sub_peer, pub_peer = (ours, counterpart) if role == "sub" else (counterpart, ours)
    with driver(sub_peer, sub_args, bench.log) as sub:
        sub.expect("ready", 30)
        spy_command = [pyspy, "record", "--rate", "997", "--gil", "--format", "raw"]
        spy_command += ["--function", "--output", str(raw), "--pid"]
        spy: subprocess.Popen[bytes] | None = None
        if role == "sub":
            spy = subprocess.Popen(
                [*spy_command, str(sub.process.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)  # let py-spy attach before the messages flow
        with driver(pub_peer, pub_args, bench.log) as pub:
            pub.expect("ready", 30)
            if spy is None:  # attach once connected: imports are not the point
                spy = subprocess.Popen(
                    [*spy_command, str(pub.process.pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            sub_values = sub.result(120)
            pub.close_stdin()
            pub_values = pub.result(30)
        spy.wait(60)
    print(
        f"64 B QoS {qos}: {sub_values['received']:.0f} messages, "
        f"{sub_values['rate']:,.0f} msg/s; subscriber ({sub_peer.label}) "
        f"{sub_values['cpu_us']:.1f} µs/msg, publisher ({pub_peer.label}) "
        f"{pub_values['cpu_us']:.1f} µs/msg; profiled: the {role} (under py-spy)"
    )
    self_time: collections.Counter[str] = collections.Counter()
    total_time: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        self_time[frames[-1]] += int(number)
        for frame in set(frames):
            total_time[frame] += int(number)
        samples += int(number)
    print(f"{samples} samples (raw stacks: {raw})\ntop self time:")
    for frame, n in self_time.most_common(top):
        print(f"  {n / samples:6.1%}  {frame}")
    print("top total time:")
    for frame, n in total_time.most_common(top + 10):
        print(f"  {n / samples:6.1%}  {frame}")


# -- main ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write it to ``--output``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1/10 of the messages")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="best of N rounds (default 3: on a small shared machine one round's "
        "CPU rows swing by 20 %%)",
    )
    parser.add_argument("--peers", help="comma-separated peer keys (default: all)")
    parser.add_argument("--scenarios", help="comma-separated scenario keys")
    parser.add_argument(
        "--pairing",
        choices=["reference", "same"],
        default="reference",
        help="other side of the throughput pairs: libmosquitto (default, when it "
        "builds) or the same client",
    )
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument(
        "--profile",
        choices=["sub", "pub", "filters"],
        help="instead: py-spy trio_mqttconn's subscriber, publisher or 1,000-filter"
        " subscriber (64 B)",
    )
    parser.add_argument("--profile-qos", type=int, default=0, choices=[0, 1, 2])
    parser.add_argument(
        "--profile-other",
        default="libmosquitto",
        help="peer key of the other side (default: libmosquitto)",
    )
    options = parser.parse_args(argv)
    settings = QUICK if options.quick else FULL
    rounds = max(1, options.rounds)

    sys.path.insert(0, str(ROOT))
    from trio_mqttconn.testing import Mosquitto

    # The peers run from wheels that pip byte-compiled on install; give our tree
    # the same footing (PYTHONDONTWRITEBYTECODE would otherwise make every driver
    # process compile it from source, which costs start-up time and memory).
    compileall.compile_dir(ROOT / "trio_mqttconn", quiet=1)

    started = time.monotonic()
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="mqtt-bench-") as tmp,
        Mosquitto(tls=False) as broker,
        open(Path(tmp) / "drivers.log", "w+") as log,
    ):
        peers, notes = all_peers(Path(tmp))
        by_key = {p.key: p for p in peers}
        if options.peers:
            wanted = options.peers.split(",")
            peers = [p for p in peers if p.key in wanted]
        bench = Bench(broker.host, broker.port, settings, log)
        if options.pairing == "reference" and "libmosquitto" in by_key:
            bench.reference = by_key["libmosquitto"]
        elif options.pairing == "reference":
            notes.append("no libmosquitto: each client is paired with itself")
        if options.profile:
            profile(
                bench,
                peers,
                role=options.profile,
                qos=options.profile_qos,
                other=options.profile_other,
                top=15,
            )
            return 0
        for note in notes:
            print(f"note: {note}")
        print(
            "clients: " + ", ".join(f"{p.label} {p.version}" for p in peers),
            flush=True,
        )
        for round_number in range(rounds):
            for scenario, run in bench.scenarios():
                if options.scenarios and scenario not in options.scenarios.split(","):
                    continue
                print(f"[round {round_number + 1}] {scenario}", flush=True)
                for peer in peers:
                    run(peer)
        log.seek(0)
        errors = log.read()
        mosquitto = broker_version()
    elapsed = time.monotonic() - started
    text, verdict = table(peers, bench.results, bench.failures, settings)
    print()
    print(text)
    print()
    for line in verdict:
        print(line)
    command = "python bench/clients.py" + "".join(
        f" {arg}" for arg in (sys.argv[1:] if argv is None else argv)
    )
    write_results(
        Path(options.output),
        text=text,
        verdict=verdict,
        command=command,
        peers=peers,
        notes=[
            *notes,
            *machine_notes(mosquitto),
            f"load average before/after: {_load(load_before)} / {_load(os.getloadavg())}",
            f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
            f"{elapsed:.0f} s wall time, best of {rounds} round(s)",
        ],
        settings=settings,
        reference=bench.reference,
    )
    if errors.strip():
        LOG.write_text(errors)
        print(f"\ndrivers' stderr: {LOG}")
    print(f"\nwritten to {options.output}")
    # A peer that fails is reported in the table; trio_mqttconn failing is an error.
    ours_failed = any("tmc-trio" in failed for failed in bench.failures.values())
    return 1 if ours_failed else 0


def _load(values: tuple[float, float, float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def write_results(
    path: Path,
    *,
    text: str,
    verdict: list[str],
    command: str,
    peers: list[Peer],
    notes: list[str],
    settings: Settings,
    reference: Peer | None,
) -> None:
    """Write RESULTS.md."""
    if reference is None:
        pairing = "Each client publishes to and subscribes from itself."
    else:
        pairing = (
            f"Each client is measured twice: as the subscriber fed by the "
            f'{reference.label} publisher ("received by it", subscriber CPU) and as '
            f'the publisher feeding the {reference.label} subscriber ("published by '
            'it", publisher CPU), so no number depends on the speed of the '
            "client's own other half."
        )
    clients = "\n".join(f"- {p.label}: {p.version}" for p in peers)
    machine = "\n".join(f"- {n}" for n in notes)
    s = settings
    # The other benches' sections (between their begin/end markers) are kept.
    kept = kept_sections(path)
    path.write_text(
        f"""# Client benchmark results

Produced by `{command}` (`nox -s bench` runs `python bench/clients.py`).
Each value is the best of the round(s) for that value; ratios compare values measured
minutes apart on the same machine, so they are steadier than the absolute numbers.

{text}

{chr(10).join(f"- {line}" for line in verdict)}

Ratios are for trio_mqttconn on trio and read "times better": > 1 means trio_mqttconn
wins (messages/s: ours / theirs; CPU, latency, time, memory: theirs / ours). *bar*:
beats aiomqtt, paho-mqtt and trio-paho-mqtt, with at most half of aiomqtt's CPU per
message on CPU rows. *goal*: at least 0.95x gmqtt.

## Method

- One private mosquitto; every client in its own process, one scenario at a time, all
  clients back to back per scenario. MQTT 5 everywhere, default client options.
- Throughput: {s.qos0_count:,} messages at QoS 0, {s.qos12_count:,} at QoS 1/2; the
  publisher keeps 20 QoS 1/2 messages in flight (mosquitto's receive maximum; gmqtt 19,
  its packet-id pool allows no more). At QoS 0, gmqtt and paho publish synchronously
  (gmqtt yields to its loop every 64 messages); trio_mqttconn's publisher does the
  same with `publish_nowait()` (falling back to `await publish()` when it would block),
  and the "`await publish()` per message" rows show the awaited call, a checkpoint
  each. {pairing}
  msg/s counts from the first to the last message received; CPU is
  `time.process_time()` (C: `CLOCK_PROCESS_CPUTIME_ID`) inside each process from
  "connected and subscribed" to the end, divided by the messages.
- Ping-pong: {s.pingpong_qos0:,} (QoS 0) / {s.pingpong_qos1:,} (QoS 1) round trips after
  20 warm-up ones, each = publish, wait for its completion and for the echo (at most
  {s.pingpong_budget:g} s).
- {s.filters:,} filters `t/<i>/+`, one handler each, {s.filters_count:,} QoS 0 messages
  round robin over `t/<i>/v` (from the same publisher as the throughput rows). aiomqtt,
  trio-paho-mqtt and gmqtt route by MQTT 5 subscription identifier (their fastest
  option), paho with `message_callback_add`,
  trio_mqttconn with `subscribe(listener=...)`.
- Connect cycles: {s.connects} x (connect, subscribe and wait for SUBACK, disconnect).
- Peak RSS is `VmHWM` from `/proc/self/status` (`ru_maxrss` of a process started
  by fork + exec keeps its parent's peak).
- paho-mqtt, aiomqtt and trio-paho-mqtt (both built on paho) do not set TCP_NODELAY
  (trio-paho-mqtt also sets SO_SNDBUF to 2048); libmosquitto is run with
  `MOSQ_OPT_TCP_NODELAY`; asyncio (gmqtt) and trio_mqttconn set it.
- trio-paho-mqtt 0.3.1 targets paho-mqtt 1.x and trio < 0.15: its driver builds the
  paho 2.2 client with `CallbackAPIVersion.VERSION1`, aliases `trio.hazmat` to
  `trio.lowlevel` and lets the wrapper's connect/disconnect handlers take MQTT 5's
  extra argument. It passes `max_buffer=math.inf`: the default buffer of 100 drops the
  oldest message when full, which lost most QoS 2 messages from a fast publisher
  (`bench/_peers/peer_trio_paho.py` says why and what else).

## Clients

{clients}

## Machine

{machine}
{kept}"""
    )


if __name__ == "__main__":
    sys.exit(main())
