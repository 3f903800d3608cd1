"""What the decoder keeps between reads: the unread tail, not the whole read."""

from __future__ import annotations

from trio_mqttconn import ProtocolVersion
from trio_mqttconn._packets import PacketDecoder, PublishPacket, encode_packet

V5 = ProtocolVersion.V5


def _publish(n: int) -> bytes:
    return encode_packet(PublishPacket(topic=f"t/{n}", payload=b"x" * 64), V5)


def test_decoder_keeps_only_the_tail_of_a_large_read() -> None:
    whole = b"".join(_publish(n) for n in range(2000))
    tail = _publish(2000)
    decoder = PacketDecoder(V5)
    decoder.feed(whole + tail[:10])
    packets = []
    while (packet := decoder.next_packet()) is not None:
        packets.append(packet)
    assert len(packets) == 2000
    # The read (about 160 KB) is let go; its last 10 bytes are all that is kept.
    assert decoder._buf == tail[:10]
    decoder.feed(tail[10:])
    last = decoder.next_packet()
    assert isinstance(last, PublishPacket)
    assert last.topic == "t/2000"
    assert decoder._buf == b""


def test_decoder_keeps_a_tail_too_short_for_a_length() -> None:
    one, two = _publish(1), _publish(2)
    decoder = PacketDecoder(V5)
    decoder.feed(one + two[:1])
    assert decoder.packets() == [PublishPacket(topic="t/1", payload=b"x" * 64)]
    assert decoder._buf == two[:1]
    decoder.feed(two[1:])
    assert decoder.packets() == [PublishPacket(topic="t/2", payload=b"x" * 64)]
