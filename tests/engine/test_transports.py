"""Tests for broker URIs and the TCP, TLS and unix transports.

Servers are anyio listeners on 127.0.0.1 (or a unix socket in tmp_path) run in the
test's task group; every test is bounded by `anyio.fail_after`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.abc
import pytest
import trustme
from anyio.abc import SocketAttribute, TaskStatus
from anyio.streams.tls import TLSStream

from tests.engine._servers import bounded, connect_error
from trio_mqttconn._exceptions import ConfigError, ConnectError
from trio_mqttconn._transports import (
    Endpoint,
    _describe_failure,
    _Progress,
    connect_stream,
    parse_uri,
)

if typing.TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

T = TypeVar("T")
Handler = Callable[[anyio.abc.SocketStream], Awaitable[None]]


async def serve_once(
    handler: Handler, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Accept one TCP connection on 127.0.0.1 and run ``handler`` on it."""
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with multi:
        task_status.started(multi.extra(SocketAttribute.local_port))
        listener = typing.cast("anyio.abc.SocketListener", multi.listeners[0])
        stream = await listener.accept()
    async with stream:
        await handler(stream)


async def echo(stream: anyio.abc.ByteStream) -> None:
    data = await stream.receive()
    await stream.send(data.upper())


async def drain(stream: anyio.abc.ByteStream) -> None:
    """Read until the client goes away."""
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        while True:
            await stream.receive()


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- parse_uri -------------------------------------------------------------------


def ep(
    scheme: str,
    host: str,
    port: int,
    path: str = "",
    username: str | None = None,
    password: str | None = None,
) -> Endpoint:
    return Endpoint(
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        username=username,
        password=password,
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mqtt://localhost", ep("mqtt", "localhost", 1883)),
        ("tcp://Broker.Example.ORG:1884", ep("mqtt", "broker.example.org", 1884)),
        ("MQTT://h/", ep("mqtt", "h", 1883)),
        ("  mqtt://h:1  ", ep("mqtt", "h", 1)),
        ("mqtts://h", ep("mqtts", "h", 8883)),
        ("ssl://h:65535", ep("mqtts", "h", 65535)),
        ("tls://h", ep("mqtts", "h", 8883)),
        ("ws://h", ep("ws", "h", 80, "/mqtt")),
        ("wss://h", ep("wss", "h", 443, "/mqtt")),
        ("ws://h:8080/", ep("ws", "h", 8080, "/")),
        (
            "wss://h/ws/mqtt?token=a%20b#frag",
            ep("wss", "h", 443, "/ws/mqtt?token=a%20b"),
        ),
        ("ws://h?token=x", ep("ws", "h", 80, "/mqtt?token=x")),
        ("mqtt://[::1]", ep("mqtt", "::1", 1883)),
        ("wss://[2001:DB8::1]:8443", ep("wss", "2001:db8::1", 8443, "/mqtt")),
        ("mqtt://127.0.0.1:1883", ep("mqtt", "127.0.0.1", 1883)),
        ("unix:///run/mosquitto.sock", ep("unix", "", 0, "/run/mosquitto.sock")),
        ("unix:/tmp/a%20b.sock", ep("unix", "", 0, "/tmp/a b.sock")),
        ("unix:relative.sock", ep("unix", "", 0, "relative.sock")),
        ("mqtt://user@h", ep("mqtt", "h", 1883, username="user")),
        ("mqtt://user:@h", ep("mqtt", "h", 1883, username="user", password="")),
        ("mqtt://:pw@h", ep("mqtt", "h", 1883, username="", password="pw")),
        (
            "mqtts://us%40er:p%3Aa%2Fs%40s@h:1",
            ep("mqtts", "h", 1, username="us@er", password="p:a/s@s"),
        ),
        (
            "ws://u:p@[::1]:9001/mqtt",
            ep("ws", "::1", 9001, "/mqtt", username="u", password="p"),
        ),
    ],
)
def test_parse_uri_accepts(uri: str, expected: Endpoint) -> None:
    assert parse_uri(uri) == expected


