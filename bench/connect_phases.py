"""Where a connect+subscribe+disconnect cycle spends its CPU, phase by phase.

Run ``python bench/connect_phases.py [cycles]``. It starts a private mosquitto and,
on trio, times (``time.process_time``) each phase of ``MqttClient`` — construction,
``__aenter__`` (TCP connect, CONNECT/CONNACK, tasks), ``subscribe`` (SUBSCRIBE/SUBACK)
and ``__aexit__`` (DISCONNECT, close, tasks ending) — next to the same packets sent
over a bare anyio socket stream: the floor that no client on anyio can go under.
The difference is the engine's own cost; profile that (``python -m cProfile``) before
optimising. Numbers are noisy on a shared machine: compare the two lines of one run.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import time
from pathlib import Path

import anyio
import anyio.abc
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trio_mqttconn import MqttClient, ProtocolVersion
from trio_mqttconn._transports import _connect_literal
from trio_mqttconn.testing import Mosquitto

CONNECT = bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([5, 2, 0, 60, 0, 0, 0])
SUBSCRIBE = bytes([0x82, 9, 0, 1, 0, 0, 3]) + b"a/b" + bytes([0])
DISCONNECT = bytes([0xE0, 0])
PHASES = ("init", "enter", "subscribe", "exit")


def _line(name: str, totals: list[float], cycles: int) -> str:
    cells = "  ".join(
        f"{phase} {total / cycles * 1e6:6.0f}"
        for phase, total in zip(PHASES, totals, strict=True)
    )
    return f"{name:14} {cells}  total {sum(totals) / cycles * 1e6:6.0f} µs CPU"


async def client_cycles(uri: str, cycles: int) -> list[float]:
    clock = time.process_time
    totals = [0.0] * 4
    for _ in range(cycles):
        start = clock()
        client = MqttClient(uri, protocol=ProtocolVersion.V5, reconnect=False)
        built = clock()
        await client.__aenter__()
        entered = clock()
        await client.subscribe("a/b")
        subscribed = clock()
        await client.__aexit__(None, None, None)
        done = clock()
        for index, span in enumerate(
            (built - start, entered - built, subscribed - entered, done - subscribed)
        ):
            totals[index] += span
    return totals


async def raw_cycles(host: str, port: int, cycles: int) -> list[float]:
    clock = time.process_time
    address = ipaddress.ip_address(host)
    totals = [0.0] * 4
    for _ in range(cycles):
        start = clock()
        sock = await _connect_literal(address, port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = await anyio.abc.SocketStream.from_socket(sock)
        await stream.send(CONNECT)
        await stream.receive(100)
        entered = clock()
        await stream.send(SUBSCRIBE)
        await stream.receive(100)
        subscribed = clock()
        await stream.send(DISCONNECT)
        await stream.aclose()
        done = clock()
        totals[1] += entered - start
        totals[2] += subscribed - entered
        totals[3] += done - subscribed
    return totals


def main() -> None:
    """Print both lines, three times."""
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with Mosquitto(tls=False) as broker:
        uri = f"mqtt://{broker.host}:{broker.port}"
        trio.run(client_cycles, uri, 20)  # warm up
        for _ in range(3):
            print(_line("trio_mqttconn", trio.run(client_cycles, uri, cycles), cycles))
            raw = trio.run(raw_cycles, broker.host, broker.port, cycles)
            print(_line("bare socket", raw, cycles))


if __name__ == "__main__":
    main()
