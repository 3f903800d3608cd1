"""python -m trio_mqttconn: pub, sub and demo against the real broker."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from trio_mqttconn.__main__ import main

if TYPE_CHECKING:
    import pytest

    from trio_mqttconn.testing import Mosquitto


def test_cli_pub_then_sub_receives_retained(
    mosquitto: Mosquitto, unique_topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"{unique_topic}/retained"
    assert main(["pub", mosquitto.uri, topic, "hello", "--qos", "1", "--retain"]) == 0
    assert (
        main(["--protocol", "3.1.1", "sub", mosquitto.uri, topic, "--count", "1"]) == 0
    )
    out = capsys.readouterr().out
    assert f"published to {topic} (QoS 1)" in out
    assert f"{topic} (QoS 0): b'hello'" in out
    # clear the retained message
    assert main(["pub", mosquitto.uri, topic, "", "--retain"]) == 0


def test_cli_demo_with_a_broker(
    mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--broker", mosquitto.uri]) == 0
    out = capsys.readouterr().out
    assert "received   'demo/qos2': 'hello at EXACTLY_ONCE' (QoS 2)" in out
    assert "done: 3 published, 3 received" in out


def test_cli_demo_starts_its_own_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    assert "started mosquitto" in capsys.readouterr().out


def test_cli_reports_connection_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["pub", f"mqtt://127.0.0.1:{port}", "t", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: connection refused by 127.0.0.1:{port}")
