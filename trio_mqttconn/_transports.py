"""Broker addresses and the byte streams that reach them.

`parse_uri` turns a broker URI into an `Endpoint`; `connect_stream` turns an
endpoint into a connected `anyio.abc.ByteStream`:

=========  ============  =======================================================
scheme     aliases       stream
=========  ============  =======================================================
mqtt       tcp           TCP (default port 1883)
mqtts      ssl, tls      TLS over TCP (8883)
ws                       WebSocket over TCP (80, path ``/mqtt``)
wss                      WebSocket over TLS (443, path ``/mqtt``)
unix                     Unix domain socket (``unix:///run/mosquitto.sock``)
=========  ============  =======================================================

Every failure to connect leaves `connect_stream` as one `ConnectError` whose
message says what failed and what to check, with the original exception as
``__cause__``. That mapping happens in one place, `_describe_failure`. Neither
function ever puts a password into a message or a repr.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
import ssl
import sys
import typing
from typing import TYPE_CHECKING
from urllib.parse import unquote

import anyio
import anyio.abc
import attrs
from anyio.streams.tls import TLSStream

from ._exceptions import ConfigError, ConnectError
from ._groups import running_on_trio

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from anyio._backends._asyncio import SocketStream as AsyncioSocketStream

__all__ = [
    "Endpoint",
    "WebSocketHandshakeError",
    "connect_stream",
    "direct_socket",
    "direct_transport",
    "parse_uri",
]


class WebSocketHandshakeError(Exception):
    """The server refused the WebSocket upgrade or answered it wrongly.

    ``str(exc)`` completes the sentence "websocket handshake with <url> ..." that
    ``connect_stream`` builds, e.g. ``"was rejected: HTTP 404"``.
    """

    def __init__(self, problem: str, *, status_code: int | None = None) -> None:
        super().__init__(problem)
        self.problem: str = problem
        """What went wrong, as the end of a sentence."""
        self.status_code: int | None = status_code
        """The HTTP status of a refusal, else None."""


# scheme as written (lower case) -> (normalised scheme, default port)
_SCHEMES: typing.Final[Mapping[str, tuple[str, int]]] = {
    "mqtt": ("mqtt", 1883),
    "tcp": ("mqtt", 1883),
    "mqtts": ("mqtts", 8883),
    "ssl": ("mqtts", 8883),
    "tls": ("mqtts", 8883),
    "ws": ("ws", 80),
    "wss": ("wss", 443),
    "unix": ("unix", 0),
}
_NORMALISED: typing.Final = frozenset({"mqtt", "mqtts", "ws", "wss", "unix"})
_DEFAULT_WS_PATH: typing.Final = "/mqtt"
_SCHEME_RE: typing.Final = re.compile(r"[a-z][a-z0-9+.-]*")
#: What a host name cannot hold (``\s`` is ``str.isspace``'s set).
_BAD_HOST_RE: typing.Final = re.compile(r'[\s<>"{}|\\^`%]')
# X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH
_NAME_MISMATCH_CODES: typing.Final = frozenset({62, 64})


def _check_scheme(
    instance: Endpoint, attribute: attrs.Attribute[str], value: str
) -> None:
    if value not in _NORMALISED:
        raise ValueError(
            f"scheme must be one of mqtt, mqtts, ws, wss, unix, not {value!r}"
        )


def _check_port(
    instance: Endpoint, attribute: attrs.Attribute[int], value: int
) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"port must be 0..65535, not {value!r}")


@typing.final
@attrs.frozen(kw_only=True)
class Endpoint:
    """Where a broker listens and how to reach it.

    Usually made by `parse_uri`. The password is left out of ``repr()`` and
    `display`, so an endpoint can be logged.
    """

    scheme: str = attrs.field(validator=_check_scheme)
    """``"mqtt"``, ``"mqtts"``, ``"ws"``, ``"wss"`` or ``"unix"``."""
    host: str
    """Host name or IP address (without brackets); ``""`` for unix sockets."""
    port: int = attrs.field(validator=_check_port)
    """TCP port; 0 for unix sockets."""
    path: str = ""
    """WebSocket request target, or the unix socket's file system path."""
    username: str | None = None
    """User name from the URI, percent-decoded."""
    password: str | None = attrs.field(default=None, repr=False)
    """Password from the URI, percent-decoded; never shown."""

    @property
    def tls(self) -> bool:
        """Whether the connection is encrypted (``mqtts`` or ``wss``)."""
        return self.scheme in ("mqtts", "wss")

    @property
    def websocket(self) -> bool:
        """Whether MQTT runs over WebSocket (``ws`` or ``wss``)."""
        return self.scheme in ("ws", "wss")

    def display(self) -> str:
        """Return the URI without credentials, for messages and logs.

        Returns:
            E.g. ``"mqtt://localhost:1883"``, ``"wss://[::1]:443/mqtt"`` or
            ``"unix:///run/mosquitto.sock"``.
        """
        if self.scheme == "unix":
            return (
                f"unix://{self.path}"
                if self.path.startswith("/")
                else f"unix:{self.path}"
            )
        path = self.path if self.websocket else ""
        return f"{self.scheme}://{_host_port(self.host, self.port)}{path}"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _redact(uri: str) -> str:
    # Hide everything from the first ":" of the user info to the LAST "@": a
    # password holding an unescaped "/", "?", "#" or "@" must not leak either.
    rest = uri.split("://", 1)[1] if "://" in uri else uri
    start = len(uri) - len(rest)
    at = rest.rfind("@")
    colon = rest.find(":", 0, max(at, 0))
    if colon < 0:
        return uri
    return f"{uri[: start + colon]}:***{uri[start + at :]}"


