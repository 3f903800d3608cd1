"""bench/RESULTS.md: the clients table, then one section per other bench script.

Each script's section sits between its own markers (``<!-- bench/x.py: begin -->``
and ``... end -->``); a script replaces its section and leaves the others alone.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["kept_sections", "replace_section"]

_SECTION = re.compile(r"<!-- (bench/[\w.]+): begin -->.*?<!-- \1: end -->", re.DOTALL)


def replace_section(path: Path, text: str, begin: str, end: str) -> None:
    """Replace the section between *begin* and *end* in *path* by *text*, or append it.

    *text* carries the markers itself.
    """
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        head, _, rest = old.partition(begin)
        _, _, tail = rest.partition(end)
        new = head + text + tail
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + text + "\n"
    path.write_text(new)


def kept_sections(path: Path) -> str:
    """Every script's section in *path*, for a writer that rewrites the rest."""
    old = path.read_text() if path.exists() else ""
    return "".join(f"\n{match.group(0)}\n" for match in _SECTION.finditer(old))
