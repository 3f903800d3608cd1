"""The engine's inside, one concern per module (see ``_client``'s docstring).

``link`` (stream, write path, keepalive, withheld acks) · ``connector`` (handshake,
failover, supervisor, backoff) · ``serve`` (the current link from CONNACK to its
end: reader, event handling, what a lost connection leaves) · ``restore`` (resend,
resubscribe, republish) · ``operations`` (publish path, pending acknowledgements) ·
``subscriptions`` (SUBSCRIBE/UNSUBSCRIBE, raw filters, ``messages()``) · ``router``
(subscriptions, delivery, parking, listeners) · ``arguments`` (argument checks) ·
``trace`` (DEBUG packet log). Imports point down, in the order of
``tests/test_layering.py``'s ``ENGINE_ORDER``.
"""

from __future__ import annotations