UNKNOWN = r"use mqtt, mqtts, ws, wss or unix \(or tcp, ssl, tls\)"
NEEDS_PATH = r"a unix socket uri needs a path, as in unix:///run/mosquitto.sock"
BAD_PORT = r"bad port; use a number from 1 to 65535"
ENCODE = "percent-encode any '/', '?', '#' or '@' in the user name and password"


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("x://u:secret@h", rf"unknown scheme 'x'; {UNKNOWN}"),
        ("http://h", rf"unknown scheme 'http'; {UNKNOWN}"),
        ("localhost:1883", r"no scheme; write it as mqtt://host:port"),
        ("localhost", r"no scheme; write it as mqtt://host:port"),
        ("mqtt:h", r"no host; write it as mqtt://host:port"),
        ("mqtt://", r"missing host; write it as mqtt://host:port"),
        ("tcp://:1883", r"missing host; write it as tcp://host:port"),
        ("mqtt://u:secret@:1883", r"missing host; write it as mqtt://host:port"),
        ("mqtt://[]:1883", r"missing host; write it as mqtt://host:port"),
        ("mqtt://h:abc", BAD_PORT),
        ("mqtt://h:0", BAD_PORT),
        ("mqtt://h:65536", BAD_PORT),
        ("mqtt://h:-1", BAD_PORT),
        ("mqtt://h:\u0661\u0662", BAD_PORT),
        ("mqtt://[::1", r"unclosed '\[' in the host; write IPv6 addresses as \[::1\]"),
        (
            "mqtt://[::1]1883",
            r"unexpected text after the IPv6 address; write it as \[::1\]:1883",
        ),
        ("mqtt://::1", r"write IPv6 addresses in brackets, as in mqtt://\[::1\]:1883"),
        ("mqtt://h%20x", r"the host holds characters a host name cannot have"),
        ("mqtt://h/mqtt", r"only ws, wss and unix uris take a path"),
        ("mqtt://h?x=1", r"only ws, wss and unix uris take a path"),
        ("unix://", NEEDS_PATH),
        ("unix:", NEEDS_PATH),
        ("unix://host/x.sock", NEEDS_PATH),
    ],
)
def test_parse_uri_rejects(uri: str, problem: str) -> None:
    shown = re.escape(uri.replace("secret", "***"))
    with pytest.raises(
        ConfigError, match=rf"^cannot use mqtt uri '{shown}': {problem}$"
    ):
        parse_uri(uri)