#: Endpoints parsed from URIs without credentials (an Endpoint is frozen): a
#: program that makes a client per connection parses its URI once.
_PARSED: dict[str, Endpoint] = {}
_PARSED_MAX: typing.Final = 64


def parse_uri(uri: str) -> Endpoint:
    """Parse a broker URI.

    Accepted forms: ``mqtt://[user[:password]@]host[:port]`` (``tcp://`` too),
    ``mqtts://`` (``ssl://``, ``tls://``), ``ws://host[:port][/path]``,
    ``wss://...`` and ``unix:///path/to/socket`` (or ``unix:/path``). User name and
    password are percent-decoded; write IPv6 addresses in brackets
    (``mqtt://[::1]:1883``). A WebSocket URI without a path gets ``/mqtt``.

    Args:
        uri: The URI, e.g. ``"mqtts://user:secret@broker.example.org"``.

    Returns:
        The endpoint, with the scheme's default port filled in.

    Raises:
        ConfigError: The URI cannot be used; the message shows it without the
            password and says what is wrong.
    """
    if type(uri) is not str:
        return _parse_uri(uri)
    endpoint = _PARSED.get(uri)
    if endpoint is not None:
        return endpoint
    endpoint = _parse_uri(uri)
    if "@" not in uri:  # no credentials kept beyond the client
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[uri] = endpoint
    return endpoint


def _parse_uri(uri: str) -> Endpoint:
    text = uri.strip()
    if not text:
        raise ConfigError("mqtt uri is empty; write it as mqtt://host:port")

    def fail(problem: str) -> typing.NoReturn:
        raise ConfigError(f"cannot use mqtt uri {_redact(text)!r}: {problem}")

    scheme_text, _, rest = text.partition(":")
    scheme_text = scheme_text.lower()
    if scheme_text not in _SCHEMES:
        if _SCHEME_RE.fullmatch(scheme_text) and rest.startswith("//"):
            fail(
                f"unknown scheme {scheme_text!r}; "
                f"use mqtt, mqtts, ws, wss or unix (or tcp, ssl, tls)"
            )
        fail("no scheme; write it as mqtt://host:port")
    scheme, default_port = _SCHEMES[scheme_text]

    if scheme == "unix":
        # unix:///path (empty authority) or unix:/path
        path = rest[2:] if rest.startswith("//") else rest
        if not path or (rest.startswith("//") and not path.startswith("/")):
            fail("a unix socket uri needs a path, as in unix:///run/mosquitto.sock")
        return Endpoint(scheme="unix", host="", port=0, path=unquote(path))

    if not rest.startswith("//"):
        fail(f"no host; write it as {scheme_text}://host:port")
    rest = rest[2:]
    cut = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    path = path.split("#", 1)[0]
    if "@" in path and scheme not in ("ws", "wss"):
        fail("percent-encode any '/', '?', '#' or '@' in the user name and password")

    username = password = None
    userinfo, at, hostinfo = authority.rpartition("@")
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user)
        password = unquote(secret) if colon else None

    if hostinfo.startswith("["):
        host, bracket, port_text = hostinfo[1:].partition("]")
        if not bracket:
            fail("unclosed '[' in the host; write IPv6 addresses as [::1]")
        if port_text and not port_text.startswith(":"):
            fail("unexpected text after the IPv6 address; write it as [::1]:1883")
        port_text = port_text[1:]
    else:
        if hostinfo.count(":") > 1:
            fail(f"write IPv6 addresses in brackets, as in {scheme_text}://[::1]:1883")
        host, _, port_text = hostinfo.partition(":")
    if not host:
        fail(f"missing host; write it as {scheme_text}://host:port")
    if _BAD_HOST_RE.search(host):
        fail("the host holds characters a host name cannot have")

    port = default_port
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not (
            0 < int(port_text) < 65536
        ):
            fail("bad port; use a number from 1 to 65535")
        port = int(port_text)

    if scheme in ("ws", "wss"):
        path = path or _DEFAULT_WS_PATH
        if path.startswith("?"):
            path = _DEFAULT_WS_PATH + path
    elif path not in ("", "/"):
        fail("only ws, wss and unix uris take a path")
    else:
        path = ""
    return Endpoint(
        scheme=scheme,
        host=host.lower(),
        port=port,
        path=path,
        username=username,
        password=password,
    )


