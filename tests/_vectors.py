"""Golden packets: bytes written by hand from the MQTT 3.1.1 and 5.0 specifications.

Each entry is ``(id, version, bytes, packet)``. The bytes were assembled field by
field from the packet layouts of the OASIS texts (3.1.1 sections 3.x, 5.0 sections
3.x), reusing the specifications' own non-normative examples where they give one:
the CONNECT variable header with flags 0xCE and keep alive 10 (3.1.1 3.1.2.10,
5.0 3.1.2.12), the PUBLISH variable header "a/b" / packet id 10 (3.3.2.3), the
SUBSCRIBE payload "a/b" QoS 1 + "c/d" QoS 2 (3.8.3), the SUBACK payload (3.9.3),
the UNSUBSCRIBE payload (3.10.3), the UTF-8 example "A\\U0002A6D4" (1.5.3 / 1.5.4)
and the variable byte integer table (2.2.3 / 1.5.5). They are NOT produced by our
encoder; the tests check that encoder and decoder agree with them.

``VECTORS`` encode and decode both ways. ``DECODE_ONLY`` are valid encodings that
our encoder writes differently (it always picks the shortest form and orders
properties by identifier).
"""

from __future__ import annotations

from trio_mqttconn._enums import ProtocolVersion, QoS, ReasonCode, RetainHandling
from trio_mqttconn._packets import (
    AuthPacket,
    ConnAckPacket,
    ConnectPacket,
    DisconnectPacket,
    Packet,
    PingReqPacket,
    PingRespPacket,
    PubAckPacket,
    PubCompPacket,
    PublishPacket,
    PubRecPacket,
    PubRelPacket,
    SubAckPacket,
    SubscribePacket,
    TopicSubscription,
    UnsubAckPacket,
    UnsubscribePacket,
    Will,
)
from trio_mqttconn._properties import Properties

__all__ = ["DECODE_ONLY", "VARINTS", "VECTORS", "Vector", "h"]

Vector = tuple[str, ProtocolVersion, bytes, Packet]

V311 = ProtocolVersion.V311
V5 = ProtocolVersion.V5
RC = ReasonCode


def h(text: str) -> bytes:
    """Hex with spaces and ``|`` separators allowed, for readable layouts."""
    return bytes.fromhex(text.replace("|", " "))


# Variable byte integers: the table of 3.1.1 2.2.3 / 5.0 1.5.5, edges of each size.
VARINTS: list[tuple[int, bytes]] = [
    (0, h("00")),
    (127, h("7F")),
    (128, h("80 01")),
    (16_383, h("FF 7F")),
    (16_384, h("80 80 01")),
    (2_097_151, h("FF FF 7F")),
    (2_097_152, h("80 80 80 01")),
    (268_435_455, h("FF FF FF 7F")),
]

_A_B = "00 03 61 2F 62"  # UTF-8 string "a/b"
_C_D = "00 03 63 2F 64"  # UTF-8 string "c/d"
_MQTT = "00 04 4D 51 54 54"  # protocol name "MQTT"

