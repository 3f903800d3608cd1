"""ConnAckInfo.response_information: the broker's Response Information (#11).

MQTT 5, section 3.2.2.3.15: CONNACK property 0x1A, a UTF-8 string the broker
may send when CONNECT carried Request Response Information (0x17) = 1
(section 3.1.2.11.7); a basis for response topics (section 4.10.1).
"""

from __future__ import annotations

import pytest

from tests._broker_session import ScriptedBroker
from trio_mqttconn._enums import ProtocolVersion, QoS
from trio_mqttconn._events import ConnAckInfo, Connected
from trio_mqttconn._packets import ConnectPacket
from trio_mqttconn._properties import Properties
from trio_mqttconn._session import ClientSession

V5 = ProtocolVersion.V5
V311 = ProtocolVersion.V311

# CONNACK: type 0x20, remaining length 9, flags 0, reason 0, properties length 6,
# Response Information (0x1A) "r/x" as a UTF-8 string (length 3).
CONNACK_WITH_RESPONSE_INFORMATION = bytes.fromhex("2009 00 00 06 1a 0003") + b"r/x"
# CONNECT of client id "c" asking for it: properties length 2, 0x19 (Request
# Response Information) = 1.
CONNECT_ASKING = (
    bytes.fromhex("1010 0004")
    + b"MQTT"
    + bytes.fromhex("05 02 003c 02 19 01 0001")
    + b"c"
)


def test_connack_response_information_golden_bytes() -> None:
    session = ClientSession(protocol_version=V5)
    connect = ConnectPacket(
        client_id="c",
        keepalive=60,
        properties=Properties(request_response_information=1),
    )
    assert session.connect(connect) == CONNECT_ASKING
    session.receive_data(CONNACK_WITH_RESPONSE_INFORMATION)
    (event,) = session.events()
    assert isinstance(event, Connected)
    assert event.info is not None
    assert event.info.response_information == "r/x"
    assert event.properties.response_information == "r/x"


@pytest.mark.parametrize("split", range(1, len(CONNACK_WITH_RESPONSE_INFORMATION)))
def test_connack_response_information_split_at_every_offset(split: int) -> None:
    session = ClientSession(protocol_version=V5)
    session.connect(ConnectPacket(client_id="c", keepalive=60))
    session.receive_data(CONNACK_WITH_RESPONSE_INFORMATION[:split])
    assert list(session.events()) == []
    session.receive_data(CONNACK_WITH_RESPONSE_INFORMATION[split:])
    (event,) = session.events()
    assert isinstance(event, Connected)
    assert event.info is not None
    assert event.info.response_information == "r/x"


def test_connack_response_information_absent_is_none() -> None:
    session = ClientSession(protocol_version=V5)
    connected = ScriptedBroker(V5).handshake(session)
    assert connected.info is not None
    assert connected.info.response_information is None


def test_connack_response_information_none_on_mqtt311() -> None:
    session = ClientSession(protocol_version=V311)
    connected = ScriptedBroker(V311).handshake(session)
    assert connected.info is not None
    assert connected.info.response_information is None


def test_connack_info_response_information_defaults_to_none() -> None:
    # Records made by hand (tests, other code) need not name the new field.
    info = ConnAckInfo(
        session_present=False,
        client_id="c",
        assigned_client_id=None,
        keepalive=60,
        server_keep_alive=None,
        receive_maximum=65535,
        maximum_qos=QoS.EXACTLY_ONCE,
        retain_available=True,
        maximum_packet_size=None,
        topic_alias_maximum=0,
        wildcard_subscription_available=True,
        subscription_identifier_available=True,
        shared_subscription_available=True,
    )
    assert info.response_information is None
