"""Tests for the reconnect backoff policy (pure: no clock, no event loop)."""

from __future__ import annotations

import math
import random

import pytest

from trio_mqttconn._backoff import Backoff


def take(backoff: Backoff, n: int) -> list[float]:
    return [backoff.next_delay() for _ in range(n)]


def test_backoff_without_jitter_doubles_up_to_the_cap() -> None:
    backoff = Backoff(jitter=0)
    assert take(backoff, 9) == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_backoff_defaults() -> None:
    backoff = Backoff()
    assert (backoff.initial, backoff.maximum, backoff.multiplier, backoff.jitter) == (
        1.0,
        60.0,
        2.0,
        0.1,
    )


def test_backoff_custom_multiplier_and_cap() -> None:
    backoff = Backoff(initial=0.5, maximum=10.0, multiplier=3.0, jitter=0)
    assert take(backoff, 5) == [0.5, 1.5, 4.5, 10.0, 10.0]


def test_backoff_multiplier_one_is_constant() -> None:
    backoff = Backoff(initial=2.0, maximum=5.0, multiplier=1.0, jitter=0)
    assert take(backoff, 4) == [2.0, 2.0, 2.0, 2.0]


def test_backoff_initial_equal_to_maximum_is_constant() -> None:
    backoff = Backoff(initial=3.0, maximum=3.0, jitter=0)
    assert take(backoff, 3) == [3.0, 3.0, 3.0]


def test_backoff_reset_starts_again_from_initial() -> None:
    backoff = Backoff(jitter=0)
    assert take(backoff, 4) == [1, 2, 4, 8]
    backoff.reset()
    assert take(backoff, 3) == [1, 2, 4]


def test_backoff_jitter_follows_the_seeded_rng() -> None:
    backoff = Backoff(jitter=0.1, rng=random.Random(1234))
    expected_rng = random.Random(1234)
    nominal = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    expected = [min(n * (1 + expected_rng.uniform(-0.1, 0.1)), 60.0) for n in nominal]
    assert take(backoff, 10) == expected


def test_backoff_same_seed_gives_the_same_sequence() -> None:
    first = take(Backoff(rng=random.Random(7)), 20)
    second = take(Backoff(rng=random.Random(7)), 20)
    other = take(Backoff(rng=random.Random(8)), 20)
    assert first == second
    assert first != other


def test_backoff_jitter_stays_within_its_fraction_and_the_cap() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=0.25, rng=random.Random(42))
    nominal = [1, 2, 4, 8, *[8] * 200]
    delays = take(backoff, len(nominal))
    for n, delay in zip(nominal, delays, strict=True):
        assert n * 0.75 <= delay <= min(n * 1.25, 8.0)
    # at the cap the jitter only shortens, and it does spread the delays
    assert len({round(d, 6) for d in delays[3:]}) > 50


def test_backoff_default_jitter_comes_from_the_system_and_stays_in_range() -> None:
    # No rng given: os.urandom, not the `random` module (memory, #9).
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=0.25)
    assert backoff.rng is None
    nominal = [1, 2, 4, 8, *[8] * 200]
    delays = take(backoff, len(nominal))
    for n, delay in zip(nominal, delays, strict=True):
        assert n * 0.75 <= delay <= min(n * 1.25, 8.0)
    assert len({round(d, 6) for d in delays[3:]}) > 50


def test_backoff_never_overflows() -> None:
    backoff = Backoff(initial=1e-3, maximum=1e6, multiplier=1e3, jitter=0)
    delays = take(backoff, 10_000)
    assert delays[-1] == 1e6
    assert all(math.isfinite(d) for d in delays)


def test_backoff_repr_shows_the_settings() -> None:
    assert repr(Backoff(jitter=0)) == (
        "Backoff(initial=1.0, maximum=60.0, multiplier=2.0, jitter=0)"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": 0}, r"^initial must be a finite number of seconds > 0, not 0$"),
        (
            {"initial": -1.5},
            r"^initial must be a finite number of seconds > 0, not -1\.5$",
        ),
        (
            {"initial": math.inf},
            r"^initial must be a finite number of seconds > 0, not inf$",
        ),
        (
            {"initial": math.nan},
            r"^initial must be a finite number of seconds > 0, not nan$",
        ),
        (
            {"initial": 5.0, "maximum": 4.0},
            r"^maximum must be a finite number of seconds >= initial \(5\.0\), "
            r"not 4\.0$",
        ),
        (
            {"maximum": math.inf},
            r"^maximum must be a finite number of seconds >= initial \(1\.0\), "
            r"not inf$",
        ),
        ({"multiplier": 0.5}, r"^multiplier must be a finite number >= 1, not 0\.5$"),
        (
            {"multiplier": math.nan},
            r"^multiplier must be a finite number >= 1, not nan$",
        ),
        (
            {"jitter": -0.1},
            r"^jitter must be a fraction from 0 up to \(not including\) 1, "
            r"not -0\.1$",
        ),
        (
            {"jitter": 1.0},
            r"^jitter must be a fraction from 0 up to \(not including\) 1, not 1\.0$",
        ),
    ],
)
def test_backoff_rejects_out_of_range_settings(
    kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_backoff_validates_on_assignment() -> None:
    backoff = Backoff(jitter=0)
    with pytest.raises(
        ValueError,
        match=r"^maximum must be a finite number of seconds >= initial \(1\.0\), "
        r"not 0\.5$",
    ):
        backoff.maximum = 0.5
    backoff.maximum = 4.0
    assert take(backoff, 4) == [1, 2, 4, 4]
