"""Sphinx extension: ``.. config-keys::`` renders a table of configuration keys.

The table comes from the code, so the documentation cannot drift from the parser::

    .. config-keys::                                         (MqttConnection's keys)
    .. config-keys:: trio_mqttconn._queue.QUEUE_CONFIG_KEYS  (any table of ConfigKey)

The argument is the dotted path of a sequence of ``ConfigKey`` (``key``, ``default``,
``meaning``); it defaults to ``trio_mqttconn._resolver.CONFIG_KEYS``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, ClassVar

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

if TYPE_CHECKING:
    from sphinx.application import Sphinx

DEFAULT_TABLE = "trio_mqttconn._resolver.CONFIG_KEYS"


def _default(value: str | None) -> str:
    if value is None:
        return "*(not set)*"
    if value == "":
        return '``""``'
    return f"``{value}``"


def table_lines(path: str) -> tuple[list[str], str | None]:
    """Return the reStructuredText of the table at ``path`` and its module's file."""
    module_name, _, attribute = path.rpartition(".")
    module = importlib.import_module(module_name)
    entries = getattr(module, attribute)
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 30 12 58",
        "",
        "   * - Key",
        "     - Default",
        "     - Meaning",
    ]
    for entry in entries:
        lines += [
            f"   * - ``{entry.key}``",
            f"     - {_default(entry.default)}",
            f"     - {entry.meaning}",
        ]
    return lines, getattr(module, "__file__", None)


class ConfigKeysDirective(SphinxDirective):
    """``.. config-keys:: [dotted.path.TO_TABLE]``."""

    optional_arguments = 1
    has_content = False
    option_spec: ClassVar[dict[str, object]] = {}

    def run(self) -> list[nodes.Node]:
        path = self.arguments[0] if self.arguments else DEFAULT_TABLE
        lines, source = table_lines(path)
        if source is not None:
            self.env.note_dependency(source)
        holder = nodes.Element()
        self.state.nested_parse(
            StringList(lines, source=f"<config-keys {path}>"),
            self.content_offset,
            holder,
        )
        return list(holder.children)


def setup(app: Sphinx) -> dict[str, object]:
    """Register the directive."""
    app.add_directive("config-keys", ConfigKeysDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
