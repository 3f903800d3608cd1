"""Wire primitives of MQTT 3.1.1 and 5.0: integers, variable byte integers, strings.

Decoding is index-based rather than slice-based because it is the hot path: a
decoder ``decode_x(buf, pos, end)`` reads one value from ``buf[pos:end]`` and returns
``(value, new_pos)``; nothing is copied except the value itself. ``end`` is the end of
the enclosing packet (or property block), so a value that runs past it is a
``MalformedPacketError`` naming what was being read; bytes after ``end`` that belong to
the next packet are never touched. Encoders ``encode_x(value, out)`` append to a
``bytearray`` and raise ``ValueError``/``TypeError`` naming the value.

The one place where "the bytes have not arrived yet" is not an error is the
variable byte integer of a fixed header: there ``decode_varint`` raises the private
``NeedMoreData`` and the packet decoder waits for more input.
"""

from __future__ import annotations

from typing import Final

from ._exceptions import MalformedPacketError

__all__ = [
    "MAX_VARINT",
    "NeedMoreData",
    "check_utf8",
    "decode_binary",
    "decode_string_pair",
    "decode_u8",
    "decode_u16",
    "decode_u32",
    "decode_utf8",
    "decode_varint",
    "decode_varint_in",
    "encode_binary",
    "encode_string_pair",
    "encode_u8",
    "encode_u16",
    "encode_u32",
    "encode_utf8",
    "encode_varint",
    "utf8_bytes",
    "varint_bytes",
]

MAX_VARINT: Final = 268_435_455
"""Largest value a variable byte integer can hold (four bytes, 7 bits each)."""

MAX_U16: Final = 0xFFFF
MAX_U32: Final = 0xFFFF_FFFF


class NeedMoreData(Exception):
    """The buffer ends before the value does; wait for more bytes (private)."""


# ---------------------------------------------------------------- decoding


def decode_u8(buf: bytes, pos: int, end: int, what: str = "byte") -> tuple[int, int]:
    """Read a one-byte integer at *pos*.

    Args:
        buf: The receive buffer.
        pos: Index of the value.
        end: End of the enclosing packet; the value must lie before it.
        what: Name of the field, for the error message.

    Returns:
        The value and the index after it.

    Raises:
        MalformedPacketError: The packet ends before the value.
    """
    if pos >= end:
        raise MalformedPacketError(f"packet ends inside the {what}")
    return buf[pos], pos + 1


def decode_u16(
    buf: bytes, pos: int, end: int, what: str = "two byte integer"
) -> tuple[int, int]:
    """Read a big-endian two-byte integer at *pos*; see `decode_u8`."""
    if pos + 2 > end:
        raise MalformedPacketError(f"packet ends inside the {what}")
    return buf[pos] << 8 | buf[pos + 1], pos + 2


def decode_u32(
    buf: bytes, pos: int, end: int, what: str = "four byte integer"
) -> tuple[int, int]:
    """Read a big-endian four-byte integer at *pos*; see `decode_u8`."""
    if pos + 4 > end:
        raise MalformedPacketError(f"packet ends inside the {what}")
    return int.from_bytes(buf[pos : pos + 4], "big"), pos + 4


def decode_varint(
    buf: bytes, pos: int, end: int, what: str = "variable byte integer"
) -> tuple[int, int]:
    """Read a variable byte integer at *pos* (1 to 4 bytes, 7 bits each, LSB first).

    Args:
        buf: The receive buffer.
        pos: Index of the first byte.
        end: Index after the last byte that may be read.
        what: Name of the field, for the error message.

    Returns:
        The value and the index after it.

    Raises:
        NeedMoreData: *end* comes before the last byte; inside a packet the caller
            turns this into a `MalformedPacketError`.
        MalformedPacketError: A fifth byte would be needed, or the encoding is
            longer than necessary [v5:MQTT-1.5.5-1].
    """
    value = 0
    shift = 0
    i = pos
    while True:
        if i >= end:
            raise NeedMoreData
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            # A last byte of 0 after at least one continuation byte means the same
            # value fits in fewer bytes. [v5:MQTT-1.5.5-1]
            if byte == 0 and i - pos > 1:
                raise MalformedPacketError(
                    f"{what} is not encoded in the minimum number of bytes"
                )
            return value, i
        if i - pos == 4:
            raise MalformedPacketError(f"{what} is longer than 4 bytes")
        shift += 7


def decode_varint_in(
    buf: bytes, pos: int, end: int, what: str = "variable byte integer"
) -> tuple[int, int]:
    """Read a variable byte integer that must end before *end* (inside a packet)."""
    try:
        return decode_varint(buf, pos, end, what)
    except NeedMoreData:
        raise MalformedPacketError(f"packet ends inside the {what}") from None


