"""aiomqtt's configuration objects and paho's argument rules, reproduced by the shim."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import ssl
import string
from typing import TYPE_CHECKING

import pytest
import trustme

from trio_mqttconn import (
    ProtocolVersion as EngineProtocolVersion,
    QoS,
    Will as EngineWill,
)
from trio_mqttconn._properties import EMPTY_PROPERTIES, Properties as PropertiesRecord
from trio_mqttconn.aiomqtt import (
    ProtocolVersion,
    ProxySettings,
    TLSParameters,
    Topic,
    Wildcard,
    Will,
)
from trio_mqttconn.aiomqtt._compat import (
    MQTT_CLEAN_START_FIRST_ONLY,
    PROXY_NOT_SUPPORTED,
    build_tls_context,
    check_connect_options,
    check_publish,
    normalise_subscribe_topics,
    normalise_unsubscribe_topics,
    payload_to_bytes,
    reject_proxy,
    resolve_identifier,
    to_engine_protocol,
    will_to_engine,
)
from trio_mqttconn.aiomqtt._paho import PacketTypes, Properties, SubscribeOptions

if TYPE_CHECKING:
    from pathlib import Path

V311, V5 = ProtocolVersion.V311, ProtocolVersion.V5


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


# ----------------------------------------------------------------- ProtocolVersion


def test_protocol_version_values() -> None:
    assert [(m.name, m.value) for m in ProtocolVersion] == [
        ("V31", 3),
        ("V311", 4),
        ("V5", 5),
    ]


def test_to_engine_protocol() -> None:
    assert to_engine_protocol(V311) is EngineProtocolVersion.V311
    assert to_engine_protocol(V5) is EngineProtocolVersion.V5
    assert to_engine_protocol(4) is EngineProtocolVersion.V311
    with pytest.raises(
        NotImplementedError,
        match=exactly(
            "MQTT 3.1 (ProtocolVersion.V31) is not supported by trio_mqttconn; "
            "use ProtocolVersion.V311 or ProtocolVersion.V5"
        ),
    ):
        to_engine_protocol(ProtocolVersion.V31)
    with pytest.raises(
        ValueError, match=r"^protocol must be a ProtocolVersion \(V311 or V5\), not 6$"
    ):
        to_engine_protocol(6)


# ------------------------------------------------------------------------ payloads


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("h\u00e9", b"h\xc3\xa9"),
        ("", b""),
        (42, b"42"),
        (-1, b"-1"),
        (3.5, b"3.5"),
        (True, b"True"),
        (None, b""),
        (b"\x00\xff", b"\x00\xff"),
        (bytearray(b"ab"), b"ab"),
    ],
)
def test_payload_to_bytes_follows_pahos_rules(payload: object, expected: bytes) -> None:
    result = payload_to_bytes(payload)
    assert result == expected
    assert type(result) is bytes


def test_payload_to_bytes_copies_a_bytearray() -> None:
    data = bytearray(b"ab")
    result = payload_to_bytes(data)
    data[0] = 0
    assert result == b"ab"


@pytest.mark.parametrize("payload", [object(), [1], memoryview(b"x"), {"a": 1}])
def test_payload_to_bytes_rejects_other_types(payload: object) -> None:
    with pytest.raises(
        TypeError,
        match=exactly("payload must be a string, bytearray, int, float or None."),
    ):
        payload_to_bytes(payload)


# ----------------------------------------------------------------- subscribe shapes


def shapes(
    topic: object,
    qos: object = 0,
    options: object = None,
    properties: object = None,
    *,
    protocol: int,
) -> list[tuple[str, str]]:
    return [
        (topic_filter, str(opts))
        for topic_filter, opts in normalise_subscribe_topics(
            topic,
            qos,  # type: ignore[arg-type]  # wrong types are part of the tests
            options,
            properties,
            protocol=protocol,
        )
    ]


def opts(qos: int = 0, no_local: bool = False, rap: bool = False, rh: int = 0) -> str:
    return str(SubscribeOptions(qos, no_local, rap, rh))


NL = SubscribeOptions(qos=1, noLocal=True)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("a/b",), [("a/b", opts())]),
        (("a/b", 2), [("a/b", opts(2))]),
        (("a/b", 0, NL), [("a/b", opts(1, True))]),
        ((("a/b", NL),), [("a/b", opts(1, True))]),
        (([("a", NL), ("b", 2)],), [("a", opts(1, True)), ("b", opts(2))]),
        ((Wildcard("a/#"), 1), [("a/#", opts(1))]),
        (([(Topic("a"), 1)],), [("a", opts(1))]),
        (("$share/g/a/+",), [("$share/g/a/+", opts())]),
    ],
)
def test_subscribe_shapes_mqtt5(args: tuple[object, ...], expected: object) -> None:
    assert shapes(*args, protocol=V5) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("a/b",), [("a/b", opts())]),
        (("a/b", 1), [("a/b", opts(1))]),
        # As paho: on MQTT 3.1.1 the options argument is ignored.
        (("a/b", 2, NL), [("a/b", opts(2))]),
        ((("a/b", 1),), [("a/b", opts(1))]),
        ((("a/b", 1), 2), [("a/b", opts(1))]),
        (([("a", 0), ("b", 2)],), [("a", opts(0)), ("b", opts(2))]),
    ],
)
@pytest.mark.parametrize("protocol", [ProtocolVersion.V311, ProtocolVersion.V31])
def test_subscribe_shapes_mqtt3(
    args: tuple[object, ...], expected: object, protocol: int
) -> None:
    assert shapes(*args, protocol=protocol) == expected


@pytest.mark.parametrize(
    ("protocol", "args", "message"),
    [
        (V5, ("a", 3), "Invalid QoS level."),
        (V5, ("a", -1), "Invalid QoS level."),
        (V5, ("a", 1, NL), "Subscribe options and qos parameters cannot be combined."),
        (
            V5,
            ("a", 0, 1),
            "Subscribe options must be instance of SubscribeOptions class.",
        ),
        (
            V5,
            (("a", 1),),
            "Subscribe options must be instance of SubscribeOptions class.",
        ),
        (V5, ([],), "Empty topic list"),
        (V5, ([("a", 3)],), "Invalid QoS level."),
        (V5, ([(1, 1)],), "Invalid topic."),
        (V5, ([("a", 1, 2)],), "No topic specified, or incorrect topic type."),
        (V5, (5,), "No topic specified, or incorrect topic type."),
        (V5, (None,), "No topic specified, or incorrect topic type."),
        (V5, (("a",),), "No topic specified, or incorrect topic type."),
        (V5, ("",), "Invalid subscription filter."),
        (V5, ("a/#/b",), "Invalid subscription filter."),
        (V5, ("a+",), "Invalid subscription filter."),
        (V5, ([("ok", 0), ("", 0)],), "Invalid subscription filter."),
        (V5, ("\u00e9" * 32768,), "Invalid subscription filter."),
        (V311, ("",), "Invalid topic."),
        (V311, ("a", 3), "Invalid QoS level."),
        (V311, (("a", NL),), "Invalid QoS level."),
        (V311, ([("a", NL)],), "Invalid QoS level."),
        (V311, ([("", 1)],), "Invalid topic."),
        (V311, ([(None, 1)],), "Invalid topic."),
        (V311, ([],), "Empty topic list"),
        (V311, ("a/#/b",), "Invalid subscription filter."),
        (V311, (b"a",), "No topic specified, or incorrect topic type."),
    ],
)
def test_subscribe_shapes_errors_have_pahos_messages(
    protocol: int, args: tuple[object, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        shapes(*args, protocol=protocol)


def test_subscribe_accepts_pahos_subscribe_options() -> None:
    class PahoLikeOptions:
        QoS = 2
        noLocal = False
        retainAsPublished = True
        retainHandling = 2

    [(_, options)] = normalise_subscribe_topics(
        "a", options=PahoLikeOptions(), protocol=V5
    )
    assert isinstance(options, SubscribeOptions)
    assert str(options) == opts(2, False, True, 2)


def test_subscribe_checks_the_properties_type() -> None:
    props = Properties(PacketTypes.SUBSCRIBE)
    props.SubscriptionIdentifier = 4
    assert shapes("a", properties=props, protocol=V5) == [("a", opts())]
    with pytest.raises(TypeError, match=r"^properties must be a Properties object"):
        shapes("a", properties={"SubscriptionIdentifier": 4}, protocol=V5)


# --------------------------------------------------------------------- unsubscribe


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("a/#", ["a/#"]),
        (["a", "b/+"], ["a", "b/+"]),
        (Wildcard("x/#"), ["x/#"]),
        ([Topic("t"), "u"], ["t", "u"]),
    ],
)
def test_unsubscribe_shapes(topic: object, expected: list[str]) -> None:
    assert normalise_unsubscribe_topics(topic) == expected


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        (None, "Invalid topic."),
        ("", "Invalid topic."),
        (["a", ""], "Invalid topic."),
        (["a", 5], "Invalid topic."),
        ([], "Empty topic list"),
        (5, "No topic specified, or incorrect topic type."),
        (("a", "b"), "No topic specified, or incorrect topic type."),
    ],
)
def test_unsubscribe_errors(topic: object, message: str) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        normalise_unsubscribe_topics(topic)


# ------------------------------------------------------------------------- publish


def test_check_publish_returns_topic_and_payload() -> None:
    assert check_publish("a/b", "x", 1, protocol=V311) == ("a/b", b"x")
    assert check_publish(Topic("a"), None, 0, protocol=V311) == ("a", b"")
    # MQTT 5 allows an empty topic (with a topic alias).
    assert check_publish("", 7, 2, protocol=V5) == ("", b"7")


@pytest.mark.parametrize(
    ("protocol", "topic", "qos", "message"),
    [
        (V311, "", 0, "Invalid topic."),
        (V311, None, 0, "Invalid topic."),
        (V5, None, 0, "Invalid topic."),
        (V5, "a/+", 0, "Publish topic cannot contain wildcards."),
        (V311, "a/#", 0, "Publish topic cannot contain wildcards."),
        (V5, "\u00e9" * 32768, 0, "Publish topic is too long."),
        (V5, "a", 3, "Invalid QoS level."),
        (V5, "a", -1, "Invalid QoS level."),
    ],
)
def test_check_publish_errors_have_pahos_messages(
    protocol: int, topic: object, qos: int, message: str
) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        check_publish(topic, b"", qos, protocol=protocol)


def test_check_publish_rejects_non_string_topics_and_payloads() -> None:
    with pytest.raises(TypeError, match=r"^topic must be a str or Topic, not bytes$"):
        check_publish(b"a", b"", 0, protocol=V5)
    with pytest.raises(
        TypeError,
        match=exactly("payload must be a string, bytearray, int, float or None."),
    ):
        check_publish("a", object(), 0, protocol=V5)


def test_check_publish_rejects_payloads_above_the_maximum() -> None:
    with pytest.raises(ValueError, match=exactly("Payload too large.")):
        check_publish("a", bytes(268435456), 0, protocol=V5)


# ---------------------------------------------------------------------------- Will


def test_will_is_a_frozen_dataclass_with_aiomqtts_fields() -> None:
    assert [f.name for f in dataclasses.fields(Will)] == [
        "topic",
        "payload",
        "qos",
        "retain",
        "properties",
    ]
    will = Will("status", "offline")
    assert (will.payload, will.qos, will.retain, will.properties) == (
        "offline",
        0,
        False,
        None,
    )
    assert dataclasses.replace(will, qos=1).qos == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        will.qos = 2  # type: ignore[misc]


def test_will_to_engine_on_mqtt5_keeps_properties() -> None:
    props = Properties(PacketTypes.WILLMESSAGE)
    props.WillDelayInterval = 10
    will = Will("status", 0, qos=1, retain=True, properties=props)
    assert will_to_engine(will, protocol=V5) == EngineWill(
        topic="status",
        payload=b"0",
        qos=QoS.AT_LEAST_ONCE,
        retain=True,
        properties=PropertiesRecord(will_delay_interval=10),
    )


def test_will_to_engine_on_mqtt311_drops_properties() -> None:
    props = Properties(PacketTypes.WILLMESSAGE)
    props.WillDelayInterval = 10
    engine = will_to_engine(Will("s", properties=props), protocol=V311)
    assert engine.properties is EMPTY_PROPERTIES
    assert engine.payload == b""


@pytest.mark.parametrize(
    ("will", "message"),
    [
        (Will(""), "Invalid topic."),
        (Will(None), "Invalid topic."),  # type: ignore[arg-type]
        (Will("a", qos=3), "Invalid QoS level."),
        (
            Will("a", properties={"x": 1}),  # type: ignore[arg-type]
            "The properties argument must be an instance of the Properties class.",
        ),
    ],
)
def test_will_to_engine_errors(will: Will, message: str) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        will_to_engine(will, protocol=V5)


def test_will_to_engine_rejects_bad_payloads() -> None:
    with pytest.raises(TypeError, match=r"^payload must be a string"):
        will_to_engine(Will("a", payload=[1]), protocol=V5)  # type: ignore[arg-type]


# -------------------------------------------------------------------- TLS settings


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    client = ca.issue_cert("client.example")
    paths = {
        "ca": directory / "ca.pem",
        "cert": directory / "client.pem",
        "key": directory / "client.key",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    client.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    client.private_key_pem.write_to_path(str(paths["key"]))
    return paths


def test_tls_parameters_fields_and_secret_repr() -> None:
    assert [f.name for f in dataclasses.fields(TLSParameters)] == [
        "ca_certs",
        "certfile",
        "keyfile",
        "cert_reqs",
        "tls_version",
        "ciphers",
        "keyfile_password",
    ]
    params = TLSParameters(keyfile_password="hunter2")
    assert "hunter2" not in repr(params)


def test_build_tls_context_none_means_plain_tcp() -> None:
    assert build_tls_context(None, None, None) is None


def test_build_tls_context_from_params_like_paho(pki: dict[str, Path]) -> None:
    context = build_tls_context(
        None,
        TLSParameters(
            ca_certs=str(pki["ca"]),
            certfile=str(pki["cert"]),
            keyfile=str(pki["key"]),
            ciphers="ECDHE+AESGCM",
        ),
        None,
    )
    assert context is not None
    assert context.protocol is ssl.PROTOCOL_TLS_CLIENT
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert len(context.get_ca_certs()) == 1


def test_build_tls_context_cert_none_disables_hostname_check(
    pki: dict[str, Path],
) -> None:
    context = build_tls_context(
        None, TLSParameters(ca_certs=str(pki["ca"]), cert_reqs=ssl.CERT_NONE), None
    )
    assert context is not None
    assert context.verify_mode is ssl.CERT_NONE
    assert context.check_hostname is False


def test_build_tls_context_defaults_to_system_cas() -> None:
    context = build_tls_context(None, TLSParameters(), None)
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_build_tls_context_insecure_on_a_given_context() -> None:
    given = ssl.create_default_context()
    assert build_tls_context(given, None, True) is given
    assert given.check_hostname is False
    assert build_tls_context(given, None, False) is given
    assert given.check_hostname is True


def test_build_tls_context_insecure_on_params(pki: dict[str, Path]) -> None:
    context = build_tls_context(None, TLSParameters(ca_certs=str(pki["ca"])), True)
    assert context is not None
    assert context.check_hostname is False
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_build_tls_context_errors_have_pahos_messages() -> None:
    with pytest.raises(
        ValueError, match=exactly("SSL/TLS has already been configured.")
    ):
        build_tls_context(ssl.create_default_context(), TLSParameters(), None)
    with pytest.raises(
        ValueError,
        match=exactly("Must configure SSL context before using tls_insecure_set."),
    ):
        build_tls_context(None, None, True)


def test_build_tls_context_missing_file_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="No such file"):
        build_tls_context(None, TLSParameters(ca_certs=str(tmp_path / "nope")), None)


# ---------------------------------------------------------------------------- proxy


def test_proxy_settings_construct_and_hide_the_password() -> None:
    proxy = ProxySettings(
        proxy_type=3, proxy_addr="proxy", proxy_username="u", proxy_password="pw"
    )
    assert proxy.proxy_args == {
        "proxy_type": 3,
        "proxy_addr": "proxy",
        "proxy_rdns": True,
        "proxy_username": "u",
        "proxy_password": "pw",
        "proxy_port": None,
    }
    assert "pw" not in repr(proxy)
    assert repr(proxy) == (
        "ProxySettings(proxy_type=3, proxy_addr='proxy', proxy_rdns=True, "
        "proxy_username='u', proxy_port=None)"
    )


def test_reject_proxy() -> None:
    reject_proxy(None)
    with pytest.raises(NotImplementedError, match=exactly(PROXY_NOT_SUPPORTED)):
        reject_proxy(ProxySettings(proxy_type=3, proxy_addr="proxy"))
    assert PROXY_NOT_SUPPORTED == (
        "proxies are not supported by trio_mqttconn yet; remove the proxy argument "
        "or tunnel the connection to the broker"
    )


# ------------------------------------------------------------------ session options


def test_resolve_identifier() -> None:
    assert resolve_identifier("me", protocol=V311, clean_session=None) == "me"
    assert resolve_identifier(None, protocol=V311, clean_session=True) == ""
    assert resolve_identifier(None, protocol=V5, clean_session=None) == ""
    assert resolve_identifier("me", protocol=V311, clean_session=False) == "me"
    generated = resolve_identifier(
        None, protocol=ProtocolVersion.V31, clean_session=None
    )
    assert len(generated) == 22
    assert set(generated) <= set(string.digits + string.ascii_letters)
    assert generated != resolve_identifier(
        None, protocol=ProtocolVersion.V31, clean_session=None
    )


def test_resolve_identifier_errors_have_pahos_messages() -> None:
    with pytest.raises(
        ValueError, match=exactly("Clean session is not used for MQTT 5.0")
    ):
        resolve_identifier("me", protocol=V5, clean_session=True)
    with pytest.raises(
        ValueError,
        match=exactly("A client id must be provided if clean session is False."),
    ):
        resolve_identifier("", protocol=V311, clean_session=False)


def test_check_connect_options() -> None:
    check_connect_options(
        protocol=V311, clean_start=MQTT_CLEAN_START_FIRST_ONLY, properties=None
    )
    check_connect_options(
        protocol=V5, clean_start=True, properties=Properties(PacketTypes.CONNECT)
    )
    with pytest.raises(
        ValueError, match=exactly("Clean start only applies to MQTT V5")
    ):
        check_connect_options(protocol=V311, clean_start=True, properties=None)
    with pytest.raises(ValueError, match=exactly("Properties only apply to MQTT V5")):
        check_connect_options(
            protocol=V311,
            clean_start=MQTT_CLEAN_START_FIRST_ONLY,
            properties=Properties(PacketTypes.CONNECT),
        )


# ------------------------------------------------------------------ public surface

SHIM_MODULES = [
    "trio_mqttconn.aiomqtt",
    "trio_mqttconn.aiomqtt.topic",
    "trio_mqttconn.aiomqtt.exceptions",
    "trio_mqttconn.aiomqtt.message",
    "trio_mqttconn.aiomqtt.types",
    "trio_mqttconn.aiomqtt._paho",
    "trio_mqttconn.aiomqtt._compat",
]


def test_package_exports_aiomqtts_names() -> None:
    aiomqtt = importlib.import_module("trio_mqttconn.aiomqtt")
    assert set(aiomqtt.__all__) == {
        "Client",
        "Message",
        "MessagesIterator",
        "MqttCodeError",
        "MqttConnectError",
        "MqttError",
        "MqttReentrantError",
        "ProtocolVersion",
        "ProxySettings",
        "TLSParameters",
        "Topic",
        "TopicLike",
        "Wildcard",
        "WildcardLike",
        "Will",
        "__version__",
        "__version_tuple__",
    }
    assert aiomqtt.__version__ == "2.5.1"
    assert aiomqtt.__version_tuple__ == (2, 5, 1)
    for name in ("types", "exceptions", "message", "topic", "client"):
        importlib.import_module(f"trio_mqttconn.aiomqtt.{name}")
    with pytest.raises(AttributeError, match=r"has no attribute 'Nope'"):
        _ = aiomqtt.Nope


def test_types_module_has_aiomqtts_aliases() -> None:
    types = importlib.import_module("trio_mqttconn.aiomqtt.types")
    for name in ("PayloadType", "SubscribeTopic", "WebSocketHeaders", "SocketOption"):
        assert getattr(types, name) is not None
    assert isinstance(b"x", types.PayloadType)
    assert isinstance(None, types.PayloadType)
    assert not isinstance(object(), types.PayloadType)


@pytest.mark.parametrize("module_name", SHIM_MODULES)
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__
    for name in module.__all__:
        if name in ("Client", "MessagesIterator") or name.startswith("__"):
            continue
        value = getattr(module, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        assert inspect.getdoc(value), f"{module_name}.{name}"
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if attr.startswith("_") or not inspect.isfunction(member):
                    continue
                assert inspect.getdoc(member), f"{module_name}.{name}.{attr}"
