"""Our paho-compatible ReasonCode, Properties, SubscribeOptions and conversions."""

from __future__ import annotations

import itertools
import re

import pytest

from trio_mqttconn import (
    PropertyId,
    QoS,
    ReasonCode as EngineReasonCode,
    RetainHandling,
)
from trio_mqttconn._packets import TopicSubscription
from trio_mqttconn._properties import EMPTY_PROPERTIES, Properties as PropertiesRecord
from trio_mqttconn.aiomqtt._paho import (
    PacketTypes,
    Properties,
    ReasonCode,
    SubscribeOptions,
    is_subscribe_options,
    properties_from_record,
    properties_to_record,
    reason_code_from_engine,
    reason_code_to_engine,
    subscribe_options_from_subscription,
    to_subscribe_options,
    to_topic_subscription,
)


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


# ------------------------------------------------------------------------ PacketTypes


def test_packet_types_have_pahos_numbers_and_names() -> None:
    assert (PacketTypes.CONNECT, PacketTypes.PUBLISH, PacketTypes.AUTH) == (1, 3, 15)
    assert PacketTypes.WILLMESSAGE == 99
    assert list(PacketTypes.indexes) == list(range(1, 16))
    assert PacketTypes.Names[PacketTypes.PUBLISH] == "Publish"
    assert PacketTypes.Names[PacketTypes.UNSUBACK] == "Unsuback"
    assert len(PacketTypes.Names) == 16


# ------------------------------------------------------------------------- ReasonCode

# (packet type, value, paho's name): facts from paho-mqtt 2.2's table.
NAMES = [
    (PacketTypes.CONNACK, 0, "Success"),
    (PacketTypes.DISCONNECT, 0, "Normal disconnection"),
    (PacketTypes.SUBACK, 0, "Granted QoS 0"),
    (PacketTypes.SUBACK, 1, "Granted QoS 1"),
    (PacketTypes.SUBACK, 2, "Granted QoS 2"),
    (PacketTypes.DISCONNECT, 4, "Disconnect with will message"),
    (PacketTypes.PUBACK, 16, "No matching subscribers"),
    (PacketTypes.UNSUBACK, 17, "No subscription found"),
    (PacketTypes.AUTH, 24, "Continue authentication"),
    (PacketTypes.AUTH, 25, "Re-authenticate"),
    (PacketTypes.SUBACK, 128, "Unspecified error"),
    (PacketTypes.CONNACK, 129, "Malformed packet"),
    (PacketTypes.DISCONNECT, 130, "Protocol error"),
    (PacketTypes.PUBREC, 131, "Implementation specific error"),
    (PacketTypes.CONNACK, 132, "Unsupported protocol version"),
    (PacketTypes.CONNACK, 133, "Client identifier not valid"),
    (PacketTypes.CONNACK, 134, "Bad user name or password"),
    (PacketTypes.SUBACK, 135, "Not authorized"),
    (PacketTypes.CONNACK, 136, "Server unavailable"),
    (PacketTypes.CONNACK, 137, "Server busy"),
    (PacketTypes.CONNACK, 138, "Banned"),
    (PacketTypes.DISCONNECT, 139, "Server shutting down"),
    (PacketTypes.CONNACK, 140, "Bad authentication method"),
    (PacketTypes.DISCONNECT, 141, "Keep alive timeout"),
    (PacketTypes.DISCONNECT, 142, "Session taken over"),
    (PacketTypes.SUBACK, 143, "Topic filter invalid"),
    (PacketTypes.PUBACK, 144, "Topic name invalid"),
    (PacketTypes.SUBACK, 145, "Packet identifier in use"),
    (PacketTypes.PUBCOMP, 146, "Packet identifier not found"),
    (PacketTypes.DISCONNECT, 147, "Receive maximum exceeded"),
    (PacketTypes.DISCONNECT, 148, "Topic alias invalid"),
    (PacketTypes.CONNACK, 149, "Packet too large"),
    (PacketTypes.DISCONNECT, 150, "Message rate too high"),
    (PacketTypes.SUBACK, 151, "Quota exceeded"),
    (PacketTypes.DISCONNECT, 152, "Administrative action"),
    (PacketTypes.PUBACK, 153, "Payload format invalid"),
    (PacketTypes.CONNACK, 154, "Retain not supported"),
    (PacketTypes.CONNACK, 155, "QoS not supported"),
    (PacketTypes.CONNACK, 156, "Use another server"),
    (PacketTypes.CONNACK, 157, "Server moved"),
    (PacketTypes.SUBACK, 158, "Shared subscription not supported"),
    (PacketTypes.CONNACK, 159, "Connection rate exceeded"),
    (PacketTypes.DISCONNECT, 160, "Maximum connect time"),
    (PacketTypes.SUBACK, 161, "Subscription identifiers not supported"),
    (PacketTypes.SUBACK, 162, "Wildcard subscription not supported"),
]