# -- connecting ----------------------------------------------------------------


@attrs.define
class _Progress:
    # How far a connection attempt got, for the error message.
    stage: typing.Literal["connect", "tls", "websocket"] = "connect"


async def connect_stream(
    endpoint: Endpoint,
    *,
    ssl_context: ssl.SSLContext | None = None,
    tls_insecure: bool = False,
    websocket_headers: Mapping[str, str] | None = None,
    websocket_path: str | None = None,
    local_address: tuple[str, int] | None = None,
    socket_options: Sequence[tuple[int, int, int | bytes]] = (),
) -> anyio.abc.ByteStream:
    """Open a byte stream to the broker at ``endpoint``.

    TCP connections have ``TCP_NODELAY`` on (MQTT packets are small and latency
    matters). TLS (``mqtts``, ``wss``) verifies the broker's certificate and host
    name with `ssl.create_default_context` unless ``ssl_context`` is given. The
    stream does not require a TLS close_notify from the broker: MQTT ends its
    sessions itself, and many brokers just drop the connection.

    There is no timeout inside; bound the call from outside
    (``with anyio.fail_after(10): ...``). If cancelled, nothing stays open.

    Args:
        endpoint: Where to connect.
        ssl_context: TLS settings (trusted CAs, client certificate, ALPN ...).
        tls_insecure: Skip the check that the certificate names the host. The
            certificate chain is still verified. Sets ``check_hostname = False``
            on ``ssl_context`` when one is given.
        websocket_headers: Extra HTTP headers for the WebSocket upgrade request.
        websocket_path: The WebSocket request target, instead of ``endpoint.path``.
        local_address: ``(host, port)`` to bind the TCP socket to; port 0 lets the
            system choose one.
        socket_options: ``(level, option, value)`` triples applied with
            `socket.socket.setsockopt` to the connected socket.

    Returns:
        The connected stream; for WebSocket endpoints the handshake is done.

    Raises:
        ConnectError: The broker could not be reached; the message says why and
            what to check.
        ValueError: ``local_address`` has a port but no host.
        OSError: A socket option was rejected by the system.
    """
    if local_address is not None and local_address[1] and not local_address[0]:
        raise ValueError(
            f"local_address {local_address!r} binds a port but no host; "
            f"use ('0.0.0.0', port) or ('::', port)"
        )
    progress = _Progress()
    try:
        return await _connect(
            endpoint,
            progress,
            ssl_context=ssl_context,
            tls_insecure=tls_insecure,
            websocket_headers=websocket_headers,
            websocket_path=websocket_path,
            local_address=local_address,
            socket_options=socket_options,
        )
    except (
        OSError,
        anyio.BrokenResourceError,
        anyio.EndOfStream,
        WebSocketHandshakeError,
    ) as exc:
        # The one place where transport failures become ConnectError.
        message = _describe_failure(endpoint, websocket_path, progress, exc)
        raise ConnectError(message) from exc


