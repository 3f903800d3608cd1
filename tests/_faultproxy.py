"""A loopback TCP proxy between client and broker that injects network faults.

Test infrastructure for #9: the engine must survive what real networks do. The
proxy listens on a free 127.0.0.1 port and forwards each accepted connection to
the upstream port, one task per direction, on whichever anyio backend runs it::

    async with FaultProxy(mosquitto.port) as proxy:
        async with MqttClient(proxy.uri) as client:
            proxy.blackhole()          # both ways: bytes vanish, sockets stay open
            ...
            proxy.heal()

Faults (they apply to live connections and, where it makes sense, to new ones):

* `drop` (``rst=True``: a TCP reset; else an orderly FIN) every live connection;
* `blackhole` one direction (``"up"`` client->broker, ``"down"``) or both: bytes
  are read and thrown away, nobody notices;
* `stall` one direction or both: bytes are not read any more, so TCP backpressure
  builds up towards the sender; `heal` undoes blackhole and stall;
* `cut_after` N more bytes in a direction: then the connection is reset;
* `refuse`: the port stops listening (connection refused) until `listen` again;
* `hang_new`: new connections are accepted but never connected upstream.

Only loopback addresses are used; no real-time sleeps: waiting is on events.
"""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING, Literal, Self

import anyio
import anyio.abc
import attrs

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Direction", "FaultProxy"]

Direction = Literal["up", "down", "both"]


def _directions(direction: Direction) -> tuple[str, ...]:
    return ("up", "down") if direction == "both" else (direction,)


@attrs.define(eq=False)
class _Pipe:
    """One proxied connection: the client's socket and the broker's."""

    client: anyio.abc.SocketStream
    upstream: anyio.abc.SocketStream | None = None
    scope: anyio.CancelScope = attrs.Factory(anyio.CancelScope)
    #: Bytes forwarded per direction.
    forwarded: dict[str, int] = attrs.Factory(lambda: {"up": 0, "down": 0})

    def reset(self) -> None:
        """Close both sockets with a TCP reset (SO_LINGER 0)."""
        for stream in (self.client, self.upstream):
            if stream is None:
                continue
            sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            try:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            except OSError:
                pass
        self.scope.cancel()


@attrs.define(eq=False)
class FaultProxy:
    """The proxy (see the module docstring)."""

    upstream_port: int
    host: str = "127.0.0.1"
    port: int = attrs.field(init=False, default=0)
    pipes: list[_Pipe] = attrs.field(init=False, factory=list)
    #: Connections accepted so far.
    accepted: int = attrs.field(init=False, default=0)
    _blackholed: set[str] = attrs.field(init=False, factory=set)
    _stalled: set[str] = attrs.field(init=False, factory=set)
    _healed: anyio.Event = attrs.field(init=False, factory=anyio.Event)
    _cut: dict[str, int] = attrs.field(init=False, factory=dict)
    _hang_new: bool = attrs.field(init=False, default=False)
    _listen_scope: anyio.CancelScope | None = attrs.field(init=False, default=None)
    _group: anyio.abc.TaskGroup | None = attrs.field(init=False, default=None)
    _changed: anyio.Event = attrs.field(init=False, factory=anyio.Event)

    @property
    def uri(self) -> str:
        """``mqtt://`` URI of the proxy."""
        return f"mqtt://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        await self.listen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._group is not None
        self._group.cancel_scope.cancel()
        return await self._group.__aexit__(exc_type, exc, tb)

    # -- faults --------------------------------------------------------------------

    def drop(self, *, rst: bool = True) -> None:
        """End every live connection (reset, or FIN with ``rst=False``)."""
        for pipe in list(self.pipes):
            if rst:
                pipe.reset()
            else:
                pipe.scope.cancel()

    def blackhole(self, direction: Direction = "both") -> None:
        """Read and discard bytes in *direction* (sockets stay open)."""
        self._blackholed.update(_directions(direction))

    def stall(self, direction: Direction = "both") -> None:
        """Stop reading in *direction*: TCP backpressure builds towards the sender."""
        self._stalled.update(_directions(direction))

    def heal(self) -> None:
        """Undo `blackhole`, `stall`, `cut_after` and `hang_new`."""
        self._blackholed.clear()
        self._stalled.clear()
        self._cut.clear()
        self._hang_new = False
        healed, self._healed = self._healed, anyio.Event()
        healed.set()

    def cut_after(self, count: int, direction: Literal["up", "down"] = "up") -> None:
        """Forward *count* more bytes in *direction*, then reset the connection (once)."""
        self._cut[direction] = count

    def hang_new(self) -> None:
        """Accept new connections but never connect them upstream."""
        self._hang_new = True

    def refuse(self) -> None:
        """Stop listening: new connections are refused (live ones go on)."""
        if self._listen_scope is not None:
            self._listen_scope.cancel()
            self._listen_scope = None

    async def listen(self) -> None:
        """(Re)start listening on the same port."""
        assert self._group is not None
        multi = await anyio.create_tcp_listener(
            local_host=self.host, local_port=self.port
        )
        listener = multi.listeners[0]  # one address: 127.0.0.1
        assert isinstance(listener, anyio.abc.SocketListener)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        scope = anyio.CancelScope()
        self._listen_scope = scope
        self._group.start_soon(self._serve_listener, listener, scope)

    async def wait_accepted(self, count: int) -> None:
        """Wait until *count* connections were accepted in all."""
        while self.accepted < count:
            changed = self._changed = anyio.Event()
            await changed.wait()

    # -- forwarding -------------------------------------------------------------------

    async def _serve_listener(
        self,
        listener: anyio.abc.SocketListener,
        scope: anyio.CancelScope,
    ) -> None:
        # Connections run in the proxy's group: they outlive a refuse().
        with scope:
            async with listener:
                while True:
                    stream = await listener.accept()
                    assert isinstance(stream, anyio.abc.SocketStream)
                    self.accepted += 1
                    self._changed.set()
                    assert self._group is not None
                    self._group.start_soon(self._serve_pipe, _Pipe(stream))

    async def _serve_pipe(self, pipe: _Pipe) -> None:
        self.pipes.append(pipe)
        try:
            with pipe.scope:
                if self._hang_new:
                    await anyio.sleep_forever()
                pipe.upstream = await anyio.connect_tcp(self.host, self.upstream_port)
                async with anyio.create_task_group() as group:
                    group.start_soon(self._forward, pipe, "up")
                    group.start_soon(self._forward, pipe, "down")
        finally:
            self.pipes.remove(pipe)
            for stream in (pipe.client, pipe.upstream):
                if stream is not None:
                    with anyio.CancelScope(shield=True):
                        await anyio.aclose_forcefully(stream)

    async def _forward(self, pipe: _Pipe, direction: str) -> None:
        upstream = pipe.upstream
        assert upstream is not None
        source, target = (
            (pipe.client, upstream) if direction == "up" else (upstream, pipe.client)
        )
        try:
            while True:
                while direction in self._stalled:
                    await self._healed.wait()
                data = await source.receive(65536)
                if direction in self._blackholed:
                    continue
                cut = self._cut.get(direction)
                if cut is not None:
                    if len(data) >= cut:
                        del self._cut[direction]  # fires once
                        if cut:
                            await target.send(data[:cut])
                        pipe.reset()
                        return
                    self._cut[direction] = cut - len(data)
                await target.send(data)
                pipe.forwarded[direction] += len(data)
        except (
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            OSError,
        ):
            if direction in self._blackholed:
                # A black hole delivers no FIN either: the other end sees nothing.
                await anyio.sleep_forever()
            pipe.scope.cancel()
