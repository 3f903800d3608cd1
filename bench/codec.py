"""Packet codec benchmark: PUBLISH encode/decode, packets per second.

Run ``python bench/codec.py``. Cases: 64 B and 4 KiB payloads, MQTT 3.1.1
without properties and MQTT 5.0 with two user properties, QoS 0. Each figure is
the best of several runs of a batch, timed with ``time.perf_counter``.

* decode: the reader's loop, a batch of 64 KiB reads, each ``feed`` + ``packets()``
  (all packets of one read at once);
* encode: ``encode_packet`` of a prebuilt ``PublishPacket``, once per packet.

If paho-mqtt 2.2 is importable (``pip install paho-mqtt==2.2.0``; a bench-only
dependency) the same work goes through paho's own code path, in this process:
encoding through ``Client._send_publish`` into a fake socket (paho builds the
packet, queues it and writes it out), decoding through ``Client._packet_read``
reading from a fake socket (paho reads the fixed header, the body, builds an
``MQTTMessage`` and runs its ``on_message`` dispatch). The ratio column is
trio_mqttconn / paho.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trio_mqttconn._enums import ProtocolVersion
from trio_mqttconn._packets import (
    PacketDecoder,
    PublishPacket,
    encode_packet,
)
from trio_mqttconn._properties import EMPTY_PROPERTIES, Properties

if TYPE_CHECKING:
    from collections.abc import Callable

TOPIC = "sensors/building-1/floor-2/temperature"
USER_PROPERTIES = (("source", "bench"), ("unit", "celsius"))
REPEATS = 25


def best_rate(run: Callable[[], int]) -> float:
    """Run *run* REPEATS times; return the best packets per second."""
    best = 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        count = run()
        elapsed = time.perf_counter() - start
        best = max(best, count / elapsed)
    return best


def batch_shape(packet_size: int) -> tuple[int, int]:
    """Packets per 64 KiB read, and how many reads make one timed run."""
    per_read = max(1, 65536 // packet_size)
    return per_read, max(1, 5_000 // per_read)


def ours(version: ProtocolVersion, payload: bytes) -> tuple[float, float]:
    props = (
        Properties(user_properties=USER_PROPERTIES)
        if version == ProtocolVersion.V5
        else EMPTY_PROPERTIES
    )
    packet = PublishPacket(topic=TOPIC, payload=payload, properties=props)
    wire = encode_packet(packet, version)
    per_read, reads = batch_shape(len(wire))
    chunk = wire * per_read
    count = per_read * reads

    def decode() -> int:
        # The reader's loop: feed one 64 KiB read, take every packet in it.
        decoder = PacketDecoder(version)
        for _ in range(reads):
            decoder.feed(chunk)
            decoded = decoder.packets()
        assert len(decoded) == per_read
        assert decoded[-1] == packet
        return count

    def encode() -> int:
        for _ in range(count):
            encode_packet(packet, version)
        return count

    return best_rate(decode), best_rate(encode)


class FakeSocket:
    """Enough of a socket for paho: recv from a buffer, send into the void."""

    def __init__(self) -> None:
        self.data = memoryview(b"")
        self.pos = 0

    def load(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def recv(self, size: int) -> bytes:
        chunk = self.data[self.pos : self.pos + size]
        self.pos += len(chunk)
        return bytes(chunk)

    def send(self, data: bytes | bytearray) -> int:
        return len(data)

    def close(self) -> None:
        pass


def paho_rates(version: ProtocolVersion, payload: bytes) -> tuple[float, float] | None:
    try:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties as PahoProperties
    except ImportError:
        return None

    protocol = mqtt.MQTTv5 if version == ProtocolVersion.V5 else mqtt.MQTTv311
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bench", protocol=protocol
    )
    received = 0

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        nonlocal received
        received += 1

    client.on_message = on_message
    sock = FakeSocket()
    client._sock = sock  # type: ignore[assignment]  # the fake stands in for it
    props = None
    if version == ProtocolVersion.V5:
        props = PahoProperties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = list(USER_PROPERTIES)
    topic = TOPIC.encode()
    wire = encode_packet(
        PublishPacket(
            topic=TOPIC,
            payload=payload,
            properties=Properties(user_properties=USER_PROPERTIES)
            if props is not None
            else EMPTY_PROPERTIES,
        ),
        version,
    )
    per_read, reads = batch_shape(len(wire))
    chunk = wire * per_read
    count = per_read * reads

    def encode() -> int:
        for _ in range(count):
            # As Client.publish does for QoS 0: one MQTTMessageInfo per message.
            info = mqtt.MQTTMessageInfo(0)
            client._send_publish(0, topic, payload, 0, False, False, info, props)
        return count

    def decode() -> int:
        nonlocal received
        received = 0
        for _ in range(reads):
            sock.load(chunk)
            for _ in range(per_read):
                client._packet_read()
        assert received == count
        return count

    return best_rate(decode), best_rate(encode)


def main() -> None:
    """Print the table."""
    gc.collect()
    rows = []
    for version, label in (
        (ProtocolVersion.V311, "3.1.1"),
        (ProtocolVersion.V5, "5.0 +2 user props"),
    ):
        for size in (64, 4096):
            payload = bytes(range(256)) * (size // 256) if size >= 256 else b"x" * size
            decode, encode = ours(version, payload)
            theirs = paho_rates(version, payload)
            rows.append((label, size, decode, encode, theirs))

    print(f"PUBLISH QoS 0, best of {REPEATS} runs, packets/s (ratio = ours / paho)")
    print(
        f"{'protocol':<19} {'payload':>7} {'decode':>11} {'paho':>11} {'ratio':>6}"
        f" {'encode':>11} {'paho':>11} {'ratio':>6}"
    )
    for label, size, decode, encode, theirs in rows:
        if theirs is None:
            extra_d = extra_e = f"{'-':>11} {'-':>6}"
        else:
            extra_d = f"{theirs[0]:>11,.0f} {decode / theirs[0]:>5.1f}x"
            extra_e = f"{theirs[1]:>11,.0f} {encode / theirs[1]:>5.1f}x"
        print(
            f"{label:<19} {size:>6}B {decode:>11,.0f} {extra_d} {encode:>11,.0f} "
            f"{extra_e}"
        )
    try:
        import paho.mqtt

        print(f"paho-mqtt {paho.mqtt.__version__}")
    except ImportError:
        print("paho-mqtt not installed: pip install paho-mqtt==2.2.0 to compare")


if __name__ == "__main__":
    main()
