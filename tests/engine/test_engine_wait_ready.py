"""A publisher waiting while the broker's DISCONNECT is decoded but its link lives.

#9 section 4: on the engine of 7f953d6, ``_wait_ready`` looped at 100 % CPU while a
DISCONNECT waited behind a paused reader: the link still counted as ready, the
session was no longer CONNECTED, and the loop's ``await ready.wait()`` returned at
once, forever. Now the waiter sleeps until that link ends, then waits for the next.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests._fakes import FakeBroker, make_client
from trio_mqttconn import ConnectionLost, MqttError, NotOpenError
from trio_mqttconn._session import SessionState

pytestmark = pytest.mark.trio


async def test_wait_ready_sleeps_while_the_session_is_closed_on_a_live_link() -> None:
    async with FakeBroker() as broker:
        client = make_client(broker, reconnect=False)
        outcome: list[BaseException] = []
        with (  # noqa: PT012 - the raise comes from the end of async with
            trio.fail_after(10),  # a spinning waiter never lets the test go on
            pytest.raises(ConnectionLost, match="broker closed the connection"),
        ):
            async with client:
                link = client._conn
                assert link is not None
                # As after decoding the broker's DISCONNECT, before the reader
                # ended the link.
                client._session._set_state(SessionState.CLOSED)

                async def publish() -> None:
                    try:
                        await client.publish("t", b"m")
                    except MqttError as exc:
                        outcome.append(exc)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(publish)
                    # Returns only once every task sleeps: a spinning publisher
                    # would keep this waiting until fail_after.
                    await trio.testing.wait_all_tasks_blocked()
                    assert outcome == []
                    link.end(ConnectionLost("the broker closed the connection"))
        # The client does not reconnect: the waiting publish learns it stopped.
        assert len(outcome) == 1
        assert isinstance(outcome[0], NotOpenError)
