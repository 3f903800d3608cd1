"""The public API: documented, owned by the package, no secrets in reprs."""

from __future__ import annotations

import inspect
import types

import pytest

import trio_mqttconn
from trio_mqttconn import MqttClient

PUBLIC = {
    name: value
    for name in dir(trio_mqttconn)  # the names imported when first used too
    if not name.startswith("_")
    and not isinstance(value := getattr(trio_mqttconn, name), types.ModuleType)
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_api_name_is_documented(name: str) -> None:
    value = PUBLIC[name]
    if inspect.isclass(value) or inspect.isfunction(value):
        assert inspect.getdoc(value), f"{name} has no docstring"
        assert value.__module__ == "trio_mqttconn", f"{name}.__module__"


@pytest.mark.parametrize(
    "name", sorted(n for n, v in PUBLIC.items() if inspect.isclass(v))
)
def test_public_api_methods_are_documented(name: str) -> None:
    cls = PUBLIC[name]
    for attr, member in vars(cls).items():
        if attr.startswith("_") or not callable(member):
            continue
        if isinstance(member, type):
            continue
        assert inspect.getdoc(member), f"{name}.{attr} has no docstring"


def test_public_api_plain_client_import_loads_no_pip_services_or_sqlite() -> None:
    """Memory (#9, peak RSS): ``import trio_mqttconn`` leaves the pip-services
    layer, request/response and SQLite to their first use, and asyncio to an
    asyncio program; client ids come from ``os.urandom``, not ``secrets`` (which
    brings hmac and OpenSSL's hashlib: about 0.8 MiB), and so does the reconnect
    jitter, not ``random`` (about 150 KiB)."""
    import subprocess
    import sys

    code = (
        "import sys, trio_mqttconn; "
        "print(sorted(m for m in ('sqlite3', 'asyncio', 'trio_mqttconn._queue', "
        "'trio_mqttconn._connection', 'trio_mqttconn._store', 'trio_mqttconn._rpc', "
        "'secrets', 'hmac', 'random') "
        "if m in sys.modules)); "
        "trio_mqttconn.MqttMessageQueue; "
        "print('trio_mqttconn._queue' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[:2] == ["[]", "True"]


def test_public_api_request_response_names_report_the_package() -> None:
    """Request/response names are imported when first used (#9, peak RSS); their
    classes report the package as their module however they were reached."""
    import subprocess
    import sys

    code = (
        "import trio_mqttconn._rpc as r; "
        "print({c.__module__ for c in (r.Request, r.RequestStatistics, "
        "r.Responder, r.ResponderStatistics)}); "
        "import trio_mqttconn; print(trio_mqttconn.Request is r.Request)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[:2] == ["{'trio_mqttconn'}", "True"]


def test_public_api_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        trio_mqttconn.Nope  # type: ignore[attr-defined]  # noqa: B018


def test_public_api_client_repr_hides_password() -> None:
    client = MqttClient(
        "mqtt://user:uri-secret@localhost:1883",
        password="kw-secret",
        client_id="c1",
    )
    text = repr(client) + str(client.endpoints)
    assert "uri-secret" not in text
    assert "kw-secret" not in text
    assert "c1" in text


def test_public_api_bad_uri_message_hides_password() -> None:
    with pytest.raises(trio_mqttconn.ConfigError) as info:
        MqttClient("nope://user:uri-secret@localhost")
    assert "uri-secret" not in str(info.value)


def test_public_api_exports_the_pip_services_components() -> None:
    # What a pip-services container and its components use (#12).
    for name in (
        "Context",
        "DefaultMqttFactory",
        "MessageEnvelope",
        "MessageQueueStatistics",
        "MessagingCapabilities",
        "MqttConnection",
        "MqttConnectionResolver",
        "MqttMessageQueue",
        "MqttMessageQueueFactory",
    ):
        assert PUBLIC[name].__module__ == "trio_mqttconn", name


def test_public_api_exports_request_response() -> None:
    # MQTT 5 request/response (#11): the types a responder and a requester see.
    for name in (
        "Request",
        "RequestStatistics",
        "RequestTimeout",
        "Responder",
        "ResponderStatistics",
    ):
        assert PUBLIC[name].__module__ == "trio_mqttconn", name
    assert issubclass(trio_mqttconn.RequestTimeout, TimeoutError)
    assert issubclass(trio_mqttconn.RequestTimeout, trio_mqttconn.MqttError)
