"""Run a real Eclipse Mosquitto broker on free loopback ports, for tests and demos.

The broker gets a generated configuration in a private directory with these
listeners: plain TCP (anonymous), WebSocket, TLS (certificates from a ``trustme`` CA),
TLS that requires a client certificate signed by the same CA, a TCP listener that
requires a user name and password (a ``mosquitto_passwd`` file), and a unix socket.
Each variant but the plain and password listeners can be switched off or on.
Persistence is on by default, so :meth:`Mosquitto.restart` keeps sessions and queued
messages. A broker made with ``bridge_to=other`` also runs a mosquitto bridge
(a ``connection`` section) to *other*, and :meth:`Mosquitto.start` returns only once
that bridge forwards messages.

``trustme`` (in the ``test`` extra) is imported only when a TLS listener is made, so
importing this module needs nothing beyond trio_mqttconn itself.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self, final

import attrs

if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence
    from types import TracebackType

__all__ = ["Mosquitto", "MosquittoFactory", "MosquittoNotFound", "find_mosquitto"]

_SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


class MosquittoNotFound(RuntimeError):
    """The ``mosquitto`` executable is not installed (the message says how to install it)."""


def find_mosquitto(name: str = "mosquitto") -> str:
    """Return the path of the *name* executable (``mosquitto``, ``mosquitto_passwd``).

    Looks on ``PATH`` and in the sbin directories Debian installs it to.

    Raises:
        MosquittoNotFound: with the command that installs it.
    """
    found = shutil.which(name)
    if found:
        return found
    for directory in _SEARCH_DIRS:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    raise MosquittoNotFound(
        f"{name} is not installed: install Eclipse Mosquitto "
        "(Debian/Ubuntu: sudo apt-get install mosquitto)"
    )


#: Listener ports come from below Linux's ephemeral range (32768-60999): a client
#: socket is never given one of them as its local port, so a broker restarted on its
#: port cannot find it taken by a client that connected to itself (TCP simultaneous
#: open) while the broker was down ("Address already in use").
_PORT_RANGE = (20000, 32767)


#: Ports this process handed out already: never twice, so two listeners of one
#: broker never get the same port (the bind check alone cannot tell: nothing
#: listens between the check and mosquitto's start), and a broker that restarts
#: never finds its port given to another broker meanwhile.
_HANDED_OUT: set[int] = set()


def _free_port() -> int:
    port = _find_port()
    _HANDED_OUT.add(port)
    return port


def _find_port() -> int:
    for _ in range(200):
        port = random.randint(*_PORT_RANGE)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@final
@attrs.define(eq=False)
class Mosquitto:
    """A mosquitto process on loopback, started and stopped by its owner.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with Mosquitto() as broker:
            uri = broker.uri          # "mqtt://127.0.0.1:<port>"
    """

    directory: Path | None = None
    """Where the configuration, certificates and persistence live (a temp dir if None)."""
    username: str = "trio"
    """User name accepted by the password listener."""
    password: str = attrs.field(default="mqtt-secret", repr=False)
    """Password accepted by the password listener."""
    tls: bool = True
    """Whether to run the TLS listener (needs ``trustme``)."""
    client_certificates: bool = False
    """Whether to run a TLS listener that requires a client certificate (needs
    ``trustme``); a certificate for it is written to `client_cert_path`."""
    websockets: bool = True
    """Whether to run the WebSocket listener."""
    persistence: bool = True
    """Whether sessions and queued messages survive `restart`."""
    bridge_to: Mosquitto | None = None
    """Another broker to bridge to: messages on `bridge_topics` flow both ways."""
    bridge_topics: Sequence[str] = ("#",)
    """Topic filters the bridge forwards (in both directions, QoS up to 2)."""
    port: int = attrs.field(init=False, default=0)
    """Plain TCP listener port."""
    ws_port: int = attrs.field(init=False, default=0)
    """WebSocket listener port (0 when ``websockets`` is False)."""
    tls_port: int = attrs.field(init=False, default=0)
    """TLS listener port (0 when ``tls`` is False)."""
    client_cert_port: int = attrs.field(init=False, default=0)
    """Port of the TLS listener that requires a client certificate (0 when
    ``client_certificates`` is False)."""
    auth_port: int = attrs.field(init=False, default=0)
    """Port of the listener that requires ``username``/``password``."""
    unix_path: str = attrs.field(init=False, default="")
    """Path of the unix socket listener."""
    ca_pem: bytes = attrs.field(init=False, default=b"", repr=False)
    """PEM of the CA that signed the TLS listeners' certificate (for ``localhost``
    and ``127.0.0.1``) and the client certificate."""
    client_cert_path: Path | None = attrs.field(init=False, default=None)
    """PEM file with the client certificate and its private key (with
    ``client_certificates``), for `ssl.SSLContext.load_cert_chain`."""
    _process: subprocess.Popen[bytes] | None = attrs.field(init=False, default=None)
    _tmp: tempfile.TemporaryDirectory[str] | None = attrs.field(
        init=False, default=None
    )
    _log: Path | None = attrs.field(init=False, default=None)

    @property
    def host(self) -> str:
        """The loopback address all listeners bind to."""
        return "127.0.0.1"

    @property
    def uri(self) -> str:
        """``mqtt://127.0.0.1:<port>`` of the plain listener."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def tls_uri(self) -> str:
        """``mqtts://localhost:<port>`` of the TLS listener (trust ``ca_pem``)."""
        if not self.tls_port:
            raise RuntimeError("this broker has no TLS listener: make it with tls=True")
        return f"mqtts://localhost:{self.tls_port}"

    def ssl_context(self, *, client_certificate: bool = False) -> ssl.SSLContext:
        """A client `ssl.SSLContext` that trusts this broker's CA.

        Args:
            client_certificate: Also present the client certificate (for the
                ``client_cert_port`` listener).

        Raises:
            RuntimeError: When the broker has no TLS listener or no client
                certificate yet (it makes them in `start`).
        """
        import ssl

        if not self.ca_pem:
            raise RuntimeError(
                "this broker has no TLS listener yet: make it with tls=True and start it"
            )
        context = ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))
        if client_certificate:
            if self.client_cert_path is None:
                raise RuntimeError(
                    "this broker has no client certificate: make it with "
                    "client_certificates=True and start it"
                )
            context.load_cert_chain(self.client_cert_path)
        return context

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return None if self._process is None else self._process.pid

    def _prepare(self) -> Path:
        if self.directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mosq-")
            self.directory = Path(self._tmp.name)
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port, self.auth_port = _free_port(), _free_port()
        self.ws_port = _free_port() if self.websockets else 0
        self.unix_path = str(directory / "mqtt.sock")
        passwd = directory / "passwd"
        passwd.write_text("")
        subprocess.run(
            [
                find_mosquitto("mosquitto_passwd"),
                "-b",
                str(passwd),
                self.username,
                self.password,
            ],
            check=True,
            capture_output=True,
        )
        passwd.chmod(0o600)
        lines = [
            "per_listener_settings true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {directory}/",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "set_tcp_nodelay true",
            "max_queued_messages 100000",
            "",
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "",
            f"listener {self.auth_port} {self.host}",
            "allow_anonymous false",
            f"password_file {passwd}",
            "",
            f"listener 0 {self.unix_path}",
            "allow_anonymous true",
        ]
        if os.geteuid() == 0:
            lines.insert(0, "user root")
        if self.websockets:
            lines += [
                "",
                f"listener {self.ws_port} {self.host}",
                "protocol websockets",
                "allow_anonymous true",
            ]
        if self.tls or self.client_certificates:
            lines += self._tls_listeners(directory)
        if self.bridge_to is not None:
            lines += self._bridge(self.bridge_to)
        (directory / "mosquitto.conf").write_text("\n".join(lines) + "\n")
        return directory

    def _tls_listeners(self, directory: Path) -> list[str]:
        try:
            import trustme  # the test extra; only needed for the TLS listeners
        except ImportError:
            raise RuntimeError(
                "the TLS listeners of Mosquitto need trustme: "
                "pip install 'trio_mqttconn[test]' (or pip install trustme), "
                "or make the broker with tls=False, client_certificates=False"
            ) from None

        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        ca.cert_pem.write_to_path(str(directory / "ca.pem"))
        cert.private_key_pem.write_to_path(str(directory / "server.key"))
        cert.cert_chain_pems[0].write_to_path(str(directory / "server.pem"))
        self.ca_pem = ca.cert_pem.bytes()
        server = [
            "allow_anonymous true",
            f"cafile {directory / 'ca.pem'}",
            f"certfile {directory / 'server.pem'}",
            f"keyfile {directory / 'server.key'}",
        ]
        lines: list[str] = []
        if self.tls:
            self.tls_port = _free_port()
            lines += ["", f"listener {self.tls_port} {self.host}", *server]
        if self.client_certificates:
            client = ca.issue_cert("client@trio-mqttconn.test", common_name="client")
            self.client_cert_path = directory / "client.pem"
            client.private_key_and_cert_chain_pem.write_to_path(
                str(self.client_cert_path)
            )
            self.client_cert_path.chmod(0o600)
            self.client_cert_port = _free_port()
            lines += [
                "",
                f"listener {self.client_cert_port} {self.host}",
                *server,
                "require_certificate true",
            ]
        return lines

    def _bridge(self, remote: Mosquitto) -> list[str]:
        if not remote.port:
            raise RuntimeError(
                "bridge_to must be a broker that was started (its ports are not known yet)"
            )
        name = f"bridge-{self.port}-to-{remote.port}"
        # mosquitto reads every line after "connection" as part of that bridge, so
        # the section comes last. The probe topic is forwarded last: once a probe
        # message crosses, the remote has processed every earlier subscription.
        topics = [f"topic {topic} both 2" for topic in self.bridge_topics]
        return [
            "",
            f"connection {name}",
            f"address {remote.host}:{remote.port}",
            f"remote_clientid {name}",
            "bridge_protocol_version mqttv311",
            "cleansession true",
            "try_private true",
            "notifications false",
            "start_type automatic",
            "restart_timeout 1",
            *topics,
            f"topic {_PROBE_PREFIX}{name} both 0",
        ]

    def start(self, *, timeout: float = 20.0) -> None:
        """Start the broker and return once every TCP listener accepts connections."""
        if self._process is not None:
            raise RuntimeError("mosquitto is already running")
        directory = self.directory if self.port else self._prepare()
        assert directory is not None
        self._log = directory / "mosquitto.log"
        log = self._log.open("ab")
        try:
            self._process = subprocess.Popen(
                [find_mosquitto(), "-c", str(directory / "mosquitto.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        ports = [self.port, self.auth_port]
        ports += [p for p in (self.ws_port, self.tls_port, self.client_cert_port) if p]
        deadline = time.monotonic() + timeout
        for port in ports:
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"mosquitto exited with status {self._process.returncode}:\n"
                        + self.log_text()
                    )
                try:
                    socket.create_connection((self.host, port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(
                            f"mosquitto did not listen on port {port}:\n"
                            + self.log_text()
                        ) from None
                    # Startup poll of a child process (not test synchronisation).
                    time.sleep(0.02)
        if self.bridge_to is not None:
            self._wait_bridged(self.bridge_to, deadline)

    def _wait_bridged(self, remote: Mosquitto, deadline: float) -> None:
        """Return once a message published on *remote* reaches this broker.

        The bridge connects and subscribes some time after the process listens; a
        probe message, published again every 50 ms, shows when it forwards.
        """
        topic = f"{_PROBE_PREFIX}bridge-{self.port}-to-{remote.port}"
        with (
            _RawClient(self.host, self.port, deadline) as receiver,
            _RawClient(remote.host, remote.port, deadline) as sender,
        ):
            receiver.subscribe(topic)
            token = f"probe-{os.getpid()}-{time.monotonic_ns()}".encode()
            while True:
                sender.publish(topic, token)
                if receiver.received(token, wait=0.05):
                    return
                if time.monotonic() > deadline or self._process is None:
                    self.stop()
                    raise RuntimeError(
                        f"the bridge to {remote.host}:{remote.port} did not forward "
                        "messages:\n" + self.log_text()
                    )

    def log_text(self) -> str:
        """The broker's log so far (for failure messages)."""
        if self._log is None or not self._log.exists():
            return ""
        return self._log.read_text(errors="replace")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the broker by its pid (SIGTERM, or SIGKILL when *kill*) and wait for it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                process.kill()
                process.wait()

    def restart(self) -> None:
        """Stop and start again on the same ports, keeping persisted sessions.

        Sessions survive only when the broker was made with ``persistence=True``.
        """
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker and remove its temporary directory."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_PROBE_PREFIX = "trio-mqttconn/bridge-probe/"


def _remaining_length(size: int) -> bytes:
    out = bytearray()
    while True:
        size, digit = divmod(size, 128)
        out.append(digit | (0x80 if size else 0))
        if not size:
            return bytes(out)


def _utf8(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


class _RawClient:
    """A blocking MQTT 3.1.1 client for the bridge probe, independent of the engine.

    Hand-encoded on purpose: the broker fixtures must work even when the library
    under test is broken. It only scans the bytes it reads for a token.
    """

    def __init__(self, host: str, port: int, deadline: float) -> None:
        timeout = max(deadline - time.monotonic(), 0.1)
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._buffer = b""
        client_id = f"probe-{os.getpid()}-{time.monotonic_ns()}"
        body = _utf8("MQTT") + bytes([4, 0x02, 0, 60]) + _utf8(client_id)
        self._send(0x10, body)

    def _send(self, header: int, body: bytes) -> None:
        self._sock.sendall(bytes([header]) + _remaining_length(len(body)) + body)

    def subscribe(self, topic: str) -> None:
        self._send(0x82, b"\x00\x01" + _utf8(topic) + b"\x00")

    def publish(self, topic: str, payload: bytes) -> None:
        self._send(0x30, _utf8(topic) + payload)

    def received(self, token: bytes, *, wait: float) -> bool:
        """Read for up to *wait* seconds; True once *token* was among the bytes read."""
        self._sock.settimeout(wait)
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            return token in self._buffer
        if not data:
            raise ConnectionError("the broker closed the probe connection")
        self._buffer = (self._buffer + data)[-65536:]
        return token in self._buffer

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sock.close()


@final
@attrs.define(eq=False)
class MosquittoFactory:
    """Make private brokers in variants, and stop them all at `close`.

    The ``mosquitto_factory`` fixture is one of these. Use it for a test that stops,
    kills or restarts its broker, or needs a configuration the shared one has not::

        broker = factory(tls=False, persistence=False)
        local, remote = factory.bridged_pair(topics=("sensors/#",))
    """

    directory: Path
    """Each broker gets its own subdirectory of this one."""
    brokers: list[Mosquitto] = attrs.field(init=False, factory=list)
    """Every broker made so far, in order."""

    def __call__(
        self,
        *,
        username: str = "trio",
        password: str = "mqtt-secret",
        tls: bool = True,
        client_certificates: bool = False,
        websockets: bool = True,
        persistence: bool = True,
        bridge_to: Mosquitto | None = None,
        bridge_topics: Sequence[str] = ("#",),
        start: bool = True,
    ) -> Mosquitto:
        """Make a broker (see `Mosquitto` for the options) and start it unless told not.

        Raises:
            MosquittoNotFound: with the command that installs mosquitto.
        """
        broker = Mosquitto(
            directory=self.directory / f"broker{len(self.brokers)}",
            username=username,
            password=password,
            tls=tls,
            client_certificates=client_certificates,
            websockets=websockets,
            persistence=persistence,
            bridge_to=bridge_to,
            bridge_topics=tuple(bridge_topics),
        )
        self.brokers.append(broker)
        if start:
            broker.start()
        return broker

    def bridged_pair(
        self, *, topics: Sequence[str] = ("#",)
    ) -> tuple[Mosquitto, Mosquitto]:
        """Start two brokers, the first bridged to the second, for *topics* both ways.

        Returns:
            ``(local, remote)``: a message published on one of them on a topic that
            matches *topics* reaches subscribers of the other. Both run once this
            returns and the bridge already forwards.
        """
        remote = self(tls=False, websockets=False)
        local = self(
            tls=False, websockets=False, bridge_to=remote, bridge_topics=topics
        )
        return local, remote

    def close(self) -> None:
        """Stop every broker made here, the last made (the bridged ones) first."""
        for broker in reversed(self.brokers):
            broker.close()
        self.brokers.clear()