VECTORS: list[Vector] = [
    # ------------------------------------------------------------ MQTT 3.1.1
    (
        # 3.1.2.10 example: user name, password, will QoS 1, will flag, clean
        # session (flags 0xCE), keep alive 10; payload in the 3.1.3 order.
        "v311-connect-spec-example",
        V311,
        h(
            f"10 22 | {_MQTT} 04 CE 00 0A | 00 02 63 31 | 00 03 77 2F 74"
            " | 00 03 62 79 65 | 00 04 75 73 65 72 | 00 02 70 77"
        ),
        ConnectPacket(
            client_id="c1",
            protocol_version=V311,
            clean_start=True,
            keepalive=10,
            username="user",
            password=b"pw",
            will=Will(topic="w/t", payload=b"bye", qos=QoS.AT_LEAST_ONCE),
        ),
    ),
    (
        "v311-connect-minimal",
        V311,
        h(f"10 0C | {_MQTT} 04 02 00 3C | 00 00"),
        ConnectPacket(client_id="", protocol_version=V311, keepalive=60),
    ),
    (
        # Will QoS 2 + will retain, no credentials, clean session 0.
        "v311-connect-will-retain",
        V311,
        h(f"10 14 | {_MQTT} 04 34 FF FF | 00 01 78 | 00 01 74 | 00 02 00 FF"),
        ConnectPacket(
            client_id="x",
            protocol_version=V311,
            clean_start=False,
            keepalive=65535,
            will=Will(
                topic="t", payload=b"\x00\xff", qos=QoS.EXACTLY_ONCE, retain=True
            ),
        ),
    ),
    ("v311-connack-accepted", V311, h("20 02 00 00"), ConnAckPacket()),
    (
        "v311-connack-session-present",
        V311,
        h("20 02 01 00"),
        ConnAckPacket(session_present=True),
    ),
    # 3.2.2.3 return codes 1..5, mapped onto the MQTT 5 reason codes.
    (
        "v311-connack-unacceptable-protocol-version",
        V311,
        h("20 02 00 01"),
        ConnAckPacket(reason_code=RC.UNSUPPORTED_PROTOCOL_VERSION),
    ),
    (
        "v311-connack-identifier-rejected",
        V311,
        h("20 02 00 02"),
        ConnAckPacket(reason_code=RC.CLIENT_IDENTIFIER_NOT_VALID),
    ),
    (
        "v311-connack-server-unavailable",
        V311,
        h("20 02 00 03"),
        ConnAckPacket(reason_code=RC.SERVER_UNAVAILABLE),
    ),
    (
        "v311-connack-bad-user-name-or-password",
        V311,
        h("20 02 00 04"),
        ConnAckPacket(reason_code=RC.BAD_USER_NAME_OR_PASSWORD),
    ),
    (
        "v311-connack-not-authorized",
        V311,
        h("20 02 00 05"),
        ConnAckPacket(reason_code=RC.NOT_AUTHORIZED),
    ),
    (
        "v311-publish-qos0",
        V311,
        h(f"30 0A | {_A_B} | 68 65 6C 6C 6F"),
        PublishPacket(topic="a/b", payload=b"hello"),
    ),
    (
        # 3.3.2.3 example variable header: "a/b", packet identifier 10.
        "v311-publish-spec-example-qos1-retain",
        V311,
        h(f"33 09 | {_A_B} 00 0A | 68 69"),
        PublishPacket(
            topic="a/b", payload=b"hi", qos=QoS.AT_LEAST_ONCE, retain=True, packet_id=10
        ),
    ),
    (
        "v311-publish-qos2-dup-empty-payload",
        V311,
        h("3C 05 | 00 01 74 12 34"),
        PublishPacket(topic="t", qos=QoS.EXACTLY_ONCE, dup=True, packet_id=0x1234),
    ),
    (
        # 1.5.3 example string: "A" + U+2A6D4 = 41 F0 AA 9B 94.
        "v311-publish-utf8-spec-example",
        V311,
        h("30 07 | 00 05 41 F0 AA 9B 94"),
        PublishPacket(topic="A\U0002a6d4"),
    ),
    (
        # [v311:MQTT-1.5.3-3] a leading BOM is kept, not stripped.
        "v311-publish-bom-kept",
        V311,
        h("30 06 | 00 04 EF BB BF 61"),
        PublishPacket(topic="\ufeffa"),
    ),
    (
        # Remaining length 128 takes two bytes (80 01).
        "v311-publish-two-byte-remaining-length",
        V311,
        h("30 80 01 | 00 01 74") + b"x" * 125,
        PublishPacket(topic="t", payload=b"x" * 125),
    ),
    (
        # Remaining length 4102 = 0x86 0x20 (6 + 32 * 128).
        "v311-publish-4k-payload",
        V311,
        h("30 86 20 | 00 01 74") + b"p" * 4099,
        PublishPacket(topic="t", payload=b"p" * 4099),
    ),
    ("v311-puback", V311, h("40 02 00 0A"), PubAckPacket(packet_id=10)),
    ("v311-pubrec", V311, h("50 02 00 0A"), PubRecPacket(packet_id=10)),
    ("v311-pubrel", V311, h("62 02 00 0A"), PubRelPacket(packet_id=10)),
    ("v311-pubcomp", V311, h("70 02 FF FF"), PubCompPacket(packet_id=65535)),
    (
        # 3.8.3 example payload: "a/b" QoS 1, "c/d" QoS 2.
        "v311-subscribe-spec-example",
        V311,
        h(f"82 0E | 00 0A | {_A_B} 01 | {_C_D} 02"),
        SubscribePacket(
            packet_id=10,
            subscriptions=(
                TopicSubscription(filter="a/b", qos=QoS.AT_LEAST_ONCE),
                TopicSubscription(filter="c/d", qos=QoS.EXACTLY_ONCE),
            ),
        ),
    ),
    (
        # 3.9.3 example payload: success QoS 0, success QoS 2, failure.
        "v311-suback-spec-example",
        V311,
        h("90 05 | 00 0A | 00 02 80"),
        SubAckPacket(
            packet_id=10,
            reason_codes=(RC.GRANTED_QOS_0, RC.GRANTED_QOS_2, RC.UNSPECIFIED_ERROR),
        ),
    ),
    (
        # 3.10.3 example payload: "a/b", "c/d".
        "v311-unsubscribe-spec-example",
        V311,
        h(f"A2 0C | 00 0A | {_A_B} | {_C_D}"),
        UnsubscribePacket(packet_id=10, filters=("a/b", "c/d")),
    ),
    ("v311-unsuback", V311, h("B0 02 00 0A"), UnsubAckPacket(packet_id=10)),
    ("v311-pingreq", V311, h("C0 00"), PingReqPacket()),
    ("v311-pingresp", V311, h("D0 00"), PingRespPacket()),
    ("v311-disconnect", V311, h("E0 00"), DisconnectPacket()),
    # ------------------------------------------------------------ MQTT 5.0
    (
        # 3.1.2.12 example variable header: flags 0xCE, keep alive 10, Session
        # Expiry Interval 10; will properties with a Will Delay Interval of 5.
        "v5-connect-spec-example",
        V5,
        h(
            f"10 2E | {_MQTT} 05 CE 00 0A | 05 11 00 00 00 0A | 00 02 63 31"
            " | 05 18 00 00 00 05 | 00 03 77 2F 74 | 00 03 62 79 65"
            " | 00 04 75 73 65 72 | 00 02 70 77"
        ),
        ConnectPacket(
            client_id="c1",
            keepalive=10,
            username="user",
            password=b"pw",
            will=Will(
                topic="w/t",
                payload=b"bye",
                qos=QoS.AT_LEAST_ONCE,
                properties=Properties(will_delay_interval=5),
            ),
            properties=Properties(session_expiry_interval=10),
        ),
    ),
    (
        # [v5:MQTT-2.2.2-1] no properties: a property length of 0 is still sent.
        "v5-connect-minimal",
        V5,
        h(f"10 0D | {_MQTT} 05 02 00 3C | 00 | 00 00"),
        ConnectPacket(client_id="", keepalive=60),
    ),
    (
        # A password without a user name is allowed in 5.0 (flags 0x42).
        "v5-connect-password-without-username",
        V5,
        h(f"10 11 | {_MQTT} 05 42 00 3C | 00 | 00 00 | 00 02 70 77"),
        ConnectPacket(client_id="", password=b"pw"),
    ),
    (
        # Every CONNECT property, by identifier: 15 16 17 19 21 22 26 27.
        "v5-connect-properties",
        V5,
        h(
            f"10 30 | {_MQTT} 05 00 00 00 | 23"
            " | 15 00 05 50 4C 41 49 4E | 16 00 02 68 69 | 17 00 | 19 01"
            " | 21 00 14 | 22 00 0A | 26 00 01 6B 00 01 76 | 27 00 00 10 00"
            " | 00 00"
        ),
        ConnectPacket(
            client_id="",
            clean_start=False,
            keepalive=0,
            properties=Properties(
                authentication_method="PLAIN",
                authentication_data=b"hi",
                request_problem_information=0,
                request_response_information=1,
                receive_maximum=20,
                topic_alias_maximum=10,
                user_properties=(("k", "v"),),
                maximum_packet_size=4096,
            ),
        ),
    ),
    (
        # Every will property: 01 02 03 08 09 18 26; will retain, QoS 0.
        "v5-connect-will-properties",
        V5,
        h(
            f"10 39 | {_MQTT} 05 26 00 00 | 00 | 00 01 63 | 25"
            " | 01 01 | 02 00 00 00 3C | 03 00 04 74 65 78 74 | 08 00 03 72 2F 74"
            " | 09 00 02 01 02 | 18 00 00 01 00 | 26 00 01 61 00 01 62"
            " | 00 01 77 | 00 00"
        ),
        ConnectPacket(
            client_id="c",
            keepalive=0,
            will=Will(
                topic="w",
                retain=True,
                properties=Properties(
                    payload_format_indicator=1,
                    message_expiry_interval=60,
                    content_type="text",
                    response_topic="r/t",
                    correlation_data=b"\x01\x02",
                    will_delay_interval=256,
                    user_properties=(("a", "b"),),
                ),
            ),
        ),
    ),
    ("v5-connack-success", V5, h("20 03 00 00 00"), ConnAckPacket()),
    (
        # Every CONNACK property, by identifier (User Property 0x26 before 0x27).
        "v5-connack-properties",
        V5,
        h(
            "20 46 | 01 00 | 43 | 11 00 00 00 3C | 12 00 06 61 75 74 6F 2D 31"
            " | 13 00 1E | 15 00 01 4D | 16 00 01 44 | 1A 00 02 72 2F"
            " | 1C 00 01 73 | 1F 00 02 6F 6B | 21 00 0A | 22 00 05 | 24 01 | 25 00"
            " | 26 00 01 6B 00 01 76 | 27 00 01 00 00 | 28 01 | 29 00 | 2A 01"
        ),
        ConnAckPacket(
            session_present=True,
            properties=Properties(
                session_expiry_interval=60,
                assigned_client_identifier="auto-1",
                server_keep_alive=30,
                authentication_method="M",
                authentication_data=b"D",
                response_information="r/",
                server_reference="s",
                reason_string="ok",
                receive_maximum=10,
                topic_alias_maximum=5,
                maximum_qos=1,
                retain_available=0,
                user_properties=(("k", "v"),),
                maximum_packet_size=65536,
                wildcard_subscription_available=1,
                subscription_identifier_available=0,
                shared_subscription_available=1,
            ),
        ),
    ),
    (
        "v5-connack-not-authorized",
        V5,
        h("20 03 00 87 00"),
        ConnAckPacket(reason_code=RC.NOT_AUTHORIZED),
    ),
    (
        "v5-connack-use-another-server",
        V5,
        h("20 0A | 00 9C | 07 1C 00 04 68 6F 73 74"),
        ConnAckPacket(
            reason_code=RC.USE_ANOTHER_SERVER,
            properties=Properties(server_reference="host"),
        ),
    ),
    (
        # 3.3.2.3 example: "a/b", packet identifier 10, property length 0.
        "v5-publish-spec-example-qos1",
        V5,
        h(f"32 0A | {_A_B} 00 0A | 00 | 68 69"),
        PublishPacket(topic="a/b", payload=b"hi", qos=QoS.AT_LEAST_ONCE, packet_id=10),
    ),
    (
        "v5-publish-qos0",
        V5,
        h(f"30 0B | {_A_B} | 00 | 68 65 6C 6C 6F"),
        PublishPacket(topic="a/b", payload=b"hello"),
    ),
    (
        # QoS 2, DUP, RETAIN; every PUBLISH property, two subscription ids.
        "v5-publish-properties",
        V5,
        h(
            "3D 30 | 00 01 74 | 01 02 | 28 | 01 01 | 02 00 00 00 3C"
            " | 03 00 04 74 65 78 74 | 08 00 03 72 2F 74 | 09 00 02 01 02"
            " | 0B 05 | 0B 80 01 | 23 00 01 | 26 00 01 61 00 01 62 | 7B 7D"
        ),
        PublishPacket(
            topic="t",
            payload=b"{}",
            qos=QoS.EXACTLY_ONCE,
            retain=True,
            dup=True,
            packet_id=0x0102,
            properties=Properties(
                payload_format_indicator=1,
                message_expiry_interval=60,
                content_type="text",
                response_topic="r/t",
                correlation_data=b"\x01\x02",
                subscription_identifiers=(5, 128),
                topic_alias=1,
                user_properties=(("a", "b"),),
            ),
        ),
    ),
    (
        # A zero-length topic with a Topic Alias (5.0 3.3.2.3.4).
        "v5-publish-topic-alias-only",
        V5,
        h("30 06 | 00 00 | 03 23 00 03"),
        PublishPacket(topic="", properties=Properties(topic_alias=3)),
    ),
    (
        # Two user properties with the same name, order kept.
        "v5-publish-repeated-user-property",
        V5,
        h(
            "30 14 | 00 01 74 | 0E | 26 00 01 6B 00 01 31 | 26 00 01 6B 00 01 32"
            " | 78 78"
        ),
        PublishPacket(
            topic="t",
            payload=b"xx",
            properties=Properties(user_properties=(("k", "1"), ("k", "2"))),
        ),
    ),
    # 3.4.2.1: the reason code and property length may be left out.
    ("v5-puback", V5, h("40 02 00 0A"), PubAckPacket(packet_id=10)),
    (
        "v5-puback-no-matching-subscribers",
        V5,
        h("40 03 00 0A 10"),
        PubAckPacket(packet_id=10, reason_code=RC.NO_MATCHING_SUBSCRIBERS),
    ),
    (
        "v5-pubrec-reason-string",
        V5,
        h("50 0A | 00 0A | 80 | 06 1F 00 03 65 72 72"),
        PubRecPacket(
            packet_id=10,
            reason_code=RC.UNSPECIFIED_ERROR,
            properties=Properties(reason_string="err"),
        ),
    ),
    ("v5-pubrel", V5, h("62 02 00 0A"), PubRelPacket(packet_id=10)),
    (
        "v5-pubrel-packet-identifier-not-found",
        V5,
        h("62 03 00 0A 92"),
        PubRelPacket(packet_id=10, reason_code=RC.PACKET_IDENTIFIER_NOT_FOUND),
    ),
    (
        "v5-pubcomp-user-property",
        V5,
        h("70 0B | 00 0A | 00 | 07 26 00 01 6B 00 01 76"),
        PubCompPacket(
            packet_id=10, properties=Properties(user_properties=(("k", "v"),))
        ),
    ),
    (
        # 3.8.3 example payload with a property length of 0.
        "v5-subscribe-spec-example",
        V5,
        h(f"82 0F | 00 0A | 00 | {_A_B} 01 | {_C_D} 02"),
        SubscribePacket(
            packet_id=10,
            subscriptions=(
                TopicSubscription(filter="a/b", qos=QoS.AT_LEAST_ONCE),
                TopicSubscription(filter="c/d", qos=QoS.EXACTLY_ONCE),
            ),
        ),
    ),
    (
        # Subscription Identifier 10; options QoS 2, No Local, Retain As
        # Published, Retain Handling 2 = 0b0010_1110.
        "v5-subscribe-options",
        V5,
        h("82 0B | 00 01 | 02 0B 0A | 00 03 61 2F 2B 2E"),
        SubscribePacket(
            packet_id=1,
            subscriptions=(
                TopicSubscription(
                    filter="a/+",
                    qos=QoS.EXACTLY_ONCE,
                    no_local=True,
                    retain_as_published=True,
                    retain_handling=RetainHandling.DO_NOT_SEND,
                ),
            ),
            properties=Properties(subscription_identifiers=(10,)),
        ),
    ),
    (
        "v5-suback",
        V5,
        h("90 06 | 00 0A | 00 | 00 01 87"),
        SubAckPacket(
            packet_id=10,
            reason_codes=(RC.GRANTED_QOS_0, RC.GRANTED_QOS_1, RC.NOT_AUTHORIZED),
        ),
    ),
    (
        "v5-unsubscribe-spec-example",
        V5,
        h(f"A2 0D | 00 0A | 00 | {_A_B} | {_C_D}"),
        UnsubscribePacket(packet_id=10, filters=("a/b", "c/d")),
    ),
    (
        "v5-unsuback",
        V5,
        h("B0 05 | 00 0A | 00 | 00 11"),
        UnsubAckPacket(
            packet_id=10, reason_codes=(RC.SUCCESS, RC.NO_SUBSCRIPTION_EXISTED)
        ),
    ),
    ("v5-pingreq", V5, h("C0 00"), PingReqPacket()),
    ("v5-pingresp", V5, h("D0 00"), PingRespPacket()),
    # 3.14.2.1: remaining length 0 means Normal disconnection, no properties.
    ("v5-disconnect", V5, h("E0 00"), DisconnectPacket()),
    (
        "v5-disconnect-with-will",
        V5,
        h("E0 01 04"),
        DisconnectPacket(reason_code=RC.DISCONNECT_WITH_WILL_MESSAGE),
    ),
    (
        "v5-disconnect-server-moved",
        V5,
        h("E0 0D | 9D | 0B 11 00 00 00 00 1C 00 03 68 3A 31"),
        DisconnectPacket(
            reason_code=RC.SERVER_MOVED,
            properties=Properties(session_expiry_interval=0, server_reference="h:1"),
        ),
    ),
    ("v5-auth", V5, h("F0 00"), AuthPacket()),
    (
        "v5-auth-continue",
        V5,
        h("F0 0F | 18 | 0D 15 00 05 53 43 52 41 4D 16 00 02 AB CD"),
        AuthPacket(
            reason_code=RC.CONTINUE_AUTHENTICATION,
            properties=Properties(
                authentication_method="SCRAM", authentication_data=b"\xab\xcd"
            ),
        ),
    ),
]

DECODE_ONLY: list[Vector] = [
    (
        # Success with an empty property block spelled out (remaining length 4).
        "v5-puback-long-form",
        V5,
        h("40 04 00 0A 00 00"),
        PubAckPacket(packet_id=10),
    ),
    (
        "v5-puback-success-reason-only",
        V5,
        h("40 03 00 0A 00"),
        PubAckPacket(packet_id=10),
    ),
    ("v5-disconnect-long-form", V5, h("E0 02 00 00"), DisconnectPacket()),
    ("v5-auth-long-form", V5, h("F0 02 00 00"), AuthPacket()),
    (
        "v5-auth-reason-only",
        V5,
        h("F0 01 19"),
        AuthPacket(reason_code=RC.RE_AUTHENTICATE),
    ),
    (
        # Properties in another order than identifier order decode the same.
        "v5-connect-properties-any-order",
        V5,
        h(f"10 15 | {_MQTT} 05 02 00 00 | 08 | 21 00 14 | 11 00 00 00 0A | 00 00"),
        ConnectPacket(
            client_id="",
            keepalive=0,
            properties=Properties(receive_maximum=20, session_expiry_interval=10),
        ),
    ),
]
