"""ExceptionGroups in, one exception out: the rule for every ``async with`` we offer.

The body's own exception propagates as is; a single failure of a background task is
raised as itself; cancellation stays cancellation; several real failures at once are a
bug of ours (`MqttInternalError`, with the group as its cause). Never an
ExceptionGroup (trio's "Designing for multiple errors", option 2).
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any, Protocol, Self

import anyio
import anyio.abc

from ._exceptions import MqttInternalError

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

__all__ = [
    "Event",
    "Scope",
    "OwnsTaskGroup",
    "TaskGroup",
    "collapse",
    "current_time",
    "event_factory",
    "leave_group",
    "new_scope",
    "open_task_group",
    "running_on_trio",
]


def running_on_trio() -> bool:
    """Whether the calling task runs under trio.

    Never imports trio: an asyncio program that has not imported it cannot be
    running it, and does not pay for it.
    """
    trio = sys.modules.get("trio")
    return trio is not None and bool(trio.lowlevel.in_trio_task())


class Event(Protocol):
    """What the engine asks of an event: anyio's, or trio's own."""

    def is_set(self) -> bool:
        """Whether `set` was called."""
        ...  # pragma: no cover

    def set(self) -> None:
        """Wake every waiter, now and later."""
        ...  # pragma: no cover

    async def wait(self) -> None:
        """Wait until `set` is called."""
        ...  # pragma: no cover


def event_factory() -> Callable[[], Event]:
    """The cheapest event of the running backend: on trio, trio's Event itself.

    anyio's Event is a wrapper made through a backend lookup, about three times the
    cost of trio's; the engine makes one per QoS 1/2 publish.
    """
    if running_on_trio():
        import trio  # imported already (running_on_trio)

        return trio.Event
    return anyio.Event


class TaskGroup(Protocol):
    """What the engine asks of a task group: anyio's, or trio's nursery."""

    @property
    def start_soon(self) -> Callable[..., object]:
        """``start_soon(func, *args, name=...)``: start ``func(*args)`` as a child."""
        ...  # pragma: no cover


def open_task_group() -> AbstractAsyncContextManager[TaskGroup]:
    """A task group for tasks that each run under a cancel scope of their own.

    On trio this is trio's nursery itself: anyio's task group there gives every task
    a handle of its own (a cancel scope and an event), which the engine does not
    use and which doubles the cost of starting and ending a task. Elsewhere it is
    anyio's task group. Both raise ExceptionGroups; `collapse` handles either.
    """
    if running_on_trio():
        import trio  # imported already (running_on_trio)

        return trio.open_nursery()
    return anyio.create_task_group()


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        else:
            found.append(exc)
    return found


def collapse(
    group: BaseExceptionGroup[BaseException], body: BaseException | None
) -> BaseException:
    """The one exception a task group's ExceptionGroup stands for.

    *body* is the exception the ``async with`` body raised (None if it did not):
    when the group holds it, it is returned unchanged, even when it is itself an
    ExceptionGroup (the user's own nursery inside the block). trio and anyio do
    not keep such a group as it was: they nest it and, splitting out their own
    Cancelled, put a copy in its place (`BaseExceptionGroup.derive`) that holds
    the same exception objects. So the body is recognised by its leaves: an
    exception object it raised is found among the group's.
    """
    leaves = _leaves(group)
    if body is not None:
        mine = (
            {id(exc) for exc in _leaves(body)}
            if isinstance(body, BaseExceptionGroup)
            else {id(body)}
        )
        if any(id(exc) in mine for exc in leaves):
            return body
    cancelled = anyio.get_cancelled_exc_class()
    real = [exc for exc in leaves if not isinstance(exc, cancelled)]
    if len(real) == 1:
        return real[0]
    if not real:
        return leaves[0]
    error = MqttInternalError(
        "several background tasks failed at once; this is a bug in trio_mqttconn, "
        "please report it with the traceback"
    )
    error.__cause__ = group
    return error


async def leave_group(group: anyio.abc.TaskGroup, exc: BaseException | None) -> None:
    """Exit *group* (entered by hand in ``__aenter__``), collapsing its errors."""
    try:
        await group.__aexit__(
            None if exc is None else type(exc),
            exc,
            None if exc is None else exc.__traceback__,
        )
    except BaseExceptionGroup as eg:
        error = collapse(eg, exc)
        raise error from error.__cause__


class OwnsTaskGroup:
    """Mixin: ``async with component:`` runs the component in a task group of its own.

    For components that otherwise live in a nursery the caller binds (pip-services
    style): enter opens a task group, makes it the component's nursery and calls
    ``open(None)``; exit calls ``close(None)`` and leaves the group. The body's
    exception propagates unchanged.
    """

    _nursery: anyio.abc.TaskGroup | Any
    _outer_nursery: anyio.abc.TaskGroup | Any
    _own_group: anyio.abc.TaskGroup | None

    async def open(self, context: object) -> None:  # pragma: no cover - abstract
        """Open the component."""
        raise NotImplementedError

    async def close(self, context: object) -> None:  # pragma: no cover - abstract
        """Close the component."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        """Open a task group for the component's tasks, then `open` (a checkpoint)."""
        group = anyio.create_task_group()
        await group.__aenter__()
        self._outer_nursery, self._nursery = self._nursery, group
        try:
            await self.open(None)
        except BaseException as exc:
            self._nursery = self._outer_nursery
            await leave_group(group, exc)
            raise  # pragma: no cover - leave_group raised it already
        self._own_group = group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """`close`, then leave the task group; the body's exception propagates."""
        group, self._own_group = self._own_group, None
        try:
            await self.close(None)
        finally:
            self._nursery = self._outer_nursery
            if group is not None:  # pragma: no branch - __aenter__ succeeded
                await leave_group(group, exc)


# -- the running backend's cancel scope and clock (trio's own on trio) -----------


class Scope(Protocol):
    """What the engine asks of a cancel scope: anyio's, or trio's own."""

    @property
    def cancel_called(self) -> bool:
        """Whether `cancel` was called (or the deadline passed)."""
        ...  # pragma: no cover

    def cancel(self) -> None:
        """Cancel the code inside the scope."""
        ...  # pragma: no cover

    def __enter__(self) -> object: ...  # pragma: no cover

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...  # pragma: no cover


def current_time() -> float:
    """The running backend's clock: `anyio.current_time` without its lookup of the
    backend (several per connection)."""
    if running_on_trio():
        import trio  # imported already (running_on_trio)

        return trio.current_time()
    import asyncio  # running it (anyio's other backend)

    return asyncio.get_running_loop().time()


def new_scope(*, timeout: float = math.inf, shield: bool = False) -> Scope:
    """A cancel scope of the running backend, cancelled *timeout* s from now.

    trio's own on trio: anyio's wraps it, finds the backend each time it is made
    and adds a layer to entering and leaving it (the engine makes several per
    connection). Unlike ``fail_after``, leaving it after its deadline passed does
    not raise (`handshake` checks whether its block was left early).
    """
    if running_on_trio():
        import trio  # imported already (running_on_trio)

        deadline = math.inf if timeout == math.inf else trio.current_time() + timeout
        return trio.CancelScope(deadline=deadline, shield=shield)
    deadline = math.inf if timeout == math.inf else current_time() + timeout
    return anyio.CancelScope(deadline=deadline, shield=shield)
