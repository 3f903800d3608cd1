"""Capped exponential backoff with jitter, for the reconnect loop.

The policy is pure: it hands out delays and never sleeps or reads a clock, so the
engine decides how to wait (``await anyio.sleep(backoff.next_delay())``) and tests
check the sequence without any event loop.

Delay ``n`` (counting from 0 since the last `Backoff.reset`) is::

    base(n)  = min(maximum, initial * multiplier ** n)
    delay(n) = min(maximum, base(n) * (1 + uniform(-jitter, +jitter)))

The jitter spreads clients that lost the same broker at the same moment, so they do
not all come back in the same instant. With ``jitter=0`` the sequence is exactly
``initial, initial * multiplier, ...`` up to ``maximum``. The delay never exceeds
``maximum``: once the cap is reached, jitter only shortens it.
"""

from __future__ import annotations

import math
import os
import typing

import attrs

if typing.TYPE_CHECKING:
    import random

__all__ = ["Backoff"]


def _system_uniform(low: float, high: float) -> float:
    """A uniform draw from *low* up to *high*, from the operating system's randomness.

    (The default source of the jitter: importing `random` would cost about 150 KiB
    of memory for one draw per reconnect.)
    """
    fraction = (int.from_bytes(os.urandom(7), "big") >> 3) / (1 << 53)
    return low + (high - low) * fraction


def _check_initial(
    instance: Backoff, attribute: attrs.Attribute[float], value: float
) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"initial must be a finite number of seconds > 0, not {value!r}"
        )


def _check_maximum(
    instance: Backoff, attribute: attrs.Attribute[float], value: float
) -> None:
    if not (math.isfinite(value) and value >= instance.initial):
        raise ValueError(
            f"maximum must be a finite number of seconds >= initial "
            f"({instance.initial!r}), not {value!r}"
        )


def _check_multiplier(
    instance: Backoff, attribute: attrs.Attribute[float], value: float
) -> None:
    if not (math.isfinite(value) and value >= 1):
        raise ValueError(f"multiplier must be a finite number >= 1, not {value!r}")


def _check_jitter(
    instance: Backoff, attribute: attrs.Attribute[float], value: float
) -> None:
    if not 0 <= value < 1:
        raise ValueError(
            f"jitter must be a fraction from 0 up to (not including) 1, not {value!r}"
        )


@typing.final
@attrs.define(eq=False)
class Backoff:
    """Hands out growing delays between reconnect attempts.

    Call `next_delay` before each retry and `reset` once a connection succeeded.
    The object is not thread-safe; one reconnect loop owns it.

    Args:
        initial: The first delay, in seconds (> 0).
        maximum: The cap for every delay, in seconds (>= ``initial``).
        multiplier: How much each delay grows over the previous one (>= 1).
        jitter: Random spread as a fraction of the delay (0 <= jitter < 1): 0.1
            gives a delay within +-10 % of the nominal one.
        rng: Source of randomness; pass a seeded `random.Random` for a
            reproducible sequence. None (the default): the operating system's.

    Raises:
        ValueError: An argument is out of range; the message names it and its value.

    Example::

        backoff = Backoff(initial=1.0, maximum=30.0, jitter=0)
        [backoff.next_delay() for _ in range(7)]  # [1, 2, 4, 8, 16, 30, 30]
    """

    initial: float = attrs.field(default=1.0, validator=_check_initial)
    """First delay in seconds."""
    maximum: float = attrs.field(default=60.0, validator=_check_maximum)
    """Largest delay in seconds."""
    multiplier: float = attrs.field(default=2.0, validator=_check_multiplier)
    """Growth factor from one delay to the next."""
    jitter: float = attrs.field(default=0.1, validator=_check_jitter)
    """Random spread as a fraction of the nominal delay."""
    rng: random.Random | None = attrs.field(default=None, repr=False)
    """Source of the jitter (None: the operating system's randomness)."""
    # The nominal (jitter-free) delay handed out last; None right after reset.
    # Keeping the value instead of an attempt counter means the growth stops at
    # the cap, so no power ever overflows however long the broker stays away.
    _current: float | None = attrs.field(default=None, init=False, repr=False)

    def next_delay(self) -> float:
        """Return the delay before the next attempt and advance the sequence.

        Returns:
            Seconds to wait, in ``[initial * (1 - jitter), maximum]``.
        """
        if self._current is None:
            nominal = min(self.initial, self.maximum)
        else:
            nominal = min(self._current * self.multiplier, self.maximum)
        self._current = nominal
        if self.jitter == 0:
            return nominal
        rng = self.rng
        uniform = _system_uniform if rng is None else rng.uniform
        spread = uniform(-self.jitter, self.jitter)
        return min(nominal * (1 + spread), self.maximum)

    def reset(self) -> None:
        """Start again from ``initial`` (call it after a successful connect)."""
        self._current = None
