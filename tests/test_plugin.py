"""The pytest plugin (trio_mqttconn.testing.plugin) and the brokers it makes.

The suite itself runs on the plugin's fixtures; these tests pin what a user's suite
relies on: the entry point, a light import, no autouse fixtures, the variants of
`MosquittoFactory`, and the documented example file, run as a user would run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from trio_mqttconn import ConnectError, MqttClient
from trio_mqttconn.testing import (
    Answer,
    FakeBroker,
    Mosquitto,
    MosquittoNotFound,
    _mosquitto as mosquitto_module,
    find_mosquitto,
)

if TYPE_CHECKING:
    from trio_mqttconn.testing import MosquittoFactory

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "testing" / "test_with_plugin.py"
PLUGIN_FIXTURES = {
    "mosquitto",
    "mosquitto_factory",
    "mqtt_client",
    "fake_broker",
    "virtual_deadline",
}
TIMEOUT = 10


def _python(
    args: list[str], *, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python *args`` with this checkout first on the path."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# -- the plugin as pytest sees it -------------------------------------------------------


def test_plugin_is_a_pytest11_entry_point(request: pytest.FixtureRequest) -> None:
    found = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert found.get("trio_mqttconn") == "trio_mqttconn.testing.plugin"
    assert request.config.pluginmanager.has_plugin("trio_mqttconn")


def test_plugin_fixtures_are_not_autouse(request: pytest.FixtureRequest) -> None:
    # A test that asks for none of them gets none of them (and no broker starts).
    assert not PLUGIN_FIXTURES & set(request.fixturenames)


def test_plugin_import_needs_neither_pytest_nor_trustme() -> None:
    code = (
        "import sys, trio_mqttconn.testing\n"
        "heavy = {'pytest', '_pytest', 'trustme'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "import trio_mqttconn.testing.plugin\n"
        "assert 'trustme' not in sys.modules\n"
    )
    result = _python(["-c", code])
    assert result.returncode == 0, result.stderr


def test_plugin_example_file_runs_in_a_users_project(tmp_path: Path) -> None:
    # A fresh directory without our configuration: the plugin loads from the
    # installed entry point, as in a user's project.
    shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)
    result = _python(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", EXAMPLE.name],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout, result.stdout


# -- the fixtures -------------------------------------------------------------------


@pytest.mark.trio
async def test_plugin_mqtt_client_under_pytest_trio(
    mqtt_client: MqttClient, mosquitto: Mosquitto, unique_topic: str
) -> None:
    assert mqtt_client.is_connected
    async with mqtt_client.subscription(f"{unique_topic}/#") as subscription:
        await mqtt_client.publish(f"{unique_topic}/a", b"trio", qos=1)
        with trio.fail_after(TIMEOUT):
            message = await subscription.receive()
    assert message.payload == b"trio"


@pytest.mark.anyio
async def test_plugin_mqtt_client_under_anyio(
    mqtt_client: MqttClient, anyio_backend: str, unique_topic: str
) -> None:
    async with mqtt_client.subscription(f"{unique_topic}/#") as subscription:
        await mqtt_client.publish(f"{unique_topic}/a", anyio_backend, qos=1)
        message = await subscription.receive()
    assert message.payload == anyio_backend.encode()


@pytest.mark.trio
async def test_plugin_fake_broker_on_virtual_time(
    fake_broker: FakeBroker,
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    fake_broker.script(Answer(), Answer(refuse=True))
    async with MqttClient(
        "mqtt://broker.test",
        transport=fake_broker.connect,
        reconnect_delay=3,
        reconnect_jitter=0,
    ) as client:
        await fake_broker.connections[0].close()
        await fake_broker.wait_attempts(3)
        await client.wait_connected()
    assert fake_broker.attempt_times() == [0, 3, 9]


# -- the variants of mosquitto_factory -------------------------------------------------


@pytest.mark.trio
async def test_plugin_broker_with_client_certificates(
    mosquitto_factory: MosquittoFactory,
) -> None:
    broker = mosquitto_factory(client_certificates=True, tls=False)
    assert broker.tls_port == 0
    assert broker.client_cert_port
    uri = f"mqtts://localhost:{broker.client_cert_port}"
    with trio.fail_after(TIMEOUT):
        async with MqttClient(
            uri, ssl_context=broker.ssl_context(client_certificate=True)
        ) as client:
            assert client.is_connected
        # the listener refuses a client without a certificate
        with pytest.raises(ConnectError):
            async with MqttClient(
                uri, ssl_context=broker.ssl_context(), reconnect=False
            ):
                pass  # pragma: no cover


@pytest.mark.trio
async def test_plugin_bridged_pair_forwards_both_ways(
    mosquitto_factory: MosquittoFactory, unique_topic: str
) -> None:
    local, remote = mosquitto_factory.bridged_pair(topics=(f"{unique_topic}/#",))
    with trio.fail_after(TIMEOUT):
        async with (
            MqttClient(local.uri) as on_local,
            MqttClient(remote.uri) as on_remote,
            on_local.subscription(f"{unique_topic}/to-local") as local_sub,
            on_remote.subscription(f"{unique_topic}/to-remote") as remote_sub,
        ):
            await on_local.publish(f"{unique_topic}/to-remote", b"out", qos=1)
            await on_remote.publish(f"{unique_topic}/to-local", b"in", qos=1)
            assert (await remote_sub.receive()).payload == b"out"
            assert (await local_sub.receive()).payload == b"in"


@pytest.mark.trio
@pytest.mark.parametrize("persistence", [True, False])
async def test_plugin_broker_persistence_keeps_retained_messages_over_restart(
    mosquitto_factory: MosquittoFactory, unique_topic: str, persistence: bool
) -> None:
    broker = mosquitto_factory(persistence=persistence, tls=False, websockets=False)
    assert (broker.ws_port, broker.tls_port) == (0, 0)
    with trio.fail_after(TIMEOUT):
        async with MqttClient(broker.uri) as client:
            await client.publish(
                f"{unique_topic}/kept", b"retained", qos=1, retain=True
            )
        broker.restart()
        async with (
            MqttClient(broker.uri) as client,
            client.subscription(f"{unique_topic}/#", qos=1) as subscription,
        ):
            # Retained messages come right after SUBACK, before anything later.
            await client.publish(f"{unique_topic}/marker", b"marker", qos=1)
            first = await subscription.receive()
    expected = b"retained" if persistence else b"marker"
    assert first.payload == expected


def test_plugin_broker_without_tls_says_how_to_get_it() -> None:
    broker = Mosquitto(tls=False)
    with pytest.raises(RuntimeError, match=r"^this broker has no TLS listener: "):
        _ = broker.tls_uri
    with pytest.raises(RuntimeError, match=r"^this broker has no TLS listener yet: "):
        broker.ssl_context()


def test_plugin_broker_tls_uri_and_missing_client_certificate(
    mosquitto: Mosquitto,
) -> None:
    assert mosquitto.tls_uri == f"mqtts://localhost:{mosquitto.tls_port}"
    with pytest.raises(
        RuntimeError,
        match=r"^this broker has no client certificate: make it with "
        r"client_certificates=True and start it$",
    ):
        mosquitto.ssl_context(client_certificate=True)


def test_plugin_broker_tls_without_trustme_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)  # import trustme fails
    broker = Mosquitto(directory=tmp_path)
    with pytest.raises(RuntimeError, match=r"need trustme: pip install"):
        broker.start()
    assert broker.pid is None


def test_plugin_bridge_to_a_broker_not_started_is_an_error(tmp_path: Path) -> None:
    broker = Mosquitto(directory=tmp_path, tls=False, bridge_to=Mosquitto(tls=False))
    with pytest.raises(RuntimeError, match=r"^bridge_to must be a broker that was"):
        broker.start()


def test_plugin_missing_mosquitto_is_an_error_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(mosquitto_module, "_SEARCH_DIRS", ())
    with pytest.raises(
        MosquittoNotFound,
        match=r"^mosquitto is not installed: install Eclipse Mosquitto "
        r"\(Debian/Ubuntu: sudo apt-get install mosquitto\)$",
    ):
        find_mosquitto()


def test_plugin_virtual_deadline_fails_a_hanging_test(tmp_path: Path) -> None:
    (tmp_path / "test_hangs.py").write_text(
        "import pytest, trio\n"
        "@pytest.mark.trio\n"
        "async def test_hangs(autojump_clock, virtual_deadline):\n"
        "    await trio.sleep_forever()\n"
    )
    result = _python(["-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "AssertionError: the test still runs after 1e+06 s of virtual time: "
        "it waits for something that never happens"
    ) in result.stdout


def test_plugin_our_suite_says_when_the_plugin_is_not_loaded() -> None:
    result = _python(
        ["-m", "pytest", "-p", "no:trio_mqttconn", "tests/test_layering.py"], cwd=ROOT
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout
    assert "the trio_mqttconn pytest plugin is not loaded: install the package" in (
        result.stderr
    )


def test_plugin_broker_ports_are_never_handed_out_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # CI flake: two listeners of one broker got the same random port ("Address
    # already in use" in mosquitto's log). The random draw now skips ports this
    # process handed out already, even when the draw repeats itself.
    import random

    from trio_mqttconn.testing import _mosquitto

    draws = iter([21000, 21000, 21000, 21001])
    monkeypatch.setattr(random, "randint", lambda a, b: next(draws))
    monkeypatch.setattr(_mosquitto, "_HANDED_OUT", set())
    assert [_mosquitto._free_port(), _mosquitto._free_port()] == [21000, 21001]
