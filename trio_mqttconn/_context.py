"""Context: the pip-services execution context, and how plain trace ids become one.

pip-services 4 passes a *context* (``IContext``) where version 3 passed a
correlation id: an object whose ``get(key)`` answers ``"trace_id"`` (and other
keys). Its loggers read the trace id with ``context.get("trace_id")``, so a plain
string handed to one of them fails (``'str' object has no attribute 'get'``).

The components here accept both, everywhere a ``context`` argument is taken: a
pip-services context, our `Context`, a plain trace id, or None. Before a context
leaves for someone else's code (a referenced logger, discovery service or
credential store), `as_context` wraps a plain id the way upstream does with
``Context.fromTraceId``; `trace_id_of` goes the other way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Context", "as_context", "trace_id_of"]


@final
@attrs.frozen
class Context:
    """An execution context: a trace id and any other values, read with ``get``.

    The shape of pip-services' ``Context``: what its loggers and services expect as
    the ``context`` argument. Build one with `from_trace_id`.

    Example::

        await queue.send(Context.from_trace_id("123"), envelope)
    """

    _values: Mapping[str, object] = attrs.field(factory=dict, alias="values")

    @classmethod
    def from_trace_id(cls, trace_id: str | None) -> Context:
        """Create a context that holds only a trace id.

        Args:
            trace_id: the id that traces a call through services, or None.

        Returns:
            The context.
        """
        return cls({} if trace_id is None else {"trace_id": trace_id})

    def get(self, key: str) -> object | None:
        """Return the value under ``key`` (e.g. ``"trace_id"``), or None.

        Args:
            key: the name of the value.
        """
        return self._values.get(key)

    def get_trace_id(self) -> str | None:
        """Return the trace id, or None (the Node ``IContext`` method)."""
        return trace_id_of(self)


def trace_id_of(context: object) -> str | None:
    """Return the trace id a context carries; None when it carries none.

    Args:
        context: a pip-services context (anything with ``get(key)``), a plain
            trace id (text or a number), or None.
    """
    if context is None or isinstance(context, str):
        return context or None
    if isinstance(context, int) and not isinstance(context, bool):
        return str(context)  # a numeric id, as some callers pass one
    get = getattr(context, "get", None)
    if callable(get):
        for key in ("trace_id", "traceId", "correlation_id"):
            value = get(key)
            if value:
                return str(value)
    return None


def as_context(context: object) -> object | None:
    """Return ``context`` in the form pip-services code reads: an object with ``get``.

    Args:
        context: a pip-services context (returned as is), a plain trace id
            (wrapped with `Context.from_trace_id`), or None.

    Returns:
        The context, or None when there is no trace id to carry.
    """
    if context is None:
        return None
    if callable(getattr(context, "get", None)) and not isinstance(context, str):
        return context
    trace_id = trace_id_of(context)
    return None if trace_id is None else Context.from_trace_id(trace_id)
