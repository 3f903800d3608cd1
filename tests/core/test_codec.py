"""Wire primitives: integers, variable byte integers, UTF-8 strings, binary data."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests._vectors import VARINTS, h
from trio_mqttconn._codec import (
    MAX_VARINT,
    NeedMoreData,
    check_utf8,
    decode_binary,
    decode_string_pair,
    decode_u8,
    decode_u16,
    decode_u32,
    decode_utf8,
    decode_varint,
    decode_varint_in,
    encode_binary,
    encode_string_pair,
    encode_u8,
    encode_u16,
    encode_u32,
    encode_utf8,
    encode_varint,
    utf8_bytes,
    varint_bytes,
)
from trio_mqttconn._enums import ReasonCode
from trio_mqttconn._exceptions import MalformedPacketError

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def _malformed(
    message: str,
) -> AbstractContextManager[pytest.ExceptionInfo[MalformedPacketError]]:
    return pytest.raises(MalformedPacketError, match=_exact(message))


# ---------------------------------------------------------------- integers


def test_u8_u16_u32_decode_big_endian_and_return_next_index() -> None:
    buf = h("FF 01 02 DE AD BE EF 99")
    assert decode_u8(buf, 0, 8) == (255, 1)
    assert decode_u16(buf, 1, 8) == (0x0102, 3)
    assert decode_u32(buf, 3, 8) == (0xDEADBEEF, 7)


@pytest.mark.parametrize(
    ("decode", "size", "what"),
    [
        (decode_u8, 1, "byte"),
        (decode_u16, 2, "two byte integer"),
        (decode_u32, 4, "four byte integer"),
    ],
)
def test_integer_decode_past_end_is_malformed(
    decode: object, size: int, what: str
) -> None:
    assert callable(decode)
    buf = b"\x01" * 8
    # The buffer has more bytes, but the packet ends one byte too early.
    with _malformed(f"packet ends inside the {what}"):
        decode(buf, 0, size - 1)
    with _malformed("packet ends inside the keep alive"):
        decode(buf, 0, size - 1, "keep alive")


def test_integer_encode_appends_big_endian() -> None:
    out = bytearray()
    encode_u8(7, out)
    encode_u16(0x0102, out)
    encode_u32(0xDEADBEEF, out)
    assert out == h("07 01 02 DE AD BE EF")


@pytest.mark.parametrize(
    ("encode", "value", "message"),
    [
        (encode_u8, 256, "byte must be an integer 0..255, not 256"),
        (encode_u8, -1, "byte must be an integer 0..255, not -1"),
        (encode_u16, 65536, "two byte integer must be an integer 0..65535, not 65536"),
        (encode_u16, "1", "two byte integer must be an integer 0..65535, not '1'"),
        (
            encode_u32,
            2**32,
            "four byte integer must be an integer 0..4294967295, not 4294967296",
        ),
    ],
)
def test_integer_encode_out_of_range_raises_value_error(
    encode: object, value: object, message: str
) -> None:
    assert callable(encode)
    out = bytearray()
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        encode(value, out)
    assert out == b""


# ---------------------------------------------------------------- variable byte integer


@pytest.mark.parametrize(("value", "wire"), VARINTS)
def test_varint_spec_table_both_directions(value: int, wire: bytes) -> None:
    # 3.1.1 2.2.3 / 5.0 1.5.5: the edges of 1, 2, 3 and 4 byte encodings.
    assert varint_bytes(value) == wire
    out = bytearray(b"\xaa")
    encode_varint(value, out)
    assert out == b"\xaa" + wire
    buf = b"\x99" + wire + b"\x77"
    assert decode_varint(buf, 1, len(buf)) == (value, 1 + len(wire))


@pytest.mark.parametrize(("value", "wire"), VARINTS)
def test_varint_every_strict_prefix_needs_more_data(value: int, wire: bytes) -> None:
    for cut in range(len(wire)):
        with pytest.raises(NeedMoreData):
            decode_varint(wire, 0, cut)


@pytest.mark.parametrize(
    "wire", [h("80 00"), h("FF 00"), h("80 80 00"), h("FF FF 80 00"), h("80 80 80 00")]
)
def test_varint_not_minimal_is_malformed(wire: bytes) -> None:
    # [v5:MQTT-1.5.5-1]
    with _malformed("remaining length is not encoded in the minimum number of bytes"):
        decode_varint(wire, 0, len(wire), "remaining length")


def test_varint_five_bytes_is_malformed() -> None:
    wire = h("80 80 80 80 01")
    with _malformed("variable byte integer is longer than 4 bytes"):
        decode_varint(wire, 0, len(wire))
    # Decided as soon as the fourth byte says "continue", without the fifth.
    with _malformed("variable byte integer is longer than 4 bytes"):
        decode_varint(wire, 0, 4)


def test_varint_inside_packet_truncated_is_malformed() -> None:
    with _malformed("packet ends inside the property length"):
        decode_varint_in(h("80 80"), 0, 2, "property length")
    assert decode_varint_in(h("80 01"), 0, 2) == (128, 2)


@pytest.mark.parametrize("value", [-1, MAX_VARINT + 1, 1.5, None])
def test_varint_encode_out_of_range(value: object) -> None:
    with pytest.raises(
        ValueError,
        match=_exact(
            f"variable byte integer must be an integer 0..268435455, not {value!r}"
        ),
    ):
        encode_varint(value, bytearray())  # type: ignore[arg-type]  # bad on purpose


# ---------------------------------------------------------------- UTF-8 strings


def test_utf8_spec_example_decodes() -> None:
    # 1.5.4 example: "A" + U+2A6D4 is 00 05 41 F0 AA 9B 94.
    buf = h("00 05 41 F0 AA 9B 94 FF")
    assert decode_utf8(buf, 0, len(buf)) == ("A\U0002a6d4", 7)


def test_utf8_spec_example_encodes() -> None:
    out = bytearray()
    encode_utf8("A\U0002a6d4", out)
    assert out == h("00 05 41 F0 AA 9B 94")


def test_utf8_bom_is_kept_both_ways() -> None:
    # [v5:MQTT-1.5.4-3] a leading ZERO WIDTH NO-BREAK SPACE is not stripped.
    buf = h("00 04 EF BB BF 61")
    assert decode_utf8(buf, 0, len(buf)) == ("\ufeffa", 6)
    out = bytearray()
    encode_utf8("\ufeffa", out)
    assert out == buf


def test_utf8_empty_string() -> None:
    assert decode_utf8(h("00 00"), 0, 2) == ("", 2)
    out = bytearray()
    encode_utf8("", out)
    assert out == h("00 00")


@pytest.mark.parametrize(
    "raw",
    [
        h("C0 80"),  # overlong encoding of U+0000
        h("E0 80 AF"),  # overlong "/"
        h("ED A0 80"),  # U+D800, a surrogate [v5:MQTT-1.5.4-1]
        h("ED BF BF"),  # U+DFFF
        h("F4 90 80 80"),  # above U+10FFFF
        h("FF"),
        h("E2 82"),  # truncated sequence
        h("80"),  # lone continuation byte
    ],
)
def test_utf8_ill_formed_is_malformed(raw: bytes) -> None:
    buf = len(raw).to_bytes(2, "big") + raw
    with _malformed("topic is not well-formed UTF-8"):
        decode_utf8(buf, 0, len(buf), "topic")


def test_utf8_null_character_is_malformed() -> None:
    # [v5:MQTT-1.5.4-2]
    buf = h("00 03 61 00 62")
    with _malformed("client identifier contains U+0000"):
        decode_utf8(buf, 0, len(buf), "client identifier")


def test_utf8_length_past_end_is_malformed() -> None:
    buf = h("00 05 61 62 63 64 65")
    with _malformed("string runs past the end of the packet"):
        decode_utf8(buf, 0, 6)
    with _malformed("packet ends inside the length of the string"):
        decode_utf8(buf, 0, 1)


def test_check_utf8_returns_text() -> None:
    assert check_utf8("é".encode(), "name") == "é"


def test_utf8_encode_rejects_lone_surrogate() -> None:
    with pytest.raises(
        ValueError,
        match=_exact(
            "topic contains a lone surrogate, which UTF-8 cannot encode; remove it"
        ),
    ):
        encode_utf8("a\ud800", bytearray(), "topic")


def test_utf8_encode_rejects_null_character() -> None:
    with pytest.raises(
        ValueError, match=r"^topic contains U\+0000, which MQTT forbids; remove it$"
    ):
        utf8_bytes("a\x00", "topic")


def test_utf8_encode_length_limit_counts_bytes() -> None:
    assert len(utf8_bytes("x" * 65535)) == 65535
    # 32768 two-byte characters are 65536 bytes.
    with pytest.raises(
        ValueError,
        match=r"^string is 65536 bytes in UTF-8, the maximum is 65535; shorten it$",
    ):
        utf8_bytes("é" * 32768)


def test_utf8_encode_rejects_non_str() -> None:
    with pytest.raises(TypeError, match=r"^client_id must be a str, not bytes$"):
        utf8_bytes(b"abc", "client_id")


# ---------------------------------------------------------------- binary data


def test_binary_both_directions() -> None:
    buf = h("00 03 00 FF 61 99")
    assert decode_binary(buf, 0, len(buf)) == (b"\x00\xffa", 5)
    out = bytearray()
    encode_binary(b"\x00\xffa", out)
    assert out == h("00 03 00 FF 61")
    out = bytearray()
    encode_binary(memoryview(b"xy"), out)
    assert out == h("00 02 78 79")


def test_binary_truncated_is_malformed() -> None:
    with _malformed("password runs past the end of the packet"):
        decode_binary(h("00 03 61 62"), 0, 4, "password")
    with _malformed("packet ends inside the length of the binary data"):
        decode_binary(h("00"), 0, 1)


def test_binary_encode_errors() -> None:
    with pytest.raises(
        ValueError,
        match=r"^binary data is 65536 bytes, the maximum is 65535; shorten it$",
    ):
        encode_binary(bytes(65536), bytearray())
    with pytest.raises(TypeError, match=r"^password must be bytes, not str$"):
        encode_binary("pw", bytearray(), "password")  # type: ignore[arg-type]  # on purpose


# ---------------------------------------------------------------- string pairs


def test_string_pair_both_directions() -> None:
    buf = h("00 01 6B 00 02 76 31")
    assert decode_string_pair(buf, 0, len(buf)) == (("k", "v1"), 7)
    out = bytearray()
    encode_string_pair(("k", "v1"), out)
    assert out == buf


def test_string_pair_checks_both_strings() -> None:
    # [v5:MQTT-1.5.7-1]
    bad_value = h("00 01 6B 00 01 00")
    with _malformed("string pair value contains U+0000"):
        decode_string_pair(bad_value, 0, len(bad_value))
    with pytest.raises(
        ValueError,
        match=r"^string pair name contains U\+0000, which MQTT forbids; remove it$",
    ):
        encode_string_pair(("\x00", "v"), bytearray())


def test_string_pair_encode_rejects_wrong_shape() -> None:
    with pytest.raises(
        TypeError,
        match=r"^string pair must be a \(name, value\) pair of str, not 'kv'$",
    ):
        encode_string_pair("kv", bytearray())  # type: ignore[arg-type]  # on purpose
    with pytest.raises(
        TypeError,
        match=_exact(
            "string pair must be a (name, value) pair of str, not ('a', 'b', 'c')"
        ),
    ):
        encode_string_pair(("a", "b", "c"), bytearray())  # type: ignore[arg-type]  # on purpose


def test_malformed_errors_carry_reason_code_0x81() -> None:
    with pytest.raises(MalformedPacketError) as info:
        decode_u8(b"", 0, 0)
    assert info.value.reason_code is ReasonCode.MALFORMED_PACKET