async def _connect(
    endpoint: Endpoint,
    progress: _Progress,
    *,
    ssl_context: ssl.SSLContext | None,
    tls_insecure: bool,
    websocket_headers: Mapping[str, str] | None,
    websocket_path: str | None,
    local_address: tuple[str, int] | None,
    socket_options: Sequence[tuple[int, int, int | bytes]],
) -> anyio.abc.ByteStream:
    sock_stream: anyio.abc.SocketStream
    sock: socket.socket | None = None
    if endpoint.scheme == "unix":
        sock_stream = await anyio.connect_unix(endpoint.path)
    elif local_address is None and (literal := _ip_literal(endpoint.host)):
        sock = await _connect_literal(literal, endpoint.port)
        try:
            sock_stream = await anyio.abc.SocketStream.from_socket(sock)
        except BaseException:
            sock.close()
            raise
    else:
        local_host, local_port = local_address or ("", 0)
        sock_stream = await anyio.connect_tcp(
            endpoint.host,
            endpoint.port,
            local_host=local_host or None,
            local_port=local_port or None,
        )
    try:
        if sock is None:
            sock = sock_stream.extra(anyio.abc.SocketAttribute.raw_socket)
        if endpoint.scheme != "unix":
            # MQTT packets are small and each one waits for an answer: do not let
            # Nagle's algorithm hold them back.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for level, option, value in socket_options:
            try:
                sock.setsockopt(level, option, value)
            except OSError as exc:
                raise ValueError(
                    f"socket option (level {level}, option {option}, value {value!r})"
                    f" was rejected: {exc.strerror}; check socket_options"
                ) from exc
        stream: anyio.abc.ByteStream = sock_stream
        if endpoint.tls:
            progress.stage = "tls"
            context = ssl_context or ssl.create_default_context()
            if tls_insecure:
                context.check_hostname = False
            stream = await TLSStream.wrap(
                sock_stream,
                hostname=endpoint.host,
                ssl_context=context,
                # A broker that drops the connection without a TLS close_notify
                # ends the stream (EndOfStream) rather than breaking it.
                standard_compatible=False,
            )
        if endpoint.websocket:
            # wsproto and h11 are loaded by the first WebSocket connection only.
            from ._websocket import open_websocket_stream

            progress.stage = "websocket"
            stream = await open_websocket_stream(
                stream,
                host=endpoint.host,
                port=endpoint.port,
                path=websocket_path or endpoint.path,
                headers=websocket_headers,
            )
    except BaseException:
        await anyio.aclose_forcefully(sock_stream)
        raise
    return stream


def direct_socket(stream: anyio.abc.ByteStream) -> socket.socket | None:
    """The socket under *stream* when the engine may write to it directly.

    Only a plain TCP or unix stream on trio qualifies: trio keeps no write buffer of
    its own, so a non-blocking ``send()`` made while no other task writes on the
    stream is exactly what ``stream.send()`` would do, minus two layers of wrappers.
    (asyncio's transports buffer; TLS and WebSocket frame the bytes.)
    """
    if not isinstance(stream, anyio.abc.SocketStream) or not running_on_trio():
        return None
    # anyio's own accessor: extra(raw_socket) builds every socket attribute
    # first, with a getpeername() system call.
    sock = getattr(stream, "_raw_socket", None)
    if not isinstance(sock, socket.socket):  # pragma: no cover - another anyio
        found: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        return found
    return sock


def direct_transport(stream: anyio.abc.ByteStream) -> AsyncioSocketStream | None:
    """*stream* itself when the engine may write to its asyncio transport directly.

    Only anyio's plain TCP stream on asyncio qualifies (not trio's, not TLS, not
    WebSocket, not unix). Its ``send()`` checks the stream, calls
    ``transport.write()`` (which hands the bytes to the socket at once when nothing
    is buffered) and, as anyio sets the transport's high-water mark to 0, waits only
    when some were left in the transport's buffer; otherwise it ends with a
    cancel-shielded checkpoint that costs more than the rest together (a cancel
    scope). The engine does the same itself (see ``Link._write``), with a cheaper
    schedule point that anyio's cancellation does not interrupt either. Returns None
    when anyio's stream lacks what that needs (another anyio version).
    """
    backend = sys.modules.get("anyio._backends._asyncio")
    if backend is None or type(stream) is not backend.SocketStream:
        return None
    transport = getattr(stream, "_transport", None)
    protocol = getattr(stream, "_protocol", None)
    if (
        not hasattr(transport, "write")
        or not hasattr(transport, "is_closing")
        or not hasattr(protocol, "write_event")
        or not hasattr(protocol, "exception")
        or not hasattr(stream, "_closed")
    ):
        return None  # pragma: no cover - another anyio version
    return typing.cast("AsyncioSocketStream", stream)


