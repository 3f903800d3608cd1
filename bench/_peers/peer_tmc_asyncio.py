"""Benchmark driver: trio_mqttconn on the asyncio backend (see ``_tmc.py``)."""

from __future__ import annotations

import _tmc

if __name__ == "__main__":
    _tmc.main("asyncio")
