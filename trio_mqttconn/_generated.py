"""The source text of attrs-generated methods, dropped once the classes exist.

attrs writes the methods it adds (``__init__``, ``__repr__``, ``__eq__``, ...) as
source text, compiles it, and keeps the text in `linecache` for the life of the
process, so that a debugger can show it and a traceback through such a method can
print its line. For the client's fifty-odd attrs classes that text is about
0.25 MiB of memory that nothing reads in normal operation: a tenth of what the
package costs to import, and the margin by which the 64-byte subscriber's peak
RSS lost to paho-mqtt's (#9).

So the package drops its own entries (and only its own) once its classes are
built. The methods and what they do are unchanged; a traceback through one of them
still names it and its line number (``File "<attrs generated methods
trio_mqttconn._packets.PublishPacket>", line 7, in __init__``), without the text of
that generated line. Errors the client raises come from its own functions, whose
source is a normal file.
"""

from __future__ import annotations

import linecache

__all__ = ["forget_generated_source"]

#: How attrs names the pseudo-file of a class's generated methods.
_PREFIX = "<attrs generated "


def forget_generated_source(package: str = "trio_mqttconn") -> int:
    """Drop the linecache entries of the attrs classes defined in *package*.

    Returns:
        How many entries were dropped.
    """
    cache = linecache.cache
    marker = f" {package}."
    doomed = [name for name in cache if name.startswith(_PREFIX) and marker in name]
    for name in doomed:
        del cache[name]
    return len(doomed)