@pytest.mark.parametrize(("packet_type", "value", "name"), NAMES)
def test_reason_code_names_are_pahos(packet_type: int, value: int, name: str) -> None:
    code = ReasonCode(packet_type, identifier=value)
    assert code.value == value
    assert str(code) == name
    assert code.getName() == name
    assert code.json() == name
    assert ReasonCode(packet_type, name).value == value
    assert code.pack() == bytearray([value])
    assert code.is_failure is (value >= 0x80)


def test_reason_code_every_engine_code_has_a_name() -> None:
    for code in EngineReasonCode:
        assert str(reason_code_from_engine(code, PacketTypes.DISCONNECT))


def test_reason_code_repr_names_packet_and_code() -> None:
    assert repr(ReasonCode(PacketTypes.SUBACK, identifier=1)) == (
        "ReasonCode(Suback, 'Granted QoS 1')"
    )
    assert repr(ReasonCode(PacketTypes.CONNACK)) == "ReasonCode(Connack, 'Success')"


def test_reason_code_default_is_success_or_normal_disconnection() -> None:
    assert str(ReasonCode(PacketTypes.PUBACK)) == "Success"
    assert str(ReasonCode(PacketTypes.DISCONNECT)) == "Normal disconnection"


def test_reason_code_compares_with_ints_names_and_codes() -> None:
    code = ReasonCode(PacketTypes.SUBACK, identifier=1)
    assert code == 1
    assert code == "Granted QoS 1"
    assert code == ReasonCode(PacketTypes.SUBACK, identifier=1)
    assert code == EngineReasonCode.GRANTED_QOS_1
    assert code != 2
    assert code != "Granted QoS 2"
    assert code != 1.5
    assert code < 2
    assert code < ReasonCode(PacketTypes.SUBACK, identifier=2)
    assert code >= 1
    assert ReasonCode(PacketTypes.SUBACK, identifier=0x80) > code
    with pytest.raises(TypeError):
        assert code < "x"


def test_reason_code_is_unhashable_like_pahos() -> None:
    with pytest.raises(TypeError):
        hash(ReasonCode(PacketTypes.PUBACK))


def test_reason_code_rejects_unknown_values_and_names() -> None:
    with pytest.raises(KeyError, match="7 is not a reason code"):
        ReasonCode(PacketTypes.PUBACK, identifier=7)
    with pytest.raises(
        ValueError,
        match=exactly(
            "reason code 134 does not apply to packet type Puback; "
            "see ReasonCode.names for valid codes"
        ),
    ):
        ReasonCode(PacketTypes.PUBACK, identifier=134)
    with pytest.raises(
        KeyError, match="'Banned' does not exist for packet type Puback"
    ):
        ReasonCode(PacketTypes.PUBACK, "Banned")


def test_reason_code_set_and_unpack() -> None:
    code = ReasonCode(PacketTypes.UNSUBACK)
    code.set("No subscription found")
    assert code.value == 17
    assert code.getId("Not authorized") == 135
    assert code.unpack(b"\x80rest") == 1
    assert str(code) == "Unspecified error"


def test_reason_code_from_engine_is_lenient_for_odd_broker_codes() -> None:
    # 0x86 is not listed for DISCONNECT, but a broker may still send it.
    code = reason_code_from_engine(EngineReasonCode.BAD_USER_NAME_OR_PASSWORD, 14)
    assert code.value == 0x86
    assert str(code) == "Bad user name or password"
    assert str(reason_code_from_engine(0x05, PacketTypes.PUBACK)) == (
        "Unknown reason code 5"
    )
    assert str(reason_code_from_engine(0, PacketTypes.PUBLISH)) == "Success"


