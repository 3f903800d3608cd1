"""Helpers shared by the transport tests: a time bound, and a connect that must fail."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import pytest

from trio_mqttconn._exceptions import ConnectError
from trio_mqttconn._transports import connect_stream, parse_uri

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

__all__ = ["bounded", "connect_error"]

T = TypeVar("T")


def bounded(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Fail a test that runs longer than 10 s (of the backend's clock)."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        with anyio.fail_after(10):
            return await fn(*args, **kwargs)

    return wrapper


async def connect_error(
    serve: Callable[..., Coroutine[Any, Any, None]],
    handler: object,
    uri: str,
    **options: Any,
) -> tuple[int, pytest.ExceptionInfo[ConnectError]]:
    """Connect to a server that makes `connect_stream` fail; return port and error.

    ``serve(handler)`` runs in a task group and reports its port; *uri* has a
    ``{port}`` field for it, and *options* go to `connect_stream`. The server task
    has finished when this returns.
    """
    async with anyio.create_task_group() as tg:
        port: int = await tg.start(serve, handler)
        with pytest.raises(ConnectError) as info:
            await connect_stream(parse_uri(uri.format(port=port)), **options)
    return port, info