def test_parse_uri_rejects_empty() -> None:
    with pytest.raises(
        ConfigError, match=r"^mqtt uri is empty; write it as mqtt://host:port$"
    ):
        parse_uri("  ")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        # an unescaped "/", "?" or "@" in the password: all the user info is hidden
        ("mqtt://u:sec/ret@h", f"cannot use mqtt uri 'mqtt://u:***@h': {ENCODE}"),
        ("mqtt://u:se?cret@h", f"cannot use mqtt uri 'mqtt://u:***@h': {ENCODE}"),
        (
            "ws://u:sec/ret@h",
            f"cannot use mqtt uri 'ws://u:***@h': {BAD_PORT}",
        ),
        (
            "u:secret@h",
            "cannot use mqtt uri 'u:***@h': no scheme; write it as mqtt://host:port",
        ),
        (
            "x://u:se@cret@h",
            "cannot use mqtt uri 'x://u:***@h': unknown scheme 'x'; "
            "use mqtt, mqtts, ws, wss or unix (or tcp, ssl, tls)",
        ),
    ],
)
def test_parse_uri_never_shows_the_password(uri: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_uri(uri)
    assert str(info.value) == message
    assert "cret" not in str(info.value)
    assert info.value.code == "CONFIG_ERROR"


def test_endpoint_repr_and_display_hide_the_password() -> None:
    endpoint = parse_uri("mqtts://alice:s3cr%21t@broker:8883")
    assert endpoint.password == "s3cr!t"
    assert repr(endpoint) == (
        "Endpoint(scheme='mqtts', host='broker', port=8883, path='', username='alice')"
    )
    assert str(endpoint) == repr(endpoint)
    assert endpoint.display() == "mqtts://broker:8883"
    assert "s3cr" not in repr(endpoint) + endpoint.display()


@pytest.mark.parametrize(
    ("uri", "display", "tls", "websocket"),
    [
        ("mqtt://h", "mqtt://h:1883", False, False),
        ("mqtts://[::1]", "mqtts://[::1]:8883", True, False),
        ("ws://h:9001/x", "ws://h:9001/x", False, True),
        ("wss://u:p@h", "wss://h:443/mqtt", True, True),
        ("unix:///run/m.sock", "unix:///run/m.sock", False, False),
        ("unix:m.sock", "unix:m.sock", False, False),
    ],
)
def test_endpoint_properties(
    uri: str, display: str, tls: bool, websocket: bool
) -> None:
    endpoint = parse_uri(uri)
    assert (endpoint.display(), endpoint.tls, endpoint.websocket) == (
        display,
        tls,
        websocket,
    )


def test_endpoint_validates_scheme_and_port() -> None:
    with pytest.raises(
        ValueError,
        match=r"^scheme must be one of mqtt, mqtts, ws, wss, unix, not 'tcp'$",
    ):
        Endpoint(scheme="tcp", host="h", port=1883)
    with pytest.raises(ValueError, match=r"^port must be 0\.\.65535, not 70000$"):
        Endpoint(scheme="mqtt", host="h", port=70000)


# -- TCP -------------------------------------------------------------------------


@bounded
async def test_connect_stream_tcp_exchanges_bytes_with_nodelay() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_once, echo)
        stream = await connect_stream(parse_uri(f"mqtt://127.0.0.1:{port}"))
        async with stream:
            sock = stream.extra(SocketAttribute.raw_socket)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            await stream.send(b"hello")
            assert await stream.receive() == b"HELLO"


@bounded
async def test_connect_stream_tcp_ignores_ssl_context_for_plain_mqtt() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_once, echo)
        stream = await connect_stream(
            parse_uri(f"tcp://localhost:{port}"),
            ssl_context=ssl.create_default_context(),
        )
        async with stream:
            assert not isinstance(stream, TLSStream)
            await stream.send(b"x")
            assert await stream.receive() == b"X"


@bounded
async def test_connect_stream_applies_socket_options() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_once, echo)
        stream = await connect_stream(
            parse_uri(f"mqtt://127.0.0.1:{port}"),
            socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
        )
        async with stream:
            sock = stream.extra(SocketAttribute.raw_socket)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
            # a round trip: the server has accepted before the test ends
            await stream.send(b"x")
            assert await stream.receive() == b"X"


@bounded
async def test_connect_stream_rejected_socket_option_is_a_value_error() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_once, drain)
        with pytest.raises(ValueError) as info:
            await connect_stream(
                parse_uri(f"mqtt://127.0.0.1:{port}"),
                socket_options=[(socket.SOL_SOCKET, 9999, 1)],
            )
        assert str(info.value) == (
            f"socket option (level {socket.SOL_SOCKET}, option 9999, value 1) was "
            f"rejected: {os.strerror(errno.ENOPROTOOPT)}; "
            f"check socket_options"
        )
        tg.cancel_scope.cancel()


@bounded
async def test_connect_stream_binds_local_address() -> None:
    local_port = free_port()
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_once, drain)
        stream = await connect_stream(
            parse_uri(f"mqtt://127.0.0.1:{port}"),
            local_address=("127.0.0.1", local_port),
        )
        async with stream:
            assert stream.extra(SocketAttribute.local_port) == local_port
            tg.cancel_scope.cancel()


@bounded
async def test_connect_stream_binds_local_host_only() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_once, drain)
        stream = await connect_stream(
            parse_uri(f"mqtt://127.0.0.1:{port}"), local_address=("127.0.0.1", 0)
        )
        async with stream:
            assert stream.extra(SocketAttribute.local_address)[0] == "127.0.0.1"
            tg.cancel_scope.cancel()


