"""The engine's inside, one concern per module (see ``_client``'s docstring).

``link`` (stream, write path, keepalive, withheld acks) · ``connector`` (handshake,
failover, supervisor, backoff) · ``restore`` (resend, resubscribe, republish) ·
``operations`` (publish path, pending acknowledgements) · ``router``
(subscriptions, delivery, parking, listeners).
"""

from __future__ import annotations
