"""Helpers for testing applications that use trio_mqttconn.

:class:`Mosquitto` runs a real broker on free loopback ports.
"""

from __future__ import annotations

from ._mosquitto import (
    Mosquitto as Mosquitto,
    MosquittoNotFound as MosquittoNotFound,
    find_mosquitto as find_mosquitto,
)

__all__ = ["Mosquitto", "MosquittoNotFound", "find_mosquitto"]
