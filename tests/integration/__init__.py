"""Integration tests: the protocol core and the engine against a real mosquitto."""

from __future__ import annotations
