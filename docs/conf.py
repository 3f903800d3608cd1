"""Sphinx configuration for trio_mqttconn."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sphinx.application import Sphinx

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))

from trio_mqttconn import __version__

project = "trio_mqttconn"
author = "trio_mqttconn developers"
copyright = "2026, trio_mqttconn developers"  # noqa: A001
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "sphinxcontrib_trio",
    "config_keys",
]
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "trio": ("https://trio.readthedocs.io/en/stable", None),
    "anyio": ("https://anyio.readthedocs.io/en/stable", None),
    "attrs": ("https://www.attrs.org/en/stable", None),
}
# The machines that build the docs may have no network: intersphinx then warns, and
# warnings are errors, so inventories are only used when explicitly allowed.
if not os.environ.get("DOCS_INTERSPHINX"):
    intersphinx_mapping = {}
nitpicky = True
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(anyio|trio|ssl|attrs|collections|typing|pathlib|random|_random|enum|socket"
        r"|subprocess|tempfile|types|contextlib|logging|datetime|json|asyncio|queue"
        r"|_contextvars|wsproto|h11|os)(\..*)?",
    ),
    (
        r"py:class",
        r"(Self|T|TypeAlias|Sequence|Mapping|Callable|Awaitable|Any|Path|PublishPacket)",
    ),
    (r"py:.*", r".*\._.*"),
]
default_role = "obj"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
html_theme = "furo"
html_title = "trio_mqttconn"
# Without an icon of its own a browser asks for /favicon.ico and logs the 404 as a
# console error (the browser check in `nox -s docs` looks for those).
html_favicon = "_static/favicon.svg"
exclude_patterns = ["_build"]


def _attribute_docs_of_private_modules(app: Sphinx) -> None:
    """Let autodoc find the docstrings of fields defined in private modules.

    Public classes report ``trio_mqttconn`` as their module (``__init__`` rewrites
    ``__module__``), so autodoc looks for the string literals under their fields in
    ``trio_mqttconn/__init__.py`` and finds none: ``Message.topic``,
    ``ClientStatistics.connects`` and every other attrs field would be missing from
    the API reference. Copy the attribute docs (and source order) of each public
    class from the private module that defines it into the package's analyzer,
    which autodoc caches. (Two private modules may define classes of the same name;
    only the one the package exports counts.)
    """
    import pkgutil

    from sphinx.pycode import ModuleAnalyzer

    import trio_mqttconn

    package = ModuleAnalyzer.for_module("trio_mqttconn")
    package.analyze()
    for info in pkgutil.walk_packages(trio_mqttconn.__path__, "trio_mqttconn."):
        if not info.name.split(".")[1].startswith("_"):
            continue  # public subpackages (aiomqtt, testing) keep their own module
        module = sys.modules.get(info.name)
        if module is None:
            continue
        analyzer = ModuleAnalyzer.for_module(info.name)
        analyzer.analyze()
        for (namespace, name), doc in analyzer.attr_docs.items():
            top = namespace.split(".")[0]
            public = getattr(trio_mqttconn, top, None)
            if top and public is not None and getattr(module, top, None) is public:
                package.attr_docs.setdefault((namespace, name), doc)
                order = analyzer.tagorder.get(f"{namespace}.{name}")
                if order is not None:
                    package.tagorder.setdefault(f"{namespace}.{name}", order)


def _no_inline_attribute_type(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """Keep napoleon from reading ``"MQTT 5: do not ..."`` as ``type: description``.

    Field docstrings here are sentences (the type comes from the annotation), but
    napoleon takes whatever precedes the first colon of an attribute's docstring
    as its type. A first line that is an empty comment (``..``, then a blank line)
    gives it a first line without a colon and renders as nothing. Runs before
    napoleon (priority 400 < 500).
    """
    if what in ("attribute", "data", "property") and lines and ":" in lines[0]:
        lines[:0] = ["..", ""]


def setup(app: Sphinx) -> None:
    """Sphinx hook of this configuration."""
    app.connect("builder-inited", _attribute_docs_of_private_modules)
    app.connect("autodoc-process-docstring", _no_inline_attribute_type, priority=400)