async def test_connect_stream_local_port_needs_a_host() -> None:
    with pytest.raises(
        ValueError,
        match=r"^local_address \('', 5000\) binds a port but no host; "
        r"use \('0\.0\.0\.0', port\) or \('::', port\)$",
    ):
        await connect_stream(parse_uri("mqtt://127.0.0.1"), local_address=("", 5000))


@bounded
async def test_connect_stream_refused_port() -> None:
    port = free_port()
    with pytest.raises(ConnectError) as info:
        await connect_stream(parse_uri(f"mqtt://127.0.0.1:{port}"))
    assert str(info.value) == (
        f"connection refused by 127.0.0.1:{port}; is the broker running?"
    )
    assert info.value.code == "CONNECT_FAILED"
    assert info.value.reason_code is None
    assert isinstance(info.value.__cause__, OSError)


@bounded
async def test_connect_stream_refused_by_name() -> None:
    port = free_port()
    with pytest.raises(
        ConnectError,
        match=rf"^connection refused by localhost:{port}; is the broker running\?$",
    ):
        await connect_stream(parse_uri(f"mqtt://user:hunter2@localhost:{port}"))


@bounded
async def test_connect_stream_unknown_host() -> None:
    with pytest.raises(ConnectError) as info:
        await connect_stream(parse_uri("mqtt://nosuch.invalid"))
    assert str(info.value) == (
        "cannot resolve host 'nosuch.invalid'; check the host name and the DNS"
    )
    assert isinstance(info.value.__cause__, socket.gaierror)


