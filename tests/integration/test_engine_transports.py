"""MqttClient over every listener of the real mosquitto: TCP, TLS, WebSocket, unix.

Also credentials (right, wrong, none) and failover from a dead URI to a live one.
Runs on trio and asyncio; every test is bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import re
import socket
import ssl
from typing import TYPE_CHECKING

import anyio
import pytest

from trio_mqttconn import (
    ConnectError,
    MqttClient,
    ProtocolVersion,
    QoS,
    ReasonCode,
)

if TYPE_CHECKING:
    from pathlib import Path

    from trio_mqttconn.testing import Mosquitto

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

TIMEOUT = 20
V311 = ProtocolVersion.V311
V5 = ProtocolVersion.V5


@pytest.fixture(params=[V311, V5], ids=["v311", "v5"])
def protocol(request: pytest.FixtureRequest) -> ProtocolVersion:
    """The tests where the protocol version matters run for both."""
    return ProtocolVersion(request.param)


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def trusting_context(mosquitto: Mosquitto) -> ssl.SSLContext:
    """A client context that trusts the CA of the broker's test certificate."""
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=mosquitto.ca_pem.decode("ascii"))
    return context


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def round_trip(client: MqttClient, topic: str, payload: bytes) -> bytes:
    async with client.subscription(topic, qos=QoS.AT_LEAST_ONCE) as sub:
        await client.publish(topic, payload, qos=QoS.AT_LEAST_ONCE)
        return (await sub.receive()).payload


async def connect_once(client: MqttClient, entry: str) -> None:
    """Connect by ``async with`` (*entry* "context") or ``tg.start(client.run)``."""
    if entry == "context":
        async with client:
            pytest.fail("connected")
    error: ConnectError | None = None
    async with anyio.create_task_group() as tg:
        # caught inside: escaping the task group would wrap it in an ExceptionGroup
        try:
            await tg.start(client.run)
        except ConnectError as exc:
            error = exc
        else:
            pytest.fail("connected")
    assert error is not None
    raise error


# ---------------------------------------------------------------------------
# TLS


@pytest.mark.parametrize("scheme", ["mqtts", "ssl", "tls"])
async def test_client_tls_listener(
    mosquitto: Mosquitto, unique_topic: str, scheme: str, protocol: ProtocolVersion
) -> None:
    uri = f"{scheme}://127.0.0.1:{mosquitto.tls_port}"
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(
            uri, protocol=protocol, ssl_context=trusting_context(mosquitto)
        ) as client:
            assert await round_trip(client, unique_topic, b"secret") == b"secret"


async def test_client_tls_by_host_name(mosquitto: Mosquitto, unique_topic: str) -> None:
    # "localhost" may resolve to ::1 first, where nothing listens: the client must go
    # on to 127.0.0.1, and check the certificate against the name "localhost"
    uri = f"mqtts://localhost:{mosquitto.tls_port}"
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(uri, ssl_context=trusting_context(mosquitto)) as client:
            assert await round_trip(client, unique_topic, b"by name") == b"by name"


async def test_client_tls_untrusted_certificate_fails(mosquitto: Mosquitto) -> None:
    where = f"127.0.0.1:{mosquitto.tls_port}"
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
        # the default context trusts the system CAs only, not the test CA
        async with MqttClient(f"mqtts://{where}", reconnect=False):
            pytest.fail("connected with an untrusted certificate")
    assert info.value.reason_code is None
    assert re.fullmatch(
        rf"TLS certificate verification failed for {re.escape(where)}: "
        r"[^;]+; give an ssl_context that trusts the broker's certificate authority",
        str(info.value),
    ), str(info.value)