@functools.lru_cache(maxsize=64)
def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Cached: ipaddress parses in Python, on every connection attempt.
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _connect_literal(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> socket.socket:
    # An IP address needs no name resolution and no happy eyeballs: a plain
    # non-blocking connect is several times cheaper than anyio.connect_tcp.
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        try:
            sock.connect((str(address), port))
        except BlockingIOError:
            await anyio.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error)) from None
        return sock
    except BaseException:
        sock.close()
        raise


def _pick_error(exc: OSError) -> OSError:
    # anyio.connect_tcp raises OSError("All connection attempts failed") from the
    # failure of the one address tried, or from a group when it tried several.
    cause = exc.__cause__
    if isinstance(cause, OSError):
        return cause
    if isinstance(cause, BaseExceptionGroup):
        errors = [e for e in cause.exceptions if isinstance(e, OSError)]
        # A refusal is the most telling answer: the host is there, the broker not.
        refusals = [e for e in errors if isinstance(e, ConnectionRefusedError)]
        if errors:
            return (refusals or errors)[0]
    return exc


def _is_tls_eof(error: BaseException) -> bool:
    """Whether a TLS handshake error means the peer closed the connection.

    Depending on the Python patch level and the OpenSSL 3.x release, a peer that
    closes during the handshake surfaces as ``anyio.EndOfStream``, ``SSLEOFError``
    ("EOF occurred in violation of protocol"), ``SSLZeroReturnError``, an
    ``SSLError`` whose reason is ``UNEXPECTED_EOF_WHILE_READING``, or a reset.
    """
    if isinstance(
        error, ssl.SSLEOFError | ssl.SSLZeroReturnError | ConnectionResetError
    ):
        return True
    return isinstance(error, ssl.SSLError) and getattr(error, "reason", None) in {
        "UNEXPECTED_EOF_WHILE_READING",
        "EOF_OCCURRED_IN_VIOLATION_OF_PROTOCOL",
    }


def _describe_failure(
    endpoint: Endpoint,
    websocket_path: str | None,
    progress: _Progress,
    exc: OSError
    | anyio.BrokenResourceError
    | anyio.EndOfStream
    | WebSocketHandshakeError,
) -> str:
    if endpoint.scheme == "unix":
        where = f"unix socket {endpoint.path!r}"
    else:
        where = _host_port(endpoint.host, endpoint.port)
    if isinstance(exc, WebSocketHandshakeError):
        if websocket_path:
            endpoint = attrs.evolve(endpoint, path=websocket_path)
        return f"websocket handshake with {endpoint.display()} {exc.problem}"
    if not isinstance(exc, OSError) or (
        progress.stage == "tls" and _is_tls_eof(_pick_error(exc))
    ):
        # EOF or a reset while a handshake waited for the server's answer
        if progress.stage == "tls":
            return (
                f"{where} closed the connection during the TLS handshake; "
                f"is it a TLS port?"
            )
        return (
            f"{where} closed the connection during the websocket handshake; "
            f"is it a websocket port?"
        )
    error = _pick_error(exc)
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = str(getattr(error, "verify_message", None) or error).rstrip(".")
        if getattr(error, "verify_code", None) in _NAME_MISMATCH_CODES:
            hint = (
                "connect by a name the certificate lists, "
                "or set tls_insecure to skip the host-name check"
            )
        else:
            hint = "give an ssl_context that trusts the broker's certificate authority"
        return f"TLS certificate verification failed for {where}: {reason}; {hint}"
    if isinstance(error, ssl.SSLError):
        # OpenSSL's short name, e.g. WRONG_VERSION_NUMBER -> "wrong version number"
        short_name: str | None = getattr(error, "reason", None)
        if short_name:
            reason = short_name.lower().replace("_", " ")
        else:
            reason = error.strerror or str(error)
        return (
            f"TLS handshake with {where} failed: {reason}; "
            f"is it a TLS port, and do the TLS settings match the broker's?"
        )
    if isinstance(error, socket.gaierror):
        return f"cannot resolve host {endpoint.host!r}; check the host name and the DNS"
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused by {where}; is the broker running?"
    if isinstance(error, FileNotFoundError):
        return f"{where} does not exist; is the broker running?"
    if isinstance(error, PermissionError):
        return f"no permission to connect to {where}; check the permissions"
    if isinstance(error, TimeoutError):
        return (
            f"connecting to {where} timed out; "
            f"check the host, the port and any firewall in between"
        )
    return f"cannot connect to {where}: {error.strerror or error}"
