"""The dependency direction of DESIGN.md, checked by reading the imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trio_mqttconn"
CORE = [
    "_codec",
    "_enums",
    "_events",
    "_exceptions",
    "_frozen",
    "_message",
    "_packets",
    "_properties",
    "_session",
    "_journal",
    "_subtree",
    "_topics",
    "_backoff",
]
FORBIDDEN_IN_CORE = {"anyio", "trio", "socket", "ssl", "time", "asyncio", "selectors"}
FACADES = ["_connection.py", "_queue.py", "__main__.py", "_cli", "aiomqtt"]
FORBIDDEN_IN_FACADES = {"_session", "_packets", "_codec", "_properties"}


def _imports(path: Path) -> list[tuple[str, int]]:
    """(module, level) for every import in *path*."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


@pytest.mark.parametrize("module", CORE)
def test_layering_core_does_no_io(module: str) -> None:
    for name, level in _imports(PACKAGE / f"{module}.py"):
        top = name.split(".")[0]
        if level:
            assert top in CORE, f"{module} imports .{name}, which is not core"
        else:
            assert top not in FORBIDDEN_IN_CORE, f"{module} imports {name}"
            assert top != "trio_mqttconn" or name.split(".")[1] in CORE


def _facade_files() -> list[Path]:
    files: list[Path] = []
    for entry in FACADES:
        path = PACKAGE / entry
        if path.is_dir():
            files.extend(sorted(path.glob("*.py")))
        elif path.exists():
            files.append(path)
    return files


@pytest.mark.parametrize("path", _facade_files(), ids=lambda p: p.name)
def test_layering_facades_use_the_engine_not_the_core(path: Path) -> None:
    for name, _level in _imports(path):
        last = name.split(".")[-1]
        assert last not in FORBIDDEN_IN_FACADES, f"{path.name} imports {name}"


ENGINE = PACKAGE / "_engine"
#: What the engine's inside may not import: the facades built on top of it.
FORBIDDEN_IN_ENGINE = {"_connection", "_queue", "aiomqtt", "__main__", "_resolver"}


def _engine_files() -> list[Path]:
    return sorted(ENGINE.glob("*.py"))


@pytest.mark.parametrize("path", _engine_files(), ids=lambda p: p.name)
def test_layering_engine_does_not_import_facades(path: Path) -> None:
    for name, _level in _imports(path):
        parts = set(name.split("."))
        assert not parts & FORBIDDEN_IN_ENGINE, f"_engine/{path.name} imports {name}"


@pytest.mark.parametrize("path", _facade_files(), ids=lambda p: p.name)
def test_layering_facades_do_not_reach_into_the_engine(path: Path) -> None:
    for name, _level in _imports(path):
        assert "_engine" not in name.split("."), f"{path.name} imports {name}"


def test_layering_only_the_link_hands_out_the_session() -> None:
    # One owner per connection: inside the engine, the session is reached through
    # a Link (``link.session``); only the connector (which makes links) and the
    # link itself hold it directly.
    for path in _engine_files():
        if path.name in ("link.py", "connector.py"):
            continue
        source = path.read_text()
        assert "client._session" not in source, f"_engine/{path.name} uses the session"


#: The engine's modules, lowest first: each imports only modules before it, so
#: the inside has no import cycles and its direction reads top-down in
#: docs/how-it-works.rst.
ENGINE_ORDER = [
    "trace",
    "arguments",
    "link",
    "operations",
    "router",
    "restore",
    "subscriptions",
    "serve",
    "connector",
]


def _engine_imports(path: Path) -> set[str]:
    """The engine modules *path* imports (``from . import x``, ``from .x import``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module is None:
                found.update(alias.name for alias in node.names)
            else:
                found.add(node.module.split(".")[0])
    return found


def test_layering_engine_order_names_every_module() -> None:
    modules = {path.stem for path in _engine_files()} - {"__init__"}
    assert modules == set(ENGINE_ORDER), (
        "put every _engine module in ENGINE_ORDER, after the modules it imports"
    )


@pytest.mark.parametrize("path", _engine_files(), ids=lambda p: p.name)
def test_layering_engine_imports_point_down(path: Path) -> None:
    if path.stem == "__init__":
        return
    below = set(ENGINE_ORDER[: ENGINE_ORDER.index(path.stem)])
    for name in _engine_imports(path):
        assert name in below, f"_engine/{path.name} imports .{name}, not below it"
