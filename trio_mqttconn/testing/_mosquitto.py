"""Run a real Eclipse Mosquitto broker on free loopback ports, for tests and demos.

The broker gets a generated configuration in a private directory with five listeners:
plain TCP (anonymous), WebSocket, TLS (certificates from ``trustme`` when it is
installed), a TCP listener that requires a user name and password, and a unix socket.
Persistence is on, so :meth:`Mosquitto.restart` keeps sessions and queued messages.
"""

from __future__ import annotations

import os
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
    from types import TracebackType

__all__ = ["Mosquitto", "MosquittoNotFound", "find_mosquitto"]

_SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


class MosquittoNotFound(RuntimeError):
    """The ``mosquitto`` executable is not installed."""


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


def _free_port() -> int:
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
    port: int = attrs.field(init=False, default=0)
    """Plain TCP listener port."""
    ws_port: int = attrs.field(init=False, default=0)
    """WebSocket listener port."""
    tls_port: int = attrs.field(init=False, default=0)
    """TLS listener port (0 when ``tls`` is False)."""
    auth_port: int = attrs.field(init=False, default=0)
    """Port of the listener that requires ``username``/``password``."""
    unix_path: str = attrs.field(init=False, default="")
    """Path of the unix socket listener."""
    ca_pem: bytes = attrs.field(init=False, default=b"", repr=False)
    """PEM of the CA that signed the TLS listener's certificate (for ``localhost``)."""
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
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return None if self._process is None else self._process.pid

    def _prepare(self) -> Path:
        if self.directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mosq-")
            self.directory = Path(self._tmp.name)
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port, self.ws_port, self.auth_port = (_free_port() for _ in range(3))
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
            "persistence true",
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
            f"listener {self.ws_port} {self.host}",
            "protocol websockets",
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
        if self.tls:
            lines += self._tls_listener(directory)
        (directory / "mosquitto.conf").write_text("\n".join(lines) + "\n")
        return directory

    def _tls_listener(self, directory: Path) -> list[str]:
        import trustme  # test dependency; only needed for the TLS listener

        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        ca.cert_pem.write_to_path(str(directory / "ca.pem"))
        cert.private_key_pem.write_to_path(str(directory / "server.key"))
        cert.cert_chain_pems[0].write_to_path(str(directory / "server.pem"))
        self.ca_pem = ca.cert_pem.bytes()
        self.tls_port = _free_port()
        return [
            "",
            f"listener {self.tls_port} {self.host}",
            "allow_anonymous true",
            f"cafile {directory / 'ca.pem'}",
            f"certfile {directory / 'server.pem'}",
            f"keyfile {directory / 'server.key'}",
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
        ports = [self.port, self.ws_port, self.auth_port]
        if self.tls_port:
            ports.append(self.tls_port)
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
        """Stop and start again on the same ports, keeping persisted sessions."""
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
