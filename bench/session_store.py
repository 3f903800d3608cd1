"""Durable session store: QoS 1/2 publish throughput with the store against without.

``python bench/session_store.py [--quick] [--rounds N] [--messages N]
[--backends trio,asyncio] [--dir DIR] [--output bench/RESULTS.md]``
(``nox -s bench`` runs it). One private mosquitto. The publisher (trio_mqttconn, in
this process, on trio or asyncio through anyio) publishes 64 B messages at QoS 1 or
2, with 1 in flight (one task awaiting each ``publish()``) or 20 in flight (20
tasks, mosquitto's default receive maximum), to one subscriber (the libmosquitto
driver ``bench/mosq_bench.c``, compiled here; our own trio driver when no C compiler
or libmosquitto is at hand) that must receive every message, else the run fails.

Each scenario runs with every store:

* **no store**: the session lives in memory only (the default);
* **memory**: `MemorySessionStore`: the session journal is taken and folded on each
  engine write, without SQLite (the journal's own cost);
* **sqlite**: `SqliteSessionStore` with ``fsync=False`` (the default: survives the
  process being killed, SQLite ``synchronous=NORMAL``, WAL);
* **sqlite, fsync**: ``fsync=True`` (survives power loss; one fsync per commit).

msg/s counts from the first measured publish to the return of the last one (after
warm-up publishes); CPU is the publisher process's ``time.process_time`` per
message over that span. Every scenario runs ``--rounds`` times, interleaved; a cell
shows the best rate and the lowest CPU of its runs, and their ratio to no store.
"Writes per message" is how many times the engine handed the journal to the store
(one SQLite transaction each) per published message.

``--profile STORE,QOS,IN_FLIGHT`` (e.g. ``sqlite,1,20``) instead runs that one
scenario on trio under cProfile and prints the functions with the most time.

Prints two tables and replaces its own section of RESULTS.md (between the
``bench/session_store.py`` markers), leaving the rest of the file as it is.
Bounded: the subscriber stops 1.5 s after its last message and every run fails
after 60 s.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio
import attrs
from _results import replace_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from trio_mqttconn import (  # noqa: E402
    MemorySessionStore,
    MqttClient,
    ProtocolVersion,
    QoS,
    SqliteSessionStore,
)
from trio_mqttconn.testing import Mosquitto  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trio_mqttconn import SessionChange, SessionStore, StoredSession

BEGIN: Final = "<!-- bench/session_store.py: begin -->"
END: Final = "<!-- bench/session_store.py: end -->"
PAYLOAD: Final = b"0123456789abcdef" * 4
WARMUP: Final = 100
QOSES: Final = (1, 2)
IN_FLIGHT: Final = (1, 20)
#: (key, label)
STORES: Final = (
    ("none", "no store"),
    ("memory", "memory"),
    ("sqlite", "sqlite"),
    ("sqlite-fsync", "sqlite, fsync"),
)
RUN_LIMIT: Final = 60.0


@attrs.frozen
class Run:
    """One run of one scenario."""

    backend: str
    qos: int
    in_flight: int
    store: str
    messages: int
    seconds: float
    cpu: float
    writes: int
    """Times the engine handed the journal to the store."""

    @property
    def rate(self) -> float:
        """Messages published per second."""
        return self.messages / self.seconds

    @property
    def cpu_us(self) -> float:
        """Publisher CPU per message, microseconds."""
        return self.cpu / self.messages * 1e6


@attrs.frozen
class Row:
    """The best of a scenario's runs."""

    backend: str
    qos: int
    in_flight: int
    store: str
    rate: float
    cpu_us: float
    writes_per_message: float