async def test_client_tls_host_name_mismatch_fails(mosquitto: Mosquitto) -> None:
    # "127.1" is 127.0.0.1 to the resolver but, not being a dotted quad, a *name* to
    # TLS: the certificate lists "localhost" and 127.0.0.1 only
    where = f"127.1:{mosquitto.tls_port}"
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
        async with MqttClient(
            f"mqtts://{where}", ssl_context=trusting_context(mosquitto)
        ):
            pytest.fail("connected despite the host-name mismatch")
    assert info.value.reason_code is None
    assert str(info.value) == (
        f"TLS certificate verification failed for {where}: Hostname mismatch, "
        f"certificate is not valid for '127.1'; connect by a name the certificate "
        f"lists, or set tls_insecure to skip the host-name check"
    )


async def test_client_tls_insecure_skips_host_name_check(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(
            f"mqtts://127.1:{mosquitto.tls_port}",
            ssl_context=trusting_context(mosquitto),
            tls_insecure=True,
        ) as client:
            assert await round_trip(client, unique_topic, b"insecure") == b"insecure"


async def test_client_tls_against_plain_port_fails(mosquitto: Mosquitto) -> None:
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
        async with MqttClient(
            f"mqtts://127.0.0.1:{mosquitto.port}",
            ssl_context=trusting_context(mosquitto),
            connect_timeout=5,
        ):
            pytest.fail("TLS handshake with a plain MQTT listener succeeded")
    assert info.value.reason_code is None


# ---------------------------------------------------------------------------
# WebSocket and unix socket


@pytest.mark.parametrize("path", ["", "/other/path"], ids=["default", "other"])
async def test_client_websocket_listener(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion, path: str
) -> None:
    uri = f"ws://127.0.0.1:{mosquitto.ws_port}{path}"
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(uri, protocol=protocol) as client:
            assert await round_trip(client, unique_topic, b"over ws") == b"over ws"


async def test_client_websocket_large_payload(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # mosquitto 2.0 sends WebSocket frames of 4 KiB, one per turn of its event loop
    # (about 0.1 s): 10 kB is three frames, one MQTT packet reassembled across them
    payload = bytes(range(250)) * 40
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(f"ws://127.0.0.1:{mosquitto.ws_port}") as client:
            assert await round_trip(client, unique_topic, payload) == payload


async def test_client_unix_socket_listener(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(
            f"unix://{mosquitto.unix_path}", protocol=protocol
        ) as client:
            assert await round_trip(client, unique_topic, b"local") == b"local"


async def test_client_between_transports(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # one broker, four ways in: a message crosses all of them
    uris = [
        mosquitto.uri,
        f"ws://127.0.0.1:{mosquitto.ws_port}",
        f"unix://{mosquitto.unix_path}",
        f"mqtts://127.0.0.1:{mosquitto.tls_port}",
    ]
    context = trusting_context(mosquitto)
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(uris[0]) as tcp,
            MqttClient(uris[1]) as ws,
            MqttClient(uris[2]) as unix,
            MqttClient(uris[3], ssl_context=context) as tls,
            tls.subscription(unique_topic, qos=QoS.EXACTLY_ONCE) as sub,
        ):
            for client in (tcp, ws, unix):
                await client.publish(
                    unique_topic, client.client_id or "", qos=QoS.EXACTLY_ONCE
                )
            received = [(await sub.receive()).payload for _ in range(3)]
    assert received == [c.client_id.encode() for c in (tcp, ws, unix) if c.client_id]


# ---------------------------------------------------------------------------
# user name and password


async def test_client_right_password_accepted(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(
            f"mqtt://127.0.0.1:{mosquitto.auth_port}",
            protocol=protocol,
            username=mosquitto.username,
            password=mosquitto.password,
        ) as client:
            assert await round_trip(client, unique_topic, b"ok") == b"ok"


async def test_client_credentials_in_uri_accepted(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    uri = (
        f"mqtt://{mosquitto.username}:{mosquitto.password}"
        f"@127.0.0.1:{mosquitto.auth_port}"
    )
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(uri) as client:
            assert mosquitto.password not in repr(client)
            assert await round_trip(client, unique_topic, b"ok") == b"ok"


@pytest.mark.parametrize("entry", ["context", "run"])
async def test_client_wrong_password_refused(
    mosquitto: Mosquitto, protocol: ProtocolVersion, entry: str
) -> None:
    wrong = "wrong-Pa55word"
    client = MqttClient(
        f"mqtt://127.0.0.1:{mosquitto.auth_port}",
        protocol=protocol,
        username=mosquitto.username,
        password=wrong,
    )
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
        await connect_once(client, entry)
    error = info.value
    assert error.reason_code in {
        ReasonCode.BAD_USER_NAME_OR_PASSWORD,
        ReasonCode.NOT_AUTHORIZED,
    }
    assert error.reason_code is not None
    assert str(error) == (
        f"mqtt://127.0.0.1:{mosquitto.auth_port} refused the connection: "
        f"{error.reason_code.phrase} (reason code 0x{error.reason_code:02x}); "
        + (
            "check the user name and password"
            if error.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
            else "check the user name, password and the broker's ACL"
        )
    )
    for text in (str(error), repr(error), repr(client), str(error.__cause__)):
        assert wrong not in text
        assert mosquitto.password not in text
    assert not client.is_connected


async def test_client_anonymous_refused_on_password_listener(
    mosquitto: Mosquitto, protocol: ProtocolVersion
) -> None:
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
        async with MqttClient(
            f"mqtt://127.0.0.1:{mosquitto.auth_port}", protocol=protocol
        ):
            pytest.fail("connected without credentials")
    assert info.value.reason_code == ReasonCode.NOT_AUTHORIZED


# ---------------------------------------------------------------------------
# connection failures and failover


async def test_client_connection_refused(mosquitto: Mosquitto) -> None:
    port = closed_port()
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
        async with MqttClient(f"mqtt://127.0.0.1:{port}"):
            pytest.fail("connected to a closed port")
    assert info.value.reason_code is None
    assert str(info.value) == (
        f"connection refused by 127.0.0.1:{port}; is the broker running?"
    )


async def test_client_missing_unix_socket(tmp_path: Path) -> None:
    path = f"{tmp_path}/no-broker.sock"
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
        async with MqttClient(f"unix://{path}"):
            pytest.fail("connected to a missing unix socket")
    assert (
        str(info.value)
        == f"unix socket {path!r} does not exist; is the broker running?"
    )


async def test_client_failover_from_dead_uri(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    dead = f"mqtt://127.0.0.1:{closed_port()}"
    with anyio.fail_after(TIMEOUT):
        async with MqttClient([dead, mosquitto.uri], protocol=protocol) as client:
            stats = client.statistics()
            assert await round_trip(client, unique_topic, b"second") == b"second"
    assert (stats.connected, stats.connects, stats.reconnects) == (True, 1, 0)


async def test_client_failover_with_run(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    dead = f"mqtt://127.0.0.1:{closed_port()}"
    client = MqttClient([dead, f"ws://127.0.0.1:{mosquitto.ws_port}"])
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            await tg.start(client.run)
            assert client.is_connected
            assert await round_trip(client, unique_topic, b"via ws") == b"via ws"
            await client.aclose()
    assert not client.is_connected


async def test_client_failover_all_dead_raises_last_error(
    mosquitto: Mosquitto,
) -> None:
    first, last = closed_port(), closed_port()
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
        async with MqttClient(
            [f"mqtt://127.0.0.1:{first}", f"mqtt://127.0.0.1:{last}"]
        ):
            pytest.fail("connected to a closed port")
    assert str(info.value) == (
        f"connection refused by 127.0.0.1:{last}; is the broker running?"
    )


async def test_client_failover_continues_after_a_refused_connack(
    mosquitto: Mosquitto,
) -> None:
    # #9: one broker's "not authorized" does not stop failover to the next URI;
    # the refusal is final only once every URI was tried.
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(
            [f"mqtt://127.0.0.1:{mosquitto.auth_port}", mosquitto.uri]
        ) as client:
            assert client.is_connected
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
        async with MqttClient([f"mqtt://127.0.0.1:{mosquitto.auth_port}"]):
            pytest.fail("connected although refused")
    assert info.value.reason_code == ReasonCode.NOT_AUTHORIZED
