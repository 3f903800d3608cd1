"""bench's progress bar and table; how main ends (in-process)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trio_mqttconn._cli._bench import _Progress, _Result, _table

if TYPE_CHECKING:
    import pytest


def test_progress_redraws_in_place_on_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    progress = _Progress("QoS 1", 4, tty=True)
    progress.step()
    progress.step(3)  # within 0.1 s of the last redraw: not drawn
    progress.finish("  (done)")
    err = capsys.readouterr().err
    assert err.startswith("\rQoS 1")
    assert err.endswith("] 100% 4/4  (done)\n")
    assert err.count("\r") == 2


def test_progress_without_a_terminal_is_one_line_per_phase(
    capsys: pytest.CaptureFixture[str],
) -> None:
    progress = _Progress("QoS 0", 2, tty=False)
    progress.step(2)
    progress.finish()
    assert capsys.readouterr().err == f"{'QoS 0':<26} [{'#' * 24}] 100% 2/2\n"


def test_table_aligns_columns() -> None:
    text = _table([_Result("QoS 0 publish -> receive", 10, 0.5, "20 msg/s")])
    assert text.splitlines() == [
        "measurement               messages  seconds    result",
        "------------------------  --------  -------  --------",
        "QoS 0 publish -> receive        10    0.500  20 msg/s",
    ]


def test_main_maps_interrupts_and_single_errors_in_groups() -> None:
    from trio_mqttconn._cli import _Context, _finish, _single

    assert _finish(_Context("p", []), KeyboardInterrupt()) == 130
    inner = ValueError("v")
    nested = ExceptionGroup("a", [ExceptionGroup("b", [inner])])
    assert _single(nested) is inner
    two = ExceptionGroup("a", [ValueError(), TypeError()])
    assert _single(two) is two
