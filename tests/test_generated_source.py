"""The source attrs keeps for generated methods is dropped for our classes (#9, memory).

See ``trio_mqttconn._generated``: about 0.25 MiB of `linecache` text that nothing
reads in normal operation. Only the package's own entries go; methods keep working
and tracebacks through them still name the generated method.
"""

from __future__ import annotations

import linecache
import subprocess
import sys
import traceback

import attrs
import pytest

from trio_mqttconn._backoff import Backoff
from trio_mqttconn._generated import forget_generated_source


def _make(module: str) -> type:
    cls = type("Point", (), {"__module__": module, "__annotations__": {"x": "int"}})
    return attrs.define(cls)


def test_only_the_named_packages_entries_go() -> None:
    ours = _make("fakepkg.shapes")
    theirs = _make("otherpkg.shapes")
    names = [name for name in linecache.cache if "pkg.shapes.Point" in name]
    mine = [name for name in names if " fakepkg." in name]
    others = [name for name in names if " otherpkg." in name]
    # one entry per class, or one per method on older attrs
    assert mine
    assert others
    assert forget_generated_source("fakepkg") == len(mine)
    left = [name for name in linecache.cache if "pkg.shapes.Point" in name]
    assert left == others
    assert ours(x=1) == ours(x=1)  # the methods themselves are unchanged
    assert repr(theirs(x=2)) == "Point(x=2)"
    assert forget_generated_source("otherpkg") == len(others)
    assert forget_generated_source("fakepkg") == 0


def test_a_traceback_through_a_generated_method_still_names_it() -> None:
    with pytest.raises(ValueError, match="initial must be") as caught:
        Backoff(initial=0)
    text = "".join(traceback.format_exception(caught.value))
    assert "<attrs generated" in text
    assert "in __init__" in text
    assert "_check_initial" in text  # our validator's frame, with its source
    assert "raise ValueError(" in text


@pytest.mark.parametrize(
    "statement",
    [
        "import trio_mqttconn",
        "import trio_mqttconn; trio_mqttconn.MqttConnection",
        "from trio_mqttconn import aiomqtt",
    ],
)
def test_importing_leaves_no_generated_source_of_ours(statement: str) -> None:
    code = (
        f"{statement}\n"
        "import linecache\n"
        "left = [n for n in linecache.cache if ' trio_mqttconn.' in n]\n"
        "assert not left, left[:3]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
