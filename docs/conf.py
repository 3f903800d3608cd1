"""Sphinx configuration for trio_mqttconn."""

from __future__ import annotations

import os
import sys

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
        r"|_contextvars|wsproto|h11)(\..*)?",
    ),
    (r"py:class", r"(Self|T|TypeAlias|Sequence|Mapping|Callable|Awaitable|Any|Path)"),
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
