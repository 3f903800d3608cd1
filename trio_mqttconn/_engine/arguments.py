"""Arguments: checks and conversions of what callers hand to `MqttClient`.

Each fails at the call, naming the argument and what it expected (a `TypeError`
for a wrong type, a `ValueError` for a wrong value).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._transports import Endpoint, parse_uri

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "check_keepalive",
    "check_session_expiry",
    "check_topic",
    "positive_or_zero",
    "to_endpoints",
    "to_payload",
]


def to_payload(payload: bytes | bytearray | memoryview | str) -> bytes:
    """*payload* as bytes (a str as UTF-8)."""
    if type(payload) is bytes:
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    raise TypeError(
        f"payload must be bytes or str, not {type(payload).__name__}; "
        "encode other values before publishing"
    )


def check_topic(name: str, value: object) -> None:
    """A topic (or filter) argument must be a str."""
    if type(value) is not str:
        raise TypeError(
            f"{name} must be a str, not {type(value).__name__}: {value!r}"
            if isinstance(value, bytes)
            else f"{name} must be a str, not {type(value).__name__}"
        )


def to_endpoints(uri_or_uris: str | Sequence[str]) -> tuple[Endpoint, ...]:
    """One broker URI or several, parsed (at least one)."""
    uris = [uri_or_uris] if isinstance(uri_or_uris, str) else list(uri_or_uris)
    if not uris:
        raise ValueError("at least one broker URI is needed, e.g. 'mqtt://localhost'")
    return tuple(parse_uri(uri) for uri in uris)


def positive_or_zero(name: str) -> Callable[[object, object, float], None]:
    """An attrs validator: *name* is a number of seconds >= 0."""

    def check(instance: object, attribute: object, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")

    return check


def check_keepalive(instance: object, attribute: object, value: int) -> None:
    """An attrs validator: keepalive is a whole number of seconds 0..65535."""
    if isinstance(value, bool) or not 0 <= value <= 65535 or value != int(value):
        raise ValueError(
            f"keepalive must be a whole number of seconds 0..65535, not {value!r}"
        )


def check_session_expiry(session_expiry: int, connected_with: int) -> None:
    """The Session Expiry Interval of a DISCONNECT (``aclose(session_expiry=)``)."""
    if not 0 <= session_expiry <= 0xFFFFFFFF:
        raise ValueError(
            f"session_expiry must be 0..4294967295 s, not {session_expiry!r}"
        )
    if session_expiry and not connected_with:
        raise ValueError(
            f"cannot set session_expiry={session_expiry} on close: the client "
            "connected with session_expiry=0; give MqttClient(session_expiry=...)"
        )