def test_reason_code_to_engine() -> None:
    code = ReasonCode(PacketTypes.CONNACK, identifier=0x87)
    assert reason_code_to_engine(code) is EngineReasonCode.NOT_AUTHORIZED
    assert reason_code_to_engine(0x80) is EngineReasonCode.UNSPECIFIED_ERROR
    with pytest.raises(
        ValueError,
        match=exactly("7 is not an MQTT 5 reason code; see ReasonCode.names"),
    ):
        reason_code_to_engine(7)
    with pytest.raises(
        TypeError, match=exactly("expected a ReasonCode or an int, not str")
    ):
        reason_code_to_engine("Success")


# ------------------------------------------------------------------------- Properties

# paho's attribute names, in paho's order, with the identifiers (facts).
PAHO_PROPERTY_NAMES = {
    "Payload Format Indicator": 1,
    "Message Expiry Interval": 2,
    "Content Type": 3,
    "Response Topic": 8,
    "Correlation Data": 9,
    "Subscription Identifier": 11,
    "Session Expiry Interval": 17,
    "Assigned Client Identifier": 18,
    "Server Keep Alive": 19,
    "Authentication Method": 21,
    "Authentication Data": 22,
    "Request Problem Information": 23,
    "Will Delay Interval": 24,
    "Request Response Information": 25,
    "Response Information": 26,
    "Server Reference": 28,
    "Reason String": 31,
    "Receive Maximum": 33,
    "Topic Alias Maximum": 34,
    "Topic Alias": 35,
    "Maximum QoS": 36,
    "Retain Available": 37,
    "User Property": 38,
    "Maximum Packet Size": 39,
    "Wildcard Subscription Available": 40,
    "Subscription Identifier Available": 41,
    "Shared Subscription Available": 42,
}


def test_properties_names_are_pahos() -> None:
    assert dict(Properties.names) == PAHO_PROPERTY_NAMES
    assert list(Properties.names) == list(PAHO_PROPERTY_NAMES)
    assert {int(p) for p in PropertyId} == set(PAHO_PROPERTY_NAMES.values())


def test_properties_every_name_is_an_attribute_with_a_docstring() -> None:
    props = Properties(PacketTypes.CONNACK)
    for name in PAHO_PROPERTY_NAMES:
        compressed = name.replace(" ", "")
        assert not hasattr(props, compressed)
        assert getattr(Properties, compressed).__doc__
        assert props.getIdentFromName(compressed) == PAHO_PROPERTY_NAMES[name]
        assert props.getNameFromIdent(PAHO_PROPERTY_NAMES[name]) == name
    assert props.getIdentFromName("Nope") == -1
    assert props.getNameFromIdent(99) is None


def test_properties_publish_attributes() -> None:
    props = Properties(PacketTypes.PUBLISH)
    assert props.isEmpty()
    props.ContentType = "application/json"
    props.ResponseTopic = "reply/1"
    props.CorrelationData = bytearray(b"\x01\x02")
    props.MessageExpiryInterval = 60
    props.PayloadFormatIndicator = 1
    props.TopicAlias = 5
    props.SubscriptionIdentifier = 7
    assert props.ContentType == "application/json"
    assert props.ResponseTopic == "reply/1"
    assert props.CorrelationData == b"\x01\x02"
    assert type(props.CorrelationData) is bytes
    assert props.MessageExpiryInterval == 60
    assert props.SubscriptionIdentifier == [7]
    assert not props.isEmpty()
    assert getattr(props, "ReasonString", None) is None


def test_properties_user_property_appends_tuples_and_lists() -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("a", "1")
    props.UserProperty = [("b", "2"), ("a", "3")]
    assert props.UserProperty == [("a", "1"), ("b", "2"), ("a", "3")]
    props.SubscriptionIdentifier = [1, 2]
    props.SubscriptionIdentifier = 3
    assert props.SubscriptionIdentifier == [1, 2, 3]


def test_properties_accept_names_with_spaces() -> None:
    props = Properties(PacketTypes.PUBLISH)
    setattr(props, "Content Type", "text/plain")
    assert props.ContentType == "text/plain"
    delattr(props, "Content Type")
    assert not hasattr(props, "ContentType")


