"""MQTT over WebSocket: a wsproto client that presents an anyio byte stream.

How it works. `open_websocket_stream` sends the HTTP upgrade request over an
already connected stream (TCP or TLS), offering the subprotocol ``mqtt``
[v5:MQTT-6.0.0-3], and reads until wsproto reports the server's answer. A refusal,
an answer that is not a valid upgrade, or an accepted upgrade without ``mqtt`` as
the selected subprotocol [v5:MQTT-6.0.0-4] raises `WebSocketHandshakeError`, which
``_transports.connect_stream`` maps to a `ConnectError` naming the URL.

After the handshake, `WebSocketByteStream` turns the message-oriented WebSocket
into the byte stream the MQTT engine expects:

* ``send(data)`` writes ``data`` as one binary frame; a lock keeps the frames of
  concurrent senders, and the pongs and close replies written on the receive path,
  from interleaving on the wire.
* ``receive()`` reads large chunks from the inner stream, feeds them to wsproto,
  and appends the payload of every binary frame (even of a partial one) to a
  buffer, which it returns from. MQTT packets are not aligned to frames
  [v5:MQTT-6.0.0-2]: one frame may hold several packets or a piece of one, and the
  packet decoder does the reassembly.
* A ping is answered with a pong; a pong is ignored.
* A text frame breaks [v5:MQTT-6.0.0-1]: the stream sends a close frame with code
  1003, closes the connection and raises `ProtocolError`. So does a frame wsproto
  cannot parse (with the code wsproto suggests).
* A close frame from the server is answered, the connection closed, and
  ``receive()`` raises `anyio.EndOfStream` once the buffered bytes are returned.
  The end of the inner stream without a close frame ends the stream the same way.
* ``aclose()`` sends a close frame (code 1000) if it can do so without waiting
  for another task's write, then closes the inner stream.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.lowlevel
import h11
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import RemoteProtocolError

from ._exceptions import ProtocolError
from ._transports import WebSocketHandshakeError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "MQTT_SUBPROTOCOL",
    "WebSocketByteStream",
    "WebSocketHandshakeError",
    "open_websocket_stream",
]

#: The WebSocket subprotocol name for MQTT 3.1.1 and 5.0 [v5:MQTT-6.0.0-3].
MQTT_SUBPROTOCOL: typing.Final = "mqtt"

# How much to ask the inner stream for at once: the reader decodes every packet in
# a chunk before it awaits again, so large reads mean few wake-ups.
_RECEIVE_SIZE: typing.Final = 65536


async def open_websocket_stream(
    stream: anyio.abc.ByteStream,
    *,
    host: str,
    port: int,
    path: str,
    headers: Mapping[str, str] | None = None,
) -> WebSocketByteStream:
    """Do the WebSocket opening handshake for MQTT over a connected stream.

    The returned stream owns ``stream``; if the handshake fails, ``stream`` is
    closed before the exception propagates.

    Args:
        stream: A connected TCP or TLS stream to the server.
        host: The server's host name or address, for the ``Host`` header.
        port: The server's port, for the ``Host`` header.
        path: The request target, e.g. ``"/mqtt"`` (may carry a query string).
        headers: Extra HTTP headers for the upgrade request (e.g. an
            ``Authorization`` header).

    Returns:
        A byte stream that carries MQTT packets in binary WebSocket frames.

    Raises:
        WebSocketHandshakeError: The server refused the upgrade, did not select the
            ``mqtt`` subprotocol, or did not answer with valid HTTP.
        ValueError: A header in ``headers`` is not valid HTTP.
        anyio.EndOfStream: The server closed the connection during the handshake.
        anyio.BrokenResourceError: The inner stream broke.
        OSError: The inner stream failed.
    """
    try:
        ws = WSConnection(ConnectionType.CLIENT)
        host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            request = ws.send(
                Request(
                    host=host_header,
                    target=path,
                    subprotocols=[MQTT_SUBPROTOCOL],
                    extra_headers=[
                        (name.encode("latin-1"), value.encode("latin-1"))
                        for name, value in (headers or {}).items()
                    ],
                )
            )
        except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
            raise ValueError(
                f"cannot send the websocket upgrade request: {exc}; "
                f"check the websocket headers and path"
            ) from exc
        await stream.send(request)
        while True:
            data = await stream.receive(_RECEIVE_SIZE)
            try:
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, RejectConnection):
                        raise WebSocketHandshakeError(
                            f"was rejected: HTTP {event.status_code}",
                            status_code=event.status_code,
                        )
                    # Only a refusal or an acceptance can come first.
                    assert isinstance(event, AcceptConnection)
                    if event.subprotocol != MQTT_SUBPROTOCOL:
                        # [v5:MQTT-6.0.0-4] the server must select "mqtt"
                        raise WebSocketHandshakeError(
                            f"was accepted without the {MQTT_SUBPROTOCOL!r} "
                            f"subprotocol; is this an MQTT websocket listener?"
                        )
                    # Frames that came with the answer stay queued in wsproto.
                    return WebSocketByteStream(stream, ws)
            except RemoteProtocolError as exc:
                raise WebSocketHandshakeError(
                    f"failed: the answer is not a websocket upgrade ({exc}); "
                    f"is this a websocket listener?"
                ) from exc
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise


@typing.final
class WebSocketByteStream(anyio.abc.ByteStream):
    """A byte stream over an open MQTT WebSocket connection.

    Created by `open_websocket_stream`. Its extra attributes are those of the inner
    stream (socket and TLS attributes).
    """

    def __init__(self, stream: anyio.abc.ByteStream, ws: WSConnection) -> None:
        self._stream = stream
        self._ws = ws
        self._buffer = bytearray()
        self._send_lock = anyio.Lock()
        self._receive_guard = anyio.ResourceGuard("reading from")
        # _closed: aclose() was called. _eof: the server closed or the inner stream
        # ended. _broken: a protocol error or an interrupted write made the
        # connection unusable.
        self._closed = False
        self._eof = False
        self._broken = False

    @property
    def extra_attributes(self) -> Mapping[typing.Any, Callable[[], typing.Any]]:
        """The inner stream's extra attributes."""
        return self._stream.extra_attributes

    async def receive(self, max_bytes: int = _RECEIVE_SIZE) -> bytes:
        """Return up to ``max_bytes`` bytes of binary frame payload.

        Args:
            max_bytes: The most bytes to return.

        Returns:
            The next bytes from the server (never empty).

        Raises:
            anyio.EndOfStream: The server closed the WebSocket or the connection.
            anyio.ClosedResourceError: This stream was closed.
            anyio.BrokenResourceError: The connection broke earlier.
            anyio.BusyResourceError: Another task is already receiving.
            ProtocolError: The server sent a text frame or an invalid frame.
        """
        with self._receive_guard:
            waited = False
            while not self._buffer:
                if self._closed:
                    raise anyio.ClosedResourceError
                if self._broken:
                    raise anyio.BrokenResourceError
                # Frames may already be queued in wsproto (e.g. ones that came
                # with the handshake answer), so look at them before reading.
                await self._handle_events()
                if self._buffer:
                    break
                if self._eof:
                    if not waited:
                        await anyio.lowlevel.checkpoint()
                    raise anyio.EndOfStream
                try:
                    data = await self._stream.receive(_RECEIVE_SIZE)
                except anyio.EndOfStream:
                    self._eof = True
                else:
                    self._ws.receive_data(data)
                waited = True
            if not waited:
                await anyio.lowlevel.checkpoint()
            chunk = bytes(self._buffer[:max_bytes])
            del self._buffer[:max_bytes]
            return chunk

    async def _handle_events(self) -> None:
        for event in self._ws.events():
            if isinstance(event, BytesMessage):
                self._buffer += event.data
            elif isinstance(event, Ping):
                await self._send_event(event.response())
            elif isinstance(event, TextMessage):
                # [v5:MQTT-6.0.0-1] data in any frame but a binary one: close
                await self._fail(
                    CloseReason.UNSUPPORTED_DATA,
                    "the broker sent a websocket text frame; "
                    "MQTT over websocket allows binary frames only",
                )
            elif isinstance(event, CloseConnection):
                await self._handle_close(event)
                return
            # A Pong needs no action.

    async def _handle_close(self, event: CloseConnection) -> None:
        if self._ws.state is ConnectionState.OPEN:
            # wsproto reports a frame it cannot parse as a CloseConnection event
            # without leaving the OPEN state; a real close frame moves it on.
            await self._fail(
                event.code,
                f"the broker sent an invalid websocket frame: {event.reason}",
            )
        try:
            await self._send_event(event.response())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the server may already have gone; nothing left to tell it
        finally:
            self._eof = True
            await self._stream.aclose()

    async def _fail(self, code: int, message: str) -> typing.NoReturn:
        self._buffer.clear()
        try:
            await self._send_event(CloseConnection(code=code))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # closing anyway
        finally:
            self._broken = True
            await self._stream.aclose()
        raise ProtocolError(message)

    async def _send_event(self, event: Event) -> None:
        async with self._send_lock:
            if self._closed:
                raise anyio.ClosedResourceError
            state = self._ws.state
            sendable = state is ConnectionState.OPEN or (
                state is ConnectionState.REMOTE_CLOSING
                and isinstance(event, CloseConnection)
            )
            if self._broken or self._eof or not sendable:
                raise anyio.BrokenResourceError
            data = self._ws.send(event)
            try:
                await self._stream.send(data)
            except BaseException:
                # Part of a frame may be on the wire; nothing after it can be read.
                self._broken = True
                raise

    async def send(self, item: bytes) -> None:
        """Send ``item`` as one binary frame.

        If cancelled, part of the frame may have been written; the stream is then
        broken and further sends raise `anyio.BrokenResourceError`.

        Args:
            item: The bytes to send.

        Raises:
            anyio.ClosedResourceError: This stream was closed.
            anyio.BrokenResourceError: The server closed the WebSocket, or the
                connection broke.
        """
        await self._send_event(BytesMessage(data=item))

    async def send_eof(self) -> None:
        """Not supported: a WebSocket cannot be half-closed.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError("a websocket stream cannot send an end-of-file")

    async def aclose(self) -> None:
        """Send a close frame if possible, then close the connection.

        Idempotent. The close frame is skipped when another task is in the middle
        of a write or the connection is already broken; the inner stream is closed
        in any case, even when cancelled.
        """
        if self._closed:
            await anyio.lowlevel.checkpoint()
            return
        self._closed = True
        try:
            if (
                not self._broken
                and self._ws.state is ConnectionState.OPEN
                and not self._send_lock.locked()
            ):
                data = self._ws.send(CloseConnection(code=CloseReason.NORMAL_CLOSURE))
                await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the connection is going away anyway
        finally:
            await self._stream.aclose()
