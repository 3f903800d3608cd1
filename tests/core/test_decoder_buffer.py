"""What the decoder keeps between reads: the unread tail, not the whole read."""

from __future__ import annotations

import pytest

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


def test_decoder_hands_out_packets_in_batches_when_asked() -> None:
    whole = b"".join(_publish(n) for n in range(150))
    decoder = PacketDecoder(V5)
    decoder.feed(whole + _publish(150)[:5])
    batches = []
    while batch := decoder.packets(64):
        batches.append([packet.topic for packet in batch])  # type: ignore[union-attr]
    assert [len(batch) for batch in batches] == [64, 64, 22]
    assert [topic for batch in batches for topic in batch] == [
        f"t/{n}" for n in range(150)
    ]
    assert decoder._buf == _publish(150)[:5]


@pytest.mark.parametrize("limit", [0, -1])
def test_decoder_batch_limit_must_be_positive(limit: int) -> None:
    with pytest.raises(ValueError, match=f"^limit must be at least 1, not {limit}$"):
        PacketDecoder(V5).packets(limit)


def test_session_handles_a_read_of_many_batches_in_order() -> None:
    # ClientSession.events decodes _DECODE_BATCH packets per decoder call.
    from trio_mqttconn._events import MessageReceived
    from trio_mqttconn._packets import ConnAckPacket, ConnectPacket
    from trio_mqttconn._session import _DECODE_BATCH, ClientSession

    session = ClientSession(protocol_version=V5)
    session.connect(ConnectPacket(client_id="c", protocol_version=V5))
    session.receive_data(encode_packet(ConnAckPacket(), V5))
    session.events()
    count = 3 * _DECODE_BATCH + 5
    session.receive_data(b"".join(_publish(n) for n in range(count)))
    events = session.events()
    assert all(isinstance(event, MessageReceived) for event in events)
    assert [event.message.topic for event in events] == [  # type: ignore[union-attr]
        f"t/{n}" for n in range(count)
    ]