# -- TLS -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_server(cert: trustme.LeafCert) -> tuple[Handler, list[BaseException]]:
    """An echo server behind TLS; handshake failures are collected, not raised."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    failures: list[BaseException] = []

    async def handler(stream: anyio.abc.SocketStream) -> None:
        try:
            tls = await TLSStream.wrap(
                stream, server_side=True, ssl_context=context, standard_compatible=False
            )
        except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            failures.append(exc)
            return
        await echo(tls)

    return handler, failures


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@bounded
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_connect_stream_tls_succeeds_with_trusted_ca(
    ca: trustme.CA, host: str
) -> None:
    handler, _ = tls_server(ca.issue_cert("localhost", "127.0.0.1"))
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_once, handler)
        stream = await connect_stream(
            parse_uri(f"mqtts://{host}:{port}"), ssl_context=client_context(ca)
        )
        async with stream:
            assert isinstance(stream, TLSStream)
            sock = stream.extra(SocketAttribute.raw_socket)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            await stream.send(b"secure")
            assert await stream.receive() == b"SECURE"


@bounded
async def test_connect_stream_tls_rejects_an_untrusted_ca(ca: trustme.CA) -> None:
    # No ssl_context: the default context trusts only the system's CAs.
    handler, failures = tls_server(ca.issue_cert("localhost"))
    port, info = await connect_error(serve_once, handler, "mqtts://localhost:{port}")
    assert str(info.value) == (
        f"TLS certificate verification failed for localhost:{port}: unable to get "
        f"local issuer certificate; give an ssl_context that trusts the broker's "
        f"certificate authority"
    )
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    assert len(failures) == 1


@bounded
async def test_connect_stream_tls_insecure_still_verifies_the_ca(
    ca: trustme.CA,
) -> None:
    other_ca = trustme.CA()
    handler, _ = tls_server(ca.issue_cert("localhost"))
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_once, handler)
        with pytest.raises(
            ConnectError,
            match=r"^TLS certificate verification failed for localhost:\d+: ",
        ):
            await connect_stream(
                parse_uri(f"ssl://localhost:{port}"),
                ssl_context=client_context(other_ca),
                tls_insecure=True,
            )


@bounded
@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("localhost", "Hostname mismatch, certificate is not valid for 'localhost'"),
        ("127.0.0.1", "IP address mismatch, certificate is not valid for '127.0.0.1'"),
    ],
)
async def test_connect_stream_tls_rejects_a_wrong_host_name(
    ca: trustme.CA, host: str, reason: str
) -> None:
    handler, _ = tls_server(ca.issue_cert("example.org"))
    port, info = await connect_error(
        serve_once,
        handler,
        f"mqtts://{host}:{{port}}",
        ssl_context=client_context(ca),
    )
    assert str(info.value) == (
        f"TLS certificate verification failed for {host}:{port}: {reason}; connect "
        f"by a name the certificate lists, or set tls_insecure to skip the host-name "
        f"check"
    )


@bounded
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_connect_stream_tls_insecure_accepts_a_wrong_host_name(
    ca: trustme.CA, host: str
) -> None:
    handler, _ = tls_server(ca.issue_cert("example.org"))
    context = client_context(ca)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_once, handler)
        stream = await connect_stream(
            parse_uri(f"mqtts://{host}:{port}"), ssl_context=context, tls_insecure=True
        )
        async with stream:
            await stream.send(b"anyway")
            assert await stream.receive() == b"ANYWAY"
    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_REQUIRED


@bounded
async def test_connect_stream_tls_insecure_with_default_context(ca: trustme.CA) -> None:
    # The default context does not trust the test CA, so the handshake still
    # fails, but on the chain: tls_insecure never turns verification off.
    handler, _ = tls_server(ca.issue_cert("example.org"))
    _, info = await connect_error(
        serve_once, handler, "mqtts://localhost:{port}", tls_insecure=True
    )
    assert "unable to get local issuer certificate" in str(info.value)


@bounded
async def test_connect_stream_tls_to_a_plain_port_that_closes() -> None:
    async def close_at_once(stream: anyio.abc.SocketStream) -> None:
        await stream.receive()

    port, info = await connect_error(
        serve_once, close_at_once, "mqtts://127.0.0.1:{port}"
    )
    assert str(info.value) == (
        f"127.0.0.1:{port} closed the connection during the TLS handshake; "
        f"is it a TLS port?"
    )


@bounded
async def test_connect_stream_tls_to_a_plain_port_that_answers() -> None:
    async def answer_http(stream: anyio.abc.SocketStream) -> None:
        await stream.receive()
        await stream.send(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            await stream.receive()

    port, info = await connect_error(
        serve_once, answer_http, "mqtts://127.0.0.1:{port}"
    )
    assert str(info.value) == (
        f"TLS handshake with 127.0.0.1:{port} failed: wrong version number; is it a "
        f"TLS port, and do the TLS settings match the broker's?"
    )


@bounded
async def test_connect_stream_closes_the_socket_when_cancelled() -> None:
    accepted = anyio.Event()
    closed = anyio.Event()

    async def stall(stream: anyio.abc.SocketStream) -> None:
        accepted.set()
        await drain(stream)
        closed.set()

    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_once, stall)
        with anyio.CancelScope() as scope:
            tg.start_soon(_cancel_after, accepted, scope)
            await connect_stream(parse_uri(f"mqtts://127.0.0.1:{port}"))
        assert scope.cancelled_caught
        await closed.wait()


async def _cancel_after(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


# -- unix ------------------------------------------------------------------------


@bounded
async def test_connect_stream_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "broker.sock"
    listener = await anyio.create_unix_listener(path)
    async with listener, anyio.create_task_group() as tg:

        async def accept_one() -> None:
            async with await listener.accept() as server:
                await echo(server)

        tg.start_soon(accept_one)
        stream = await connect_stream(parse_uri(f"unix://{path}"))
        async with stream:
            assert stream.extra(SocketAttribute.family) == socket.AF_UNIX
            await stream.send(b"local")
            assert await stream.receive() == b"LOCAL"


@bounded
async def test_connect_stream_unix_socket_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope.sock"
    with pytest.raises(ConnectError) as info:
        await connect_stream(parse_uri(f"unix:{path}"))
    assert str(info.value) == (
        f"unix socket '{path}' does not exist; is the broker running?"
    )
    assert isinstance(info.value.__cause__, FileNotFoundError)


@bounded
async def test_connect_stream_unix_socket_refused(tmp_path: Path) -> None:
    path = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # the file stays; nobody listens
    with pytest.raises(
        ConnectError,
        match=rf"^connection refused by unix socket '{path}'; is the broker running\?$",
    ):
        await connect_stream(parse_uri(f"unix://{path}"))


# -- messages for failures that are hard to cause on purpose -----------------------


def describe(exc: Any, uri: str = "mqtt://h:1883") -> str:
    return _describe_failure(parse_uri(uri), None, _Progress(), exc)


def aggregate(*errors: Exception) -> OSError:
    # the shape anyio.connect_tcp raises when every address failed
    try:
        raise OSError("All connection attempts failed") from ExceptionGroup(
            "multiple connection attempts failed", list(errors)
        )
    except OSError as exc:
        return exc


def test_describe_failure_prefers_a_refusal_among_several_addresses() -> None:
    exc = aggregate(
        OSError(errno.ENETUNREACH, "Network is unreachable"),
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    )
    assert describe(exc) == "connection refused by h:1883; is the broker running?"


def test_describe_failure_takes_the_first_of_several_other_errors() -> None:
    exc = aggregate(
        OSError(errno.ENETUNREACH, "Network is unreachable"),
        TimeoutError(errno.ETIMEDOUT, "Connection timed out"),
    )
    assert describe(exc, "mqtt://[::1]") == (
        "cannot connect to [::1]:1883: Network is unreachable"
    )


def test_describe_failure_group_without_os_errors_keeps_the_outer_error() -> None:
    assert describe(aggregate(ValueError("odd"))) == (
        "cannot connect to h:1883: All connection attempts failed"
    )


def test_describe_failure_timeout() -> None:
    assert describe(TimeoutError(errno.ETIMEDOUT, "Connection timed out")) == (
        "connecting to h:1883 timed out; check the host, the port and any firewall "
        "in between"
    )


def test_describe_failure_permission() -> None:
    assert describe(PermissionError(errno.EACCES, "Permission denied"), "unix:/s") == (
        "no permission to connect to unix socket '/s'; check the permissions"
    )


def test_describe_failure_other_os_error() -> None:
    assert describe(OSError(errno.EHOSTUNREACH, "No route to host")) == (
        "cannot connect to h:1883: No route to host"
    )


def test_describe_failure_ssl_error_without_reason() -> None:
    assert describe(ssl.SSLError(1, "odd")) == (
        "TLS handshake with h:1883 failed: odd; is it a TLS port, and do the TLS "
        "settings match the broker's?"
    )


def _ssl_error(cls: type[ssl.SSLError], reason: str | None, text: str) -> ssl.SSLError:
    error = cls(8, text)
    error.reason = reason  # type: ignore[assignment]  # OpenSSL sets it, or None
    return error


@pytest.mark.parametrize(
    "error",
    [
        # Python 3.11.2 / OpenSSL 3.0 (Debian 12): the handshake sees an EOF
        _ssl_error(ssl.SSLEOFError, "EOF_OCCURRED_IN_VIOLATION_OF_PROTOCOL", "EOF"),
        _ssl_error(ssl.SSLEOFError, None, "EOF occurred in violation of protocol"),
        _ssl_error(ssl.SSLZeroReturnError, None, "TLS/SSL connection has been closed"),
        _ssl_error(ssl.SSLError, "UNEXPECTED_EOF_WHILE_READING", "unexpected eof"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    ],
    ids=["eof-reason", "eof", "zero-return", "unexpected-eof", "reset"],
)
def test_describe_failure_eof_during_tls_handshake_on_any_python(
    error: OSError,
) -> None:
    # whatever shape this Python and OpenSSL give a peer's close, the message says so
    message = _describe_failure(
        parse_uri("mqtts://h:8883"), None, _Progress(stage="tls"), error
    )
    assert message == (
        "h:8883 closed the connection during the TLS handshake; is it a TLS port?"
    )