def test_properties_str_and_json_follow_paho() -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("k", "v")
    props.CorrelationData = b"\xab"
    props.ContentType = "c"
    assert (
        str(props)
        == "[ContentType : c, CorrelationData : b'\\xab', UserProperty : [('k', 'v')]]"
    )
    assert props.json() == {
        "ContentType": "c",
        "CorrelationData": "ab",
        "UserProperty": [("k", "v")],
    }
    assert repr(props).startswith("Properties(Publish, [ContentType : c")
    props.clear()
    assert str(props) == "[]"
    assert props.isEmpty()


def test_properties_allows_multiple() -> None:
    props = Properties(PacketTypes.PUBLISH)
    assert props.allowsMultiple("UserProperty")
    assert props.allowsMultiple("SubscriptionIdentifier")
    assert not props.allowsMultiple("ContentType")
    assert not props.allowsMultiple("Nope")


def test_properties_reject_unknown_names() -> None:
    props = Properties(PacketTypes.PUBLISH)
    with pytest.raises(
        AttributeError,
        match=exactly(
            "'ContentTyp' is not an MQTT 5 property; use one of "
            + ", ".join(name.replace(" ", "") for name in PAHO_PROPERTY_NAMES)
        ),
    ):
        props.ContentTyp = "x"


def test_properties_reject_properties_of_other_packets() -> None:
    props = Properties(PacketTypes.PUBLISH)
    with pytest.raises(
        ValueError,
        match=exactly(
            "property SessionExpiryInterval does not apply to packet type Publish; "
            "create Properties() for the packet that carries it"
        ),
    ):
        props.SessionExpiryInterval = 10
    will = Properties(PacketTypes.WILLMESSAGE)
    will.WillDelayInterval = 5
    with pytest.raises(ValueError, match="does not apply to packet type Will;"):
        will.TopicAlias = 1


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ReceiveMaximum", 0, "ReceiveMaximum must be in the range 1-65535, not 0"),
        ("TopicAlias", 65536, "TopicAlias must be in the range 1-65535, not 65536"),
        (
            "TopicAliasMaximum",
            -1,
            "TopicAliasMaximum must be in the range 0-65535, not -1",
        ),
        (
            "MaximumPacketSize",
            0,
            "MaximumPacketSize must be in the range 1-268435455, not 0",
        ),
        (
            "RequestProblemInformation",
            2,
            "RequestProblemInformation must be in the range 0-1, not 2",
        ),
        (
            "SessionExpiryInterval",
            2**32,
            "SessionExpiryInterval must be in the range 0-4294967295, not 4294967296",
        ),
    ],
)
def test_properties_reject_out_of_range_values(
    name: str, value: int, message: str
) -> None:
    props = Properties(
        PacketTypes.PUBLISH if name == "TopicAlias" else PacketTypes.CONNECT
    )
    with pytest.raises(ValueError, match=exactly(message)):
        setattr(props, name, value)


def test_properties_reject_out_of_range_subscription_identifier() -> None:
    props = Properties(PacketTypes.SUBSCRIBE)
    with pytest.raises(
        ValueError,
        match=exactly("SubscriptionIdentifier must be in the range 1-268435455, not 0"),
    ):
        props.SubscriptionIdentifier = 0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ContentType", 1, "ContentType must be a str, not int"),
        ("CorrelationData", "text", "CorrelationData must be bytes, not str"),
        (
            "MessageExpiryInterval",
            "60",
            "MessageExpiryInterval must be an int, not str",
        ),
        (
            "UserProperty",
            ("a", "b", "c"),
            "UserProperty entries must be (name, value) pairs of str, "
            "not ('a', 'b', 'c')",
        ),
        ("UserProperty", [("a", 1)], "UserProperty must be a str, not int"),
    ],
)
def test_properties_reject_wrong_types(name: str, value: object, message: str) -> None:
    props = Properties(PacketTypes.PUBLISH)
    with pytest.raises(TypeError, match=exactly(message)):
        setattr(props, name, value)


def test_properties_del_unset_raises_attribute_error() -> None:
    props = Properties(PacketTypes.PUBLISH)
    with pytest.raises(AttributeError):
        del props.ContentType


# ------------------------------------------------------ properties <-> engine record


