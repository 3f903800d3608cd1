"""Tests for MQTT over WebSocket: the wsproto adapter and ``ws://`` / ``wss://``.

The server side is a small wsproto server driven by each test, either behind a
real loopback listener (through `connect_stream`) or on an in-memory stream pair
(`open_websocket_stream` directly, with fault hooks).
"""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import typing
from collections import deque
from typing import Any, TypeVar

import anyio
import anyio.abc
import pytest
import trustme
from anyio.abc import SocketAttribute, TaskStatus
from anyio.streams.tls import TLSStream
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

from tests._fakes import MemoryByteStream, memory_byte_stream_pair
from tests.engine._servers import bounded, connect_error
from trio_mqttconn._exceptions import ConnectError, ProtocolError
from trio_mqttconn._transports import connect_stream, parse_uri
from trio_mqttconn._websocket import (
    WebSocketByteStream,
    WebSocketHandshakeError,
    open_websocket_stream,
)

if typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

pytestmark = pytest.mark.anyio

T = TypeVar("T")


class WsServer:
    """The server end of a WebSocket, one step at a time."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.SERVER)
        self.pending: deque[Event] = deque()
        self.request: Request | None = None

    async def next_event(self) -> Event:
        while not self.pending:
            self.ws.receive_data(await self.stream.receive())
            self.pending.extend(self.ws.events())
        return self.pending.popleft()

    async def read_request(self) -> Request:
        event = await self.next_event()
        assert isinstance(event, Request)
        self.request = event
        return event

    async def accept(self, subprotocol: str | None = "mqtt", then: bytes = b"") -> None:
        await self.read_request()
        await self.stream.send(
            self.ws.send(AcceptConnection(subprotocol=subprotocol)) + then
        )

    def frame(self, event: Event) -> bytes:
        return self.ws.send(event)

    async def send(self, *events: Event) -> None:
        await self.stream.send(b"".join(self.ws.send(event) for event in events))

    async def echo_forever(self) -> None:
        """Answer every binary message with its upper-case version."""
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            while True:
                event = await self.next_event()
                if isinstance(event, BytesMessage):
                    await self.send(BytesMessage(data=bytes(event.data).upper()))
                elif isinstance(event, CloseConnection):
                    return


# -- servers behind a real listener, through connect_stream -------------------------


async def serve_once(
    handler: Callable[[anyio.abc.ByteStream], Awaitable[None]],
    *,
    tls: ssl.SSLContext | None = None,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with multi:
        task_status.started(multi.extra(SocketAttribute.local_port))
        listener = typing.cast("anyio.abc.SocketListener", multi.listeners[0])
        stream: anyio.abc.ByteStream = await listener.accept()
    async with stream:
        if tls is not None:
            stream = await TLSStream.wrap(
                stream, server_side=True, ssl_context=tls, standard_compatible=False
            )
        await handler(stream)


@bounded
async def test_websocket_connect_offers_mqtt_and_exchanges_binary_frames() -> None:
    requests: list[Request] = []

    async def handler(stream: anyio.abc.ByteStream) -> None:
        server = WsServer(stream)
        await server.accept()
        assert server.request is not None
        requests.append(server.request)
        await server.echo_forever()

    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_once, handler)
        stream = await connect_stream(
            parse_uri(f"ws://127.0.0.1:{port}"),
            websocket_headers={"Authorization": "Bearer t0ken"},
        )
        async with stream:
            assert isinstance(stream, WebSocketByteStream)
            sock = stream.extra(SocketAttribute.raw_socket)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            await stream.send(b"\x10\x00")
            assert await stream.receive() == b"\x10\x00"
            await stream.send(b"mqtt")
            assert await stream.receive() == b"MQTT"
    [request] = requests
    # [v5:MQTT-6.0.0-3] the client offers the "mqtt" subprotocol
    assert request.subprotocols == ["mqtt"]
    assert request.target == "/mqtt"
    assert request.host == f"127.0.0.1:{port}"
    assert (b"authorization", b"Bearer t0ken") in request.extra_headers


@bounded
async def test_websocket_connect_uses_the_path_override() -> None:
    targets: list[str] = []

    async def handler(stream: anyio.abc.ByteStream) -> None:
        server = WsServer(stream)
        targets.append((await server.read_request()).target)
        await server.send(RejectConnection(status_code=404))

    port, info = await connect_error(
        serve_once, handler, "ws://127.0.0.1:{port}/ignored", websocket_path="/ws?x=1"
    )
    assert targets == ["/ws?x=1"]
    assert str(info.value) == (
        f"websocket handshake with ws://127.0.0.1:{port}/ws?x=1 was rejected: HTTP 404"
    )
    cause = info.value.__cause__
    assert isinstance(cause, WebSocketHandshakeError)
    assert cause.status_code == 404


@bounded
async def test_websocket_connect_over_tls() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def handler(stream: anyio.abc.ByteStream) -> None:
        server = WsServer(stream)
        await server.accept()
        await server.echo_forever()

    async with anyio.create_task_group() as tg:
        port = await tg.start(
            functools.partial(serve_once, handler, tls=server_context)
        )
        stream = await connect_stream(
            parse_uri(f"wss://localhost:{port}/mqtt"), ssl_context=client_context
        )
        async with stream:
            assert stream.extra(SocketAttribute.remote_port) == port
            await stream.send(b"tls")
            assert await stream.receive() == b"TLS"


@bounded
async def test_websocket_connect_rejected() -> None:
    async def handler(stream: anyio.abc.ByteStream) -> None:
        server = WsServer(stream)
        await server.read_request()
        await server.send(RejectConnection(status_code=403, has_body=True))

    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_once, handler)
        with pytest.raises(
            ConnectError,
            match=rf"^websocket handshake with ws://127\.0\.0\.1:{port}/mqtt was "
            rf"rejected: HTTP 403$",
        ):
            await connect_stream(parse_uri(f"ws://127.0.0.1:{port}"))


@bounded
async def test_websocket_connect_requires_the_server_to_select_mqtt() -> None:
    async def handler(stream: anyio.abc.ByteStream) -> None:
        server = WsServer(stream)
        await server.accept(subprotocol=None)
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            await server.next_event()

    port, info = await connect_error(serve_once, handler, "ws://127.0.0.1:{port}")
    # [v5:MQTT-6.0.0-4] the server must select "mqtt"
    assert str(info.value) == (
        f"websocket handshake with ws://127.0.0.1:{port}/mqtt was accepted without "
        f"the 'mqtt' subprotocol; is this an MQTT websocket listener?"
    )


@bounded
@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n"
            b"Sec-WebSocket-Protocol: mqtt\r\n\r\n",
            "Bad accept token",
        ),
        (b"\x20\x02\x00\x00", "Bad HTTP message"),  # an MQTT CONNACK, not HTTP
    ],
)
async def test_websocket_connect_invalid_upgrade_answer(
    answer: bytes, detail: str
) -> None:
    async def handler(stream: anyio.abc.ByteStream) -> None:
        await stream.receive()
        await stream.send(answer)
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            await stream.receive()

    port, info = await connect_error(serve_once, handler, "ws://127.0.0.1:{port}")
    assert str(info.value) == (
        f"websocket handshake with ws://127.0.0.1:{port}/mqtt failed: the answer is "
        f"not a websocket upgrade ({detail}); is this a websocket listener?"
    )


@bounded
async def test_websocket_connect_server_closes_during_handshake() -> None:
    async def handler(stream: anyio.abc.ByteStream) -> None:
        await stream.receive()

    port, info = await connect_error(serve_once, handler, "ws://127.0.0.1:{port}")
    assert str(info.value) == (
        f"127.0.0.1:{port} closed the connection during the websocket handshake; "
        f"is it a websocket port?"
    )
    assert isinstance(info.value.__cause__, anyio.EndOfStream)


@bounded
async def test_websocket_concurrent_sends_do_not_interleave_frames() -> None:
    payloads = [bytes([i]) * 300_000 for i in range(4)]
    received: list[bytes] = []

    async def handler(stream: anyio.abc.ByteStream) -> None:
        server = WsServer(stream)
        await server.accept()
        parts = bytearray()
        while len(received) < len(payloads):
            event = await server.next_event()
            assert isinstance(event, BytesMessage)
            parts += event.data
            if event.message_finished:
                received.append(bytes(parts))
                parts.clear()

    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_once, handler)
        stream = await connect_stream(parse_uri(f"ws://127.0.0.1:{port}"))
        async with stream, anyio.create_task_group() as senders:
            for payload in payloads:
                senders.start_soon(stream.send, payload)
    assert sorted(received) == payloads


# -- the adapter on an in-memory stream pair -----------------------------------------


async def open_pair(
    server_script: Callable[[WsServer], Coroutine[Any, Any, None]],
    tg: anyio.abc.TaskGroup,
    **kwargs: Any,
) -> tuple[WebSocketByteStream, MemoryByteStream, WsServer]:
    """Open a WebSocket over memory streams; ``server_script`` runs in ``tg``."""
    client_side, server_side = memory_byte_stream_pair("ws")
    server = WsServer(server_side)
    tg.start_soon(server_script, server)
    options: dict[str, Any] = {"host": "broker", "port": 80, "path": "/mqtt"}
    options.update(kwargs)
    stream = await open_websocket_stream(client_side, **options)
    return stream, client_side, server


async def accept_only(server: WsServer) -> None:
    await server.accept()


async def read_exactly(stream: anyio.abc.ByteStream, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        data += await stream.receive()
    return bytes(data)


@bounded
async def test_websocket_host_header_brackets_ipv6() -> None:
    async with anyio.create_task_group() as tg:
        stream, _, server = await open_pair(accept_only, tg, host="::1", port=9001)
    assert server.request is not None
    assert server.request.host == "[::1]:9001"
    await stream.aclose()


@bounded
async def test_websocket_packets_are_not_aligned_to_frames() -> None:
    # [v5:MQTT-6.0.0-2] one frame may hold several packets or a piece of one
    async def script(server: WsServer) -> None:
        await server.accept()
        await server.send(BytesMessage(data=b"\x30\x02ab\x30\x02cd"))  # two packets
        await server.send(
            BytesMessage(data=b"\x30\x04", message_finished=False),
            BytesMessage(data=b"efgh", message_finished=True),
        )
        # one frame trickling in byte by byte, and a zero-length frame
        for byte in server.frame(BytesMessage(data=b"\x30\x02ij")):
            await server.stream.send(bytes([byte]))
        await server.send(BytesMessage(data=b""), BytesMessage(data=b"\xc0\x00"))

    async with anyio.create_task_group() as tg:
        stream, _, _ = await open_pair(script, tg)
        expected = b"\x30\x02ab\x30\x02cd\x30\x04efgh\x30\x02ij\xc0\x00"
        assert await read_exactly(stream, len(expected)) == expected
        await stream.aclose()


@bounded
async def test_websocket_receive_respects_max_bytes() -> None:
    async def script(server: WsServer) -> None:
        await server.accept()
        await server.send(BytesMessage(data=b"0123456789"))

    async with anyio.create_task_group() as tg:
        stream, _, _ = await open_pair(script, tg)
        assert await stream.receive(4) == b"0123"
        assert await stream.receive(4) == b"4567"
        assert await stream.receive() == b"89"
        await stream.aclose()


@bounded
async def test_websocket_handshake_answer_in_pieces() -> None:
    async def script(server: WsServer) -> None:
        await server.read_request()
        answer = server.frame(AcceptConnection(subprotocol="mqtt"))
        for piece in (answer[:10], answer[10:-1], answer[-1:]):
            await server.stream.send(piece)
            await anyio.wait_all_tasks_blocked()

    async with anyio.create_task_group() as tg:
        stream, client_side, _ = await open_pair(script, tg)
        assert len(client_side.writes) == 1  # only the request so far
        await stream.aclose()


@bounded
async def test_websocket_frames_sent_with_the_handshake_answer_are_kept() -> None:
    async def script(server: WsServer) -> None:
        await server.read_request()
        answer = server.frame(AcceptConnection(subprotocol="mqtt"))
        await server.stream.send(answer + server.frame(BytesMessage(data=b"early")))

    async with anyio.create_task_group() as tg:
        stream, client_side, _ = await open_pair(script, tg)
        received_before = client_side.bytes_received
        assert await stream.receive() == b"early"
        assert client_side.bytes_received == received_before  # no extra read
        await stream.aclose()


@bounded
async def test_websocket_text_frame_is_a_protocol_error() -> None:
    closes: list[CloseConnection] = []

    async def script(server: WsServer) -> None:
        await server.accept()
        await server.send(TextMessage(data="hello"))
        event = await server.next_event()
        assert isinstance(event, CloseConnection)
        closes.append(event)

    async with anyio.create_task_group() as tg:
        stream, client_side, _ = await open_pair(script, tg)
        with pytest.raises(
            ProtocolError,
            match=r"^the broker sent a websocket text frame; MQTT over websocket "
            r"allows binary frames only$",
        ):
            await stream.receive()
    # [v5:MQTT-6.0.0-1] data in a non-binary frame: the client closes
    assert [close.code for close in closes] == [1003]
    assert client_side.closed
    with pytest.raises(anyio.BrokenResourceError):
        await stream.receive()
    with pytest.raises(anyio.BrokenResourceError):
        await stream.send(b"x")
    await stream.aclose()


@bounded
async def test_websocket_text_frame_after_the_server_left() -> None:
    async def script(server: WsServer) -> None:
        await server.accept()
        await server.send(TextMessage(data="bye"))
        await server.stream.aclose()

    async with anyio.create_task_group() as tg:
        stream, client_side, _ = await open_pair(script, tg)
    # the close frame cannot be sent any more; the error is still the text frame
    with pytest.raises(ProtocolError, match=r"^the broker sent a websocket text frame"):
        await stream.receive()
    assert client_side.closed


@bounded
async def test_websocket_invalid_frame_is_a_protocol_error() -> None:
    closes: list[CloseConnection] = []

    async def script(server: WsServer) -> None:
        await server.accept()
        await server.stream.send(b"\x83\x00")  # reserved opcode 3
        event = await server.next_event()
        assert isinstance(event, CloseConnection)
        closes.append(event)

    async with anyio.create_task_group() as tg:
        stream, _, _ = await open_pair(script, tg)
        with pytest.raises(
            ProtocolError,
            match=r"^the broker sent an invalid websocket frame: Invalid opcode 0x3$",
        ):
            await stream.receive()
    assert [close.code for close in closes] == [1002]


@bounded
async def test_websocket_answers_pings_and_ignores_pongs() -> None:
    async def script(server: WsServer) -> None:
        await server.accept()
        await server.send(Pong(payload=b"unasked"), Ping(payload=b"are you there"))
        event = await server.next_event()
        assert event == Pong(payload=b"are you there")
        await server.send(BytesMessage(data=b"after the pong"))

    async with anyio.create_task_group() as tg:
        stream, _, _ = await open_pair(script, tg)
        assert await stream.receive() == b"after the pong"
        await stream.aclose()


@bounded
async def test_websocket_close_frame_from_the_server_ends_the_stream() -> None:
    replies: list[Event] = []

    async def script(server: WsServer) -> None:
        await server.accept()
        await server.send(
            BytesMessage(data=b"last words"),
            CloseConnection(code=1001, reason="going away"),
        )
        replies.append(await server.next_event())

    async with anyio.create_task_group() as tg:
        stream, client_side, _ = await open_pair(script, tg)
        assert await stream.receive() == b"last words"
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()
    assert replies == [CloseConnection(code=1001, reason="going away")]
    assert client_side.closed
    with pytest.raises(anyio.BrokenResourceError):
        await stream.send(b"x")
    await stream.aclose()


@bounded
async def test_websocket_close_frame_when_the_reply_cannot_be_sent() -> None:
    async def script(server: WsServer) -> None:
        await server.accept()
        await server.send(CloseConnection(code=1000))
        await server.stream.aclose()

    async with anyio.create_task_group() as tg:
        stream, client_side, _ = await open_pair(script, tg)
    with pytest.raises(anyio.EndOfStream):
        await stream.receive()
    assert client_side.closed


@bounded
async def test_websocket_end_of_inner_stream_without_close_frame() -> None:
    async def script(server: WsServer) -> None:
        await server.accept()
        await server.send(BytesMessage(data=b"partial"))
        await server.stream.aclose()

    async with anyio.create_task_group() as tg:
        stream, _, _ = await open_pair(script, tg)
        assert await stream.receive() == b"partial"
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()
    with pytest.raises(anyio.BrokenResourceError):
        await stream.send(b"x")
    await stream.aclose()


@bounded
async def test_websocket_aclose_sends_a_close_frame() -> None:
    closes: list[Event] = []

    async def script(server: WsServer) -> None:
        await server.accept()
        closes.append(await server.next_event())

    async with anyio.create_task_group() as tg:
        stream, client_side, _ = await open_pair(script, tg)
        await stream.aclose()
        await stream.aclose()  # idempotent
    assert closes == [CloseConnection(code=1000, reason="")]
    assert client_side.closed
    with pytest.raises(anyio.ClosedResourceError):
        await stream.receive()
    with pytest.raises(anyio.ClosedResourceError):
        await stream.send(b"x")


@bounded
async def test_websocket_aclose_skips_the_close_frame_during_a_stalled_send() -> None:
    async with anyio.create_task_group() as tg:
        stream, client_side, _ = await open_pair(accept_only, tg)
        client_side.stall_sends()
        sent_before = len(client_side.writes)

        async def stalled_send() -> None:
            with pytest.raises(anyio.ClosedResourceError):
                await stream.send(b"stuck")

        tg.start_soon(stalled_send)
        await anyio.wait_all_tasks_blocked()
        await stream.aclose()
    assert len(client_side.writes) == sent_before
    assert client_side.closed


@bounded
async def test_websocket_aclose_on_a_broken_connection() -> None:
    async with anyio.create_task_group() as tg:
        stream, client_side, _ = await open_pair(accept_only, tg)
    client_side.abort()
    await stream.aclose()
    assert client_side.closed


@bounded
async def test_websocket_cancelled_send_breaks_the_stream() -> None:
    async with anyio.create_task_group() as tg:
        stream, client_side, _ = await open_pair(accept_only, tg)
    client_side.stall_sends()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(stream.send, b"half")
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
    client_side.resume_sends()
    with pytest.raises(anyio.BrokenResourceError):
        await stream.send(b"next")
    with pytest.raises(anyio.BrokenResourceError):
        await stream.receive()
    await stream.aclose()


@bounded
async def test_websocket_send_waits_for_another_send() -> None:
    async with anyio.create_task_group() as tg:
        stream, client_side, _ = await open_pair(accept_only, tg)
        client_side.stall_sends()
        sent_before = len(client_side.writes)
        tg.start_soon(stream.send, b"first")
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(stream.send, b"second")
        await anyio.wait_all_tasks_blocked()
        client_side.resume_sends()
    frames = client_side.writes[sent_before:]
    assert len(frames) == 2
    assert [len(frame) for frame in frames] == [2 + 4 + 5, 2 + 4 + 6]
    await stream.aclose()


@bounded
async def test_websocket_receive_is_not_shared() -> None:
    async def receive_until_closed(stream: anyio.abc.ByteStream) -> None:
        with pytest.raises(anyio.ClosedResourceError):
            await stream.receive()

    async with anyio.create_task_group() as tg:
        stream, _, _ = await open_pair(accept_only, tg)
        tg.start_soon(receive_until_closed, stream)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(anyio.BusyResourceError):
            await stream.receive()
        await stream.aclose()


@bounded
async def test_websocket_send_eof_is_not_supported() -> None:
    async with anyio.create_task_group() as tg:
        stream, _, _ = await open_pair(accept_only, tg)
    with pytest.raises(
        NotImplementedError, match=r"^a websocket stream cannot send an end-of-file$"
    ):
        await stream.send_eof()
    await stream.aclose()


@bounded
async def test_websocket_failed_handshake_closes_the_inner_stream() -> None:
    client_side, server_side = memory_byte_stream_pair()

    async def script() -> None:
        server = WsServer(server_side)
        await server.read_request()
        await server.send(RejectConnection(status_code=500))

    async with anyio.create_task_group() as tg:
        tg.start_soon(script)
        with pytest.raises(WebSocketHandshakeError, match=r"^was rejected: HTTP 500$"):
            await open_websocket_stream(client_side, host="h", port=80, path="/mqtt")
    assert client_side.closed


@bounded
@pytest.mark.parametrize(
    ("headers", "path", "problem"),
    [
        ({"Bad\nName": "x"}, "/mqtt", "Illegal header name b'Bad\\nName'"),
        ({"X-Name": "caf\u00e9\u2615"}, "/mqtt", ""),
        ({}, "/has space", "Illegal target characters"),
    ],
)
async def test_websocket_invalid_request_is_a_value_error(
    headers: dict[str, str], path: str, problem: str
) -> None:
    client_side, _ = memory_byte_stream_pair()
    with pytest.raises(ValueError) as info:
        await open_websocket_stream(
            client_side, host="h", port=80, path=path, headers=headers
        )
    assert str(info.value).startswith("cannot send the websocket upgrade request: ")
    assert str(info.value).endswith(problem + "; check the websocket headers and path")
    assert client_side.closed