def check_utf8(raw: bytes, what: str) -> str:
    """Decode *raw* as an MQTT UTF-8 string, enforcing [v5:MQTT-1.5.4-1..3].

    Python's strict UTF-8 codec already rejects overlong forms, encoded
    surrogates (U+D800..U+DFFF) and code points above U+10FFFF; U+0000 is checked
    here. A leading BOM (EF BB BF) is kept as U+FEFF, never stripped.

    Raises:
        MalformedPacketError: The bytes are not a valid MQTT UTF-8 string.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPacketError(f"{what} is not well-formed UTF-8") from None
    if "\x00" in text:
        raise MalformedPacketError(f"{what} contains U+0000")
    return text


def decode_utf8(
    buf: bytes, pos: int, end: int, what: str = "string"
) -> tuple[str, int]:
    """Read a UTF-8 encoded string (two-byte length, then the bytes).

    Raises:
        MalformedPacketError: The string runs past *end*, or is not valid UTF-8
            or contains U+0000 [v5:MQTT-1.5.4-1] [v5:MQTT-1.5.4-2].
    """
    if pos + 2 > end:
        raise MalformedPacketError(f"packet ends inside the length of the {what}")
    start = pos + 2
    stop = start + (buf[pos] << 8 | buf[pos + 1])
    if stop > end:
        raise MalformedPacketError(f"{what} runs past the end of the packet")
    return check_utf8(buf[start:stop], what), stop


def decode_binary(
    buf: bytes, pos: int, end: int, what: str = "binary data"
) -> tuple[bytes, int]:
    """Read binary data (two-byte length, then the bytes).

    Raises:
        MalformedPacketError: The data runs past *end*.
    """
    if pos + 2 > end:
        raise MalformedPacketError(f"packet ends inside the length of the {what}")
    start = pos + 2
    stop = start + (buf[pos] << 8 | buf[pos + 1])
    if stop > end:
        raise MalformedPacketError(f"{what} runs past the end of the packet")
    return buf[start:stop], stop


def decode_string_pair(
    buf: bytes, pos: int, end: int, what: str = "string pair"
) -> tuple[tuple[str, str], int]:
    """Read a UTF-8 string pair, both strings checked [v5:MQTT-1.5.7-1]."""
    name, pos = decode_utf8(buf, pos, end, f"{what} name")
    value, pos = decode_utf8(buf, pos, end, f"{what} value")
    return (name, value), pos


# ---------------------------------------------------------------- encoding


def _check_int(value: object, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be an integer {low}..{high}, not {value!r}")
    return value


def encode_u8(value: int, out: bytearray, what: str = "byte") -> None:
    """Append a one-byte integer.

    Raises:
        ValueError: *value* is not an integer 0..255.
    """
    out.append(_check_int(value, 0, 0xFF, what))


def encode_u16(value: int, out: bytearray, what: str = "two byte integer") -> None:
    """Append a big-endian two-byte integer; *value* must be 0..65535."""
    out += _check_int(value, 0, MAX_U16, what).to_bytes(2, "big")


def encode_u32(value: int, out: bytearray, what: str = "four byte integer") -> None:
    """Append a big-endian four-byte integer; *value* must be 0..4294967295."""
    out += _check_int(value, 0, MAX_U32, what).to_bytes(4, "big")


def varint_bytes(value: int) -> bytes:
    """Return the variable byte integer encoding of *value* (0..268435455).

    The caller has checked the range; the result uses the minimum number of bytes
    [v5:MQTT-1.5.5-1].
    """
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_varint(
    value: int, out: bytearray, what: str = "variable byte integer"
) -> None:
    """Append a variable byte integer.

    Raises:
        ValueError: *value* is not an integer 0..268435455.
    """
    out += varint_bytes(_check_int(value, 0, MAX_VARINT, what))


def utf8_bytes(value: object, what: str = "string") -> bytes:
    """Return *value* encoded as UTF-8 after checking the MQTT string rules.

    Raises:
        TypeError: *value* is not a `str`.
        ValueError: *value* holds U+0000 or a lone surrogate, or is longer than
            65535 bytes in UTF-8 [v5:MQTT-1.5.4-1] [v5:MQTT-1.5.4-2].
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{what} contains a lone surrogate, which UTF-8 cannot encode; remove it"
        ) from None
    if b"\x00" in data:
        raise ValueError(f"{what} contains U+0000, which MQTT forbids; remove it")
    if len(data) > MAX_U16:
        raise ValueError(
            f"{what} is {len(data)} bytes in UTF-8, the maximum is 65535; shorten it"
        )
    return data


def encode_utf8(value: str, out: bytearray, what: str = "string") -> None:
    """Append a UTF-8 encoded string with its two-byte length; see `utf8_bytes`."""
    data = utf8_bytes(value, what)
    out += len(data).to_bytes(2, "big")
    out += data


def encode_binary(
    value: bytes | bytearray | memoryview, out: bytearray, what: str = "binary data"
) -> None:
    """Append binary data with its two-byte length.

    Raises:
        TypeError: *value* is not bytes-like.
        ValueError: *value* is longer than 65535 bytes.
    """
    data: object = value
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be bytes, not {type(data).__name__}")
    size = len(data)
    if size > MAX_U16:
        raise ValueError(f"{what} is {size} bytes, the maximum is 65535; shorten it")
    out += size.to_bytes(2, "big")
    out += data


def encode_string_pair(
    value: tuple[str, str], out: bytearray, what: str = "string pair"
) -> None:
    """Append a UTF-8 string pair, both strings checked [v5:MQTT-1.5.7-1].

    Raises:
        TypeError: *value* is not a pair of `str`.
        ValueError: One of the strings breaks the MQTT string rules.
    """
    pair: object = value
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise TypeError(f"{what} must be a (name, value) pair of str, not {pair!r}")
    encode_utf8(value[0], out, f"{what} name")
    encode_utf8(value[1], out, f"{what} value")