class PahoLikeProperties:
    """Stands in for paho.mqtt.properties.Properties: plain attributes when set."""

    def __init__(self, packet_type: int) -> None:
        self.packetType = packet_type


def test_properties_to_record_from_ours() -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "text/plain"
    props.UserProperty = [("a", "1"), ("a", "2")]
    props.CorrelationData = b"id"
    props.SubscriptionIdentifier = 9
    props.MessageExpiryInterval = 30
    assert properties_to_record(props) == PropertiesRecord(
        content_type="text/plain",
        user_properties=(("a", "1"), ("a", "2")),
        correlation_data=b"id",
        subscription_identifiers=(9,),
        message_expiry_interval=30,
    )


def test_properties_to_record_from_pahos_object_by_attribute_names() -> None:
    paho = PahoLikeProperties(PacketTypes.CONNECT)
    paho.SessionExpiryInterval = 3600  # type: ignore[attr-defined]
    paho.ReceiveMaximum = 20  # type: ignore[attr-defined]
    paho.UserProperty = [("client", b"x")]  # type: ignore[attr-defined]
    paho.AuthenticationData = bytearray(b"\x00")  # type: ignore[attr-defined]
    paho.names = {"Session Expiry Interval": 17}  # type: ignore[attr-defined]
    assert properties_to_record(paho) == PropertiesRecord(
        session_expiry_interval=3600,
        receive_maximum=20,
        user_properties=(("client", "x"),),
        authentication_data=b"\x00",
    )


def test_properties_to_record_passes_through_none_and_records() -> None:
    assert properties_to_record(None) is EMPTY_PROPERTIES
    assert properties_to_record(Properties(PacketTypes.PUBLISH)) is EMPTY_PROPERTIES
    record = PropertiesRecord(content_type="x")
    assert properties_to_record(record) is record


def test_properties_to_record_rejects_other_objects() -> None:
    with pytest.raises(
        TypeError,
        match=exactly(
            "properties must be a Properties object (trio_mqttconn.aiomqtt or "
            "paho-mqtt) or None, not dict"
        ),
    ):
        properties_to_record({"ContentType": "x"})


def test_properties_to_record_checks_pahos_values() -> None:
    paho = PahoLikeProperties(PacketTypes.PUBLISH)
    paho.TopicAlias = 0  # type: ignore[attr-defined]
    with pytest.raises(
        ValueError, match=exactly("TopicAlias must be in the range 1-65535, not 0")
    ):
        properties_to_record(paho)


ALL_FIELDS = PropertiesRecord(
    payload_format_indicator=1,
    message_expiry_interval=2,
    content_type="ct",
    response_topic="rt",
    correlation_data=b"cd",
    subscription_identifiers=(11, 12),
    session_expiry_interval=17,
    assigned_client_identifier="aci",
    server_keep_alive=19,
    authentication_method="am",
    authentication_data=b"ad",
    request_problem_information=0,
    will_delay_interval=24,
    request_response_information=1,
    response_information="ri",
    server_reference="sr",
    reason_string="rs",
    receive_maximum=33,
    topic_alias_maximum=34,
    topic_alias=35,
    maximum_qos=1,
    retain_available=0,
    user_properties=(("a", "b"), ("a", "c")),
    maximum_packet_size=39,
    wildcard_subscription_available=1,
    subscription_identifier_available=0,
    shared_subscription_available=1,
)


def test_properties_round_trip_every_property() -> None:
    props = properties_from_record(ALL_FIELDS, PacketTypes.CONNACK)
    assert props.packetType == PacketTypes.CONNACK
    assert props.ContentType == "ct"
    assert props.SubscriptionIdentifier == [11, 12]
    assert props.UserProperty == [("a", "b"), ("a", "c")]
    assert props.WillDelayInterval == 24  # copied although CONNACK cannot carry it
    assert properties_to_record(props) == ALL_FIELDS
    assert len(props.json()) == len(PAHO_PROPERTY_NAMES)


def test_properties_from_empty_record() -> None:
    props = properties_from_record(EMPTY_PROPERTIES, PacketTypes.PUBLISH)
    assert props.isEmpty()
    assert str(props) == "[]"


# -------------------------------------------------------------------- SubscribeOptions