class CountingStore:
    """A `SessionStore` that counts the engine's writes into another one."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.writes = 0

    def open(self, client_id: str, protocol_version: ProtocolVersion) -> StoredSession:
        """Open the inner store."""
        return self.inner.open(client_id, protocol_version)

    def apply(self, changes: Sequence[SessionChange]) -> None:
        """Count, then apply to the inner store."""
        self.writes += 1
        self.inner.apply(changes)

    def close(self) -> None:
        """Close the inner store."""
        self.inner.close()


def make_store(kind: str, directory: Path) -> CountingStore | None:
    """A fresh store of *kind* (a new database file in *directory*), or None."""
    path = directory / f"{uuid.uuid4().hex}.db"
    if kind == "none":
        return None
    if kind == "memory":
        return CountingStore(MemorySessionStore())
    if kind == "sqlite":
        return CountingStore(SqliteSessionStore(path))
    if kind == "sqlite-fsync":
        return CountingStore(SqliteSessionStore(path, fsync=True))
    raise SystemExit(f"unknown store {kind!r}; one of {[k for k, _ in STORES]}")


# -- the publisher --------------------------------------------------------------------


async def publish(
    uri: str,
    topic: str,
    qos: int,
    in_flight: int,
    messages: int,
    store: CountingStore | None,
) -> tuple[float, float, int]:
    """Warm up, publish *messages* with *in_flight* tasks; (seconds, CPU, writes)."""
    client_id = f"bench-store-{uuid.uuid4().hex[:8]}"
    qos_ = QoS(qos)

    async def loop(client: MqttClient, count: int) -> None:
        for _ in range(count):
            await client.publish(topic, PAYLOAD, qos=qos_)

    with anyio.fail_after(RUN_LIMIT):
        async with MqttClient(uri, client_id=client_id, session_store=store) as client:
            await loop(client, WARMUP)
            writes = store.writes if store is not None else 0
            share, extra = divmod(messages, in_flight)
            cpu = time.process_time()
            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                for task in range(in_flight):
                    tg.start_soon(loop, client, share + (task < extra))
            seconds = time.monotonic() - started
            cpu = time.process_time() - cpu
            writes = (store.writes if store is not None else 0) - writes
    return seconds, cpu, writes


# -- the subscriber -------------------------------------------------------------------


def subscriber_command(directory: Path) -> tuple[list[str], str]:
    """The subscriber driver's command and its name (see bench/_peers/_common.py)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is not None:
        binary = directory / "mosq_bench"
        build = [compiler, "-O2", "-o", str(binary), str(HERE / "mosq_bench.c")]
        done = subprocess.run(
            [*build, "-lmosquitto"], capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            return [str(binary)], "libmosquitto in C, bench/mosq_bench.c"
    driver = HERE / "_peers" / "peer_tmc_trio.py"
    return [sys.executable, str(driver)], "trio_mqttconn on trio, bench/_peers"


class Subscriber:
    """A subscriber process that counts *count* messages on *topic*."""

    def __init__(
        self, command: list[str], uri: str, topic: str, qos: int, count: int
    ) -> None:
        host, port = uri.removeprefix("mqtt://").rsplit(":", 1)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        args = ["sub", host, port, topic, str(qos), str(len(PAYLOAD)), str(count)]
        self.count = count
        self.process = subprocess.Popen(
            [*command, *args, "0", str(RUN_LIMIT)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise SystemExit(f"the subscriber did not start: {line!r}")

    def received(self) -> int:
        """Wait for the subscriber's result; the messages it received."""
        out, _ = self.process.communicate(timeout=RUN_LIMIT)
        results = [line for line in out.splitlines() if line.startswith("result ")]
        if not results:
            raise SystemExit(f"the subscriber printed no result: {out!r}")
        fields = dict(item.split("=", 1) for item in results[-1].split()[1:])
        return int(float(fields["received"]))


# -- the runs and the table -----------------------------------------------------------


def run_one(
    broker: Mosquitto,
    subscriber: list[str],
    directory: Path,
    backend: str,
    qos: int,
    in_flight: int,
    kind: str,
    messages: int,
) -> Run:
    """One run: a subscriber process, then the publisher in this process."""
    topic = f"bench/{uuid.uuid4().hex[:8]}/store"
    sub = Subscriber(subscriber, broker.uri, topic, qos, WARMUP + messages)
    store = make_store(kind, directory)
    try:
        seconds, cpu, writes = anyio.run(
            publish,
            broker.uri,
            topic,
            qos,
            in_flight,
            messages,
            store,
            backend=backend,
        )
    except BaseException:
        sub.process.kill()
        sub.process.wait()
        raise
    finally:
        for leftover in directory.glob("*.db*"):
            leftover.unlink()
    received = sub.received()
    if received != WARMUP + messages:
        raise SystemExit(
            f"{backend} QoS {qos} x{in_flight} {kind}: the subscriber received "
            f"{received} of {WARMUP + messages} messages"
        )
    return Run(backend, qos, in_flight, kind, messages, seconds, cpu, writes)


def best(runs: list[Run]) -> list[Row]:
    """One row per scenario: the best rate and the lowest CPU of its runs."""
    groups: dict[tuple[str, int, int, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.backend, run.qos, run.in_flight, run.store), []).append(
            run
        )
    return [
        Row(
            *key,
            rate=max(run.rate for run in group),
            cpu_us=min(run.cpu_us for run in group),
            writes_per_message=min(run.writes / run.messages for run in group),
        )
        for key, group in groups.items()
    ]


def tables(rows: list[Row], stores: list[str]) -> str:
    """The Markdown tables of *rows*: throughput, then publisher CPU."""
    labels = dict(STORES)
    by_key = {(row.backend, row.qos, row.in_flight, row.store): row for row in rows}
    scenarios = list(dict.fromkeys((r.backend, r.qos, r.in_flight) for r in rows))
    head = "| backend | QoS | in flight | " + " | ".join(labels[s] for s in stores)
    rule = "|---|---:|---:|" + "---:|" * len(stores)
    rate_lines = [head + " |", rule]
    cpu_lines = [head + " | store writes per message |", rule + "---:|"]
    for backend, qos, in_flight in scenarios:
        base = by_key.get((backend, qos, in_flight, "none"))
        rates, cpus, writes = [], [], 0.0
        for store in stores:
            row = by_key.get((backend, qos, in_flight, store))
            if row is None:
                rates.append("-")
                cpus.append("-")
                continue
            if store == "none" or base is None:
                rates.append(f"{row.rate:,.0f} msg/s")
                cpus.append(f"{row.cpu_us:,.0f} µs")
            else:
                rates.append(f"{row.rate:,.0f} ({row.rate / base.rate:.2f}x)")
                cpus.append(f"{row.cpu_us:,.0f} µs ({row.cpu_us / base.cpu_us:.2f}x)")
            writes = max(writes, row.writes_per_message)
        scenario = f"| {backend} | {qos} | {in_flight} | "
        rate_lines.append(scenario + " | ".join(rates) + " |")
        cpu_lines.append(scenario + " | ".join(cpus) + f" | {writes:.2f} |")
    return (
        "Publish throughput (ratio: store / no store):\n\n"
        + "\n".join(rate_lines)
        + "\n\nPublisher CPU per message (ratio: store / no store):\n\n"
        + "\n".join(cpu_lines)
    )


def broker_version() -> str:
    """``mosquitto version x.y.z`` of the broker used."""
    from trio_mqttconn.testing import find_mosquitto

    result = subprocess.run(
        [find_mosquitto(), "-h"], capture_output=True, text=True, check=False
    )
    return (result.stdout or result.stderr).splitlines()[0].strip()


def filesystem_of(directory: Path) -> str:
    """The file system type *directory* lives on (Linux ``/proc/mounts``)."""
    try:
        mounts = [
            line.split() for line in Path("/proc/mounts").read_text().splitlines()
        ]
    except OSError:
        return "unknown file system"
    resolved = str(directory.resolve())
    best_mount = max(
        (m for m in mounts if resolved.startswith(m[1].rstrip("/") + "/")),
        key=lambda m: len(m[1]),
        default=None,
    )
    return "unknown file system" if best_mount is None else f"{best_mount[2]}"


def section(
    rows: list[Row],
    stores: list[str],
    command: str,
    messages: int,
    rounds: int,
    subscriber: str,
    directory: Path,
    load: str,
) -> str:
    """This script's section of RESULTS.md."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cores = os.cpu_count()
    return f"""{BEGIN}
## Durable session store: cost

Produced by `{command}`
(`nox -s bench` runs `python bench/session_store.py`). One mosquitto; the publisher
(trio_mqttconn, MQTT 5, in the bench process) publishes {messages:,} messages of 64 B
after {WARMUP} warm-up ones, with 1 in flight (one task awaiting each `publish()`) or
20 (20 tasks); the subscriber ({subscriber}; its own process, subscribed at the same
QoS) must receive all of them. Stores: `MemorySessionStore` ("memory": the journal
without SQLite), `SqliteSessionStore(path)` ("sqlite", `fsync=False`, the default)
and `SqliteSessionStore(path, fsync=True)`, the database on
{filesystem_of(directory)}. Best of {rounds} interleaved rounds (this machine is
shared: compare ratios, and CPU rather than msg/s). CPU is the publisher process's
CPU time per message; "store writes per message" counts the engine's calls of
`SessionStore.apply` (one SQLite transaction each).

{tables(rows, stores)}

What limits it:

- **sqlite**: each `SessionStore.apply` is one SQLite transaction (BEGIN, an INSERT
  per message sent, an UPDATE per PUBREC, a DELETE per completion, COMMIT): about
  20-40 µs of CPU, most of it SQLite's commit appending a WAL frame (cProfile:
  `Connection.execute` is ~75 % of the store's time, `encode_packet` per stored
  message ~1.5 µs; `MemorySessionStore.apply` ~3.5 µs). The journal alone
  ("memory") costs a few µs per message, within the noise of this shared machine.
- **One transaction per socket write**: the writer hands the journal to the store
  right before each write, the outbox's included, so publishes that leave together
  share a transaction: with 1 in flight QoS 1 needs one per message and QoS 2 two
  (PUBLISH, PUBREL); with 20 in flight "store writes per message" falls well below
  one and the sqlite store costs little throughput.
- **fsync=True**: each transaction also waits for an fsync on the event loop (stores
  are synchronous by design), so the rate is about 1 / (fsync latency x writes per
  message); more in flight means fewer, larger transactions.

Machine: {platform.processor() or platform.machine()}, {cores} logical CPUs,
{platform.platform()}, Python {platform.python_version()}, broker:
{broker_version()}, SQLite {sqlite_version()}; load average before / after: {load};
{when}.
{END}"""


def sqlite_version() -> str:
    """The SQLite library's version."""
    import sqlite3

    return sqlite3.sqlite_version


def update_results(path: Path, text: str) -> None:
    """Replace this script's section of *path*, or append it."""
    replace_section(path, text, BEGIN, END)


def profile(broker: Mosquitto, subscriber: list[str], spec: str, messages: int) -> None:
    """Run one scenario (``STORE,QOS,IN_FLIGHT``) on trio under cProfile."""
    kind, qos, in_flight = spec.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-store-") as name:
        profiler = cProfile.Profile()
        profiler.enable()
        run = run_one(
            broker,
            subscriber,
            Path(name),
            "trio",
            int(qos),
            int(in_flight),
            kind,
            messages,
        )
        profiler.disable()
    print(
        f"{run.rate:,.0f} msg/s (under cProfile), {run.writes / messages:.2f} writes/msg"
    )
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 messages, 1 round")
    parser.add_argument("--rounds", type=int, default=3, help="best of N runs")
    parser.add_argument("--messages", type=int, default=1000, help="per run")
    parser.add_argument("--backends", default="trio,asyncio")
    parser.add_argument(
        "--stores",
        default=",".join(key for key, _ in STORES),
        help="comma-separated subset of " + ", ".join(key for key, _ in STORES),
    )
    parser.add_argument("--dir", help="where the databases go (default: a temp dir)")
    parser.add_argument("--profile", metavar="STORE,QOS,IN_FLIGHT")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    # nox -s bench passes its arguments to every script: ignore the others' options.
    args, _ = parser.parse_known_args(argv)
    messages, rounds = (500, 1) if args.quick else (args.messages, args.rounds)
    backends = args.backends.split(",")
    stores = args.stores.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-store-", dir=args.dir) as name:
        directory = Path(name)
        subscriber, subscriber_name = subscriber_command(directory)
        load_before = os.getloadavg()
        with Mosquitto(tls=False, websockets=False, persistence=False) as broker:
            if args.profile:
                profile(broker, subscriber, args.profile, messages)
                return 0
            runs: list[Run] = []
            started = time.monotonic()
            for round_ in range(rounds):
                for backend in backends:
                    for qos in QOSES:
                        for in_flight in IN_FLIGHT:
                            for kind in stores:
                                run = run_one(
                                    broker,
                                    subscriber,
                                    directory,
                                    backend,
                                    qos,
                                    in_flight,
                                    kind,
                                    messages,
                                )
                                runs.append(run)
                                print(
                                    f"round {round_ + 1} {backend:>7} QoS {qos} "
                                    f"x{in_flight:<2} {kind:>12}: {run.rate:>7,.0f} "
                                    f"msg/s {run.cpu_us:>5,.0f} µs/msg "
                                    f"{run.writes / messages:.2f} writes/msg",
                                    flush=True,
                                )
            print(f"{len(runs)} runs in {time.monotonic() - started:.0f} s")
        load = " / ".join(
            " ".join(f"{value:.2f}" for value in values)
            for values in (load_before, os.getloadavg())
        )
        rows = best(runs)
        command = "python bench/session_store.py"
        if args.quick:
            command += " --quick"
        else:
            command += f" --rounds {rounds} --messages {messages}"
        if args.backends != "trio,asyncio":
            command += f" --backends {args.backends}"
        text = section(
            rows,
            stores,
            command,
            messages,
            rounds,
            subscriber_name,
            directory,
            load,
        )
    print(tables(rows, stores))
    update_results(Path(args.output), text)
    print(f"wrote the session store section of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
