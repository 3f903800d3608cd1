"""``python -m trio_mqttconn``: pub, sub, bench and demo (see ``--help``).

The command line lives in the private package ``trio_mqttconn._cli``; this module is
the entry point of ``python -m`` and of the ``trio-mqttconn`` script.
"""

from __future__ import annotations

import sys

from ._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