def test_subscribe_options_defaults_and_constants() -> None:
    options = SubscribeOptions()
    assert (options.QoS, options.noLocal, options.retainAsPublished) == (
        0,
        False,
        False,
    )
    assert options.retainHandling == SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE == 0
    assert SubscribeOptions.RETAIN_SEND_IF_NEW_SUB == 1
    assert SubscribeOptions.RETAIN_DO_NOT_SEND == 2


@pytest.mark.parametrize(
    ("qos", "no_local", "rap", "rh"),
    list(itertools.product(range(3), (False, True), (False, True), range(3))),
)
def test_subscribe_options_wire_byte_and_text(
    qos: int, no_local: bool, rap: bool, rh: int
) -> None:
    options = SubscribeOptions(qos, no_local, rap, rh)
    byte = rh << 4 | rap << 3 | no_local << 2 | qos
    assert options.pack() == bytes([byte])
    assert (
        str(options)
        == repr(options)
        == (
            f"{{QoS={qos}, noLocal={no_local}, "
            f"retainAsPublished={rap}, retainHandling={rh}}}"
        )
    )
    assert options.json() == {
        "QoS": qos,
        "noLocal": no_local,
        "retainAsPublished": rap,
        "retainHandling": rh,
    }
    decoded = SubscribeOptions()
    assert decoded.unpack(bytes([byte])) == 1
    assert str(decoded) == str(options)


def test_subscribe_options_reject_bad_values() -> None:
    with pytest.raises(ValueError, match=r"^qos must be 0, 1 or 2, not 3$"):
        SubscribeOptions(qos=3)
    with pytest.raises(ValueError, match=r"^retainHandling must be 0, 1 or 2, not 3$"):
        SubscribeOptions(retainHandling=3)
    options = SubscribeOptions()
    with pytest.raises(ValueError, match=r"^qos must be 0, 1 or 2, not '1'$"):
        options.QoS = "1"  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"^retainHandling must be 0, 1 or 2, not 3$"):
        options.unpack(b"\x30")
    with pytest.raises(
        AttributeError,
        match=exactly(
            "'qos' is not a subscribe option; use one of "
            "QoS, noLocal, retainAsPublished, retainHandling"
        ),
    ):
        options.qos = 1


class PahoLikeSubscribeOptions:
    """Stands in for paho.mqtt.subscribeoptions.SubscribeOptions."""

    def __init__(self) -> None:
        self.QoS = 2
        self.noLocal = True
        self.retainAsPublished = False
        self.retainHandling = 1


def test_subscribe_options_duck_typing() -> None:
    paho = PahoLikeSubscribeOptions()
    assert is_subscribe_options(paho)
    assert is_subscribe_options(SubscribeOptions())
    assert not is_subscribe_options(1)
    ours = to_subscribe_options(paho)
    assert (
        str(ours) == "{QoS=2, noLocal=True, retainAsPublished=False, retainHandling=1}"
    )
    same = SubscribeOptions()
    assert to_subscribe_options(same) is same
    with pytest.raises(TypeError, match=r"^expected SubscribeOptions, not int$"):
        to_subscribe_options(1)


def test_subscribe_options_to_topic_subscription_and_back() -> None:
    subscription = to_topic_subscription("a/#", SubscribeOptions(1, True, True, 2))
    assert subscription == TopicSubscription(
        filter="a/#",
        qos=QoS.AT_LEAST_ONCE,
        no_local=True,
        retain_as_published=True,
        retain_handling=RetainHandling.DO_NOT_SEND,
    )
    back = subscribe_options_from_subscription(subscription)
    assert (
        str(back) == "{QoS=1, noLocal=True, retainAsPublished=True, retainHandling=2}"
    )
    from_paho = to_topic_subscription("b", PahoLikeSubscribeOptions())
    assert from_paho.qos is QoS.EXACTLY_ONCE
    assert from_paho.retain_handling is RetainHandling.SEND_IF_NEW_SUBSCRIPTION


def test_reason_code_repr_with_unknown_packet_type() -> None:
    assert repr(reason_code_from_engine(0, 42)) == "ReasonCode(Unknown, 'Success')"


def test_properties_packet_type_can_be_changed() -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.packetType = PacketTypes.CONNECT
    props.SessionExpiryInterval = 5
    assert props.SessionExpiryInterval == 5
