"""MessageEnvelope: a message and its metadata, and the JSON form the ports exchange.

The wire form
-------------
With ``options.serialize_envelope`` a queue sends the whole envelope as one JSON
object: ``message_id``, ``trace_id``, ``message_type``, ``sent_time`` and
``message``. The pip-services ports agree on the keys but not on every value, so
reading is lenient and writing follows Node, the reference port:

- ``message``: Node, Python, Go, .NET and Java send the payload in base64; Dart
  sends the text itself. We write base64 (or, with ``text=True``, the text, for
  Dart) and read either: a value that is not base64, or whose decoded bytes are
  not UTF-8 while the envelope's ``sent_time`` has no time zone (Dart and the
  upstream Python port write local time without one; Node, we and the other ports
  write UTC), is taken as text. Base64 may be unpadded or URL-safe. An empty
  payload is ``""`` (as in Node), no payload is ``null``.
- ``sent_time``: written as Node writes it, UTC with milliseconds and ``Z``
  (``2024-05-06T07:08:09.123Z``). Read: any ISO 8601 text (without a zone it is
  UTC), or a number of milliseconds since the epoch; anything else reads as None
  and the message is kept, as upstream's converters do.
- ``message_type``, ``message_id``, ``trace_id``: a number is read as its text;
  ``correlation_id`` (pip-services 3) is read when ``trace_id`` is absent.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
import uuid
from typing import Final, final

import attrs

from ._context import trace_id_of

__all__ = ["MessageEnvelope", "MessagingCapabilities"]

_BASE64: Final = re.compile(r"[A-Za-z0-9+/\-_]*")


def _to_bytes(message: object) -> bytes | None:
    if message is None or isinstance(message, bytes):
        return message
    if isinstance(message, bytearray | memoryview):
        return bytes(message)
    if isinstance(message, str):
        return message.encode("utf-8")
    return json.dumps(message).encode("utf-8")


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


def _from_base64(text: str) -> bytes | None:
    """Decode standard or URL-safe base64, padded or not; None when it is not."""
    stripped = text.rstrip("=")
    if len(text) - len(stripped) > 2 or not _BASE64.fullmatch(stripped):
        return None
    if len(stripped) % 4 == 1:
        return None
    stripped = stripped.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except binascii.Error:  # pragma: no cover - the pattern above rules it out
        return None


def _payload(value: str, zoned: bool) -> bytes:
    """The payload of a wire ``message``: base64 (most ports) or text (Dart)."""
    decoded = _from_base64(value)
    if decoded is None:
        return value.encode("utf-8")
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        # Binary in base64 (a zoned sender), or Dart text that looks like base64.
        return decoded if zoned else value.encode("utf-8")
    return decoded


def _sent_time(value: object) -> tuple[datetime.datetime | None, bool]:
    """Read ``sent_time`` as upstream's converters do: None when unreadable.

    Returns the time (UTC when it had no zone) and whether the text had a zone.
    """
    if isinstance(value, bool):
        return None, False
    try:
        if isinstance(value, int | float):
            return datetime.datetime.fromtimestamp(value / 1000, datetime.UTC), True
        if not isinstance(value, str):
            return None, False
        parsed = datetime.datetime.fromisoformat(value.strip())
    except (ValueError, OverflowError, OSError):
        return None, False
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=datetime.UTC), False
    return parsed, True


def _format_time(value: datetime.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    value = value.astimezone(datetime.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@attrs.define(eq=False, init=False)
class MessageEnvelope:
    """A message with the metadata pip-services queues carry along.

    Like upstream, it is mutable: the queue sets ``sent_time`` when it sends.

    Args:
        context: pip-services context or trace id (kept as ``trace_id``), or None.
        message_type: what the message is, e.g. ``"order.created"``.
        message: the payload: bytes as is, text as UTF-8, anything else as JSON.
    """

    trace_id: str | None
    """Trace id of the business transaction (``correlation_id`` in pip-services 3)."""
    message_type: str | None
    """What the message is; for a received bare payload, the topic."""
    message: bytes | None
    """The payload, or None."""
    message_id: str = attrs.field(factory=lambda: uuid.uuid4().hex)
    """A unique id, generated when not given."""
    sent_time: datetime.datetime | None = None
    """When it was sent (set by the queue when the envelope is serialized)."""
    _reference: object = attrs.field(default=None, repr=False, alias="reference")

    def __init__(
        self, context: object, message_type: str | None, message: object
    ) -> None:
        """Create an envelope (the pip-services constructor)."""
        self.__attrs_init__(trace_id_of(context), message_type, _to_bytes(message))

    def get_reference(self) -> object:
        """The lock token a queue attached to this message (always None for MQTT)."""
        return self._reference

    def set_reference(self, value: object) -> None:
        """Attach a lock token.

        Args:
            value: the token.
        """
        self._reference = value

    def get_message_as_string(self) -> str | None:
        """The payload decoded as UTF-8, or None."""
        return None if self.message is None else self.message.decode("utf-8")

    def set_message_as_string(self, value: str) -> None:
        """Store text as UTF-8.

        Args:
            value: the text.
        """
        self.message = value.encode("utf-8")

    def get_message_as(self) -> object:
        """The payload parsed as JSON, or None."""
        return None if self.message is None else json.loads(self.message)

    def set_message_as_object(self, value: object) -> None:
        """Store a value as JSON (None clears the payload).

        Args:
            value: anything `json.dumps` accepts.
        """
        self.message = None if value is None else json.dumps(value).encode("utf-8")

    def to_json(self, *, text: bool = False) -> dict[str, str | None]:
        """The JSON wire form, written as the Node port writes it.

        ``sent_time`` is UTC with milliseconds and ``Z`` ("now" when not set); the
        payload is base64, ``""`` when empty and None when there is none.

        Args:
            text: write the payload as UTF-8 text instead of base64, as the Dart
                port expects.

        Raises:
            UnicodeDecodeError: ``text`` is true and the payload is not UTF-8.
        """
        sent = self.sent_time or datetime.datetime.now(datetime.UTC)
        payload: str | None = None
        if self.message is not None:
            payload = (
                self.message.decode("utf-8")
                if text
                else base64.b64encode(self.message).decode("ascii")
            )
        return {
            "message_id": self.message_id,
            "trace_id": self.trace_id,
            "message_type": self.message_type,
            "sent_time": _format_time(sent),
            "message": payload,
        }

    @staticmethod
    def from_json(value: str | bytes | None) -> MessageEnvelope | None:
        """Parse the JSON wire form of any port; None when it is not an envelope.

        See the module notes for what each port writes and how it is read.

        Args:
            value: the JSON text.
        """
        if value is None:
            return None
        try:
            data = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        sent, zoned = _sent_time(data.get("sent_time"))
        payload = data.get("message")
        if payload is not None and not isinstance(payload, str):
            return None
        envelope = MessageEnvelope(
            _text(data.get("trace_id", data.get("correlation_id"))),
            _text(data.get("message_type")),
            None if payload is None else _payload(payload, zoned),
        )
        envelope.sent_time = sent
        message_id = _text(data.get("message_id"))
        if message_id is not None:
            envelope.message_id = message_id
        return envelope

    def to_string(self) -> str:
        """``[trace_id,message_type,first 50 bytes of the message]``, ``---`` if unset."""
        text = (
            "---"
            if not self.message
            else self.message[:50].decode("utf-8", errors="replace")
        )
        return f"[{self.trace_id or '---'},{self.message_type or '---'},{text}]"

    def __str__(self) -> str:
        """The same as `to_string`."""
        return self.to_string()


@final
@attrs.frozen
class MessagingCapabilities:
    """What a message queue can do (the pip-services record, with its method names)."""

    _can_message_count: bool = attrs.field(alias="can_message_count")
    _can_send: bool = attrs.field(alias="can_send")
    _can_receive: bool = attrs.field(alias="can_receive")
    _can_peek: bool = attrs.field(alias="can_peek")
    _can_peek_batch: bool = attrs.field(alias="can_peek_batch")
    _can_renew_lock: bool = attrs.field(alias="can_renew_lock")
    _can_abandon: bool = attrs.field(alias="can_abandon")
    _can_dead_letter: bool = attrs.field(alias="can_dead_letter")
    _can_clear: bool = attrs.field(alias="can_clear")

    def can_message_count(self) -> bool:
        """Whether the queue reports how many messages it holds."""
        return self._can_message_count

    def can_send(self) -> bool:
        """Whether the queue sends messages."""
        return self._can_send

    def can_receive(self) -> bool:
        """Whether the queue receives messages."""
        return self._can_receive

    def can_peek(self) -> bool:
        """Whether the queue can peek at the next message."""
        return self._can_peek

    def can_peek_batch(self) -> bool:
        """Whether the queue can peek at several messages at once."""
        return self._can_peek_batch

    def can_renew_lock(self) -> bool:
        """Whether the queue can renew the lock on a message."""
        return self._can_renew_lock

    def can_abandon(self) -> bool:
        """Whether the queue can return a message for others to receive."""
        return self._can_abandon

    def can_dead_letter(self) -> bool:
        """Whether the queue can move a message to a dead letter queue."""
        return self._can_dead_letter

    def can_clear(self) -> bool:
        """Whether the queue can be cleared."""
        return self._can_clear
