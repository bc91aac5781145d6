"""One accepted WebSocket as the protocol handlers use it, over ASGI (Starlette's WebSocket).

The handlers need little: receive a message, send text, close with a code, iterate over what
arrives until the peer is gone, and drop a connection whose client stopped reading. Every way
the connection can be gone surfaces as one exception, :class:`ConnectionClosed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from starlette.websockets import (
    WebSocket,
    WebSocketDisconnect,
    WebSocketDisconnected,
    WebSocketState,
)

__all__ = ["ABORT_EXTENSION", "Connection", "ConnectionClosed"]

# The ASGI scope extension through which this server's uvicorn protocol hands over
# ``transport.abort`` (see ``asgi.WebSocketProtocol``): a client that stopped reading is dropped
# at once, since a close frame would wait behind the data it does not read.
ABORT_EXTENSION = "whisper_streaming.abort"


class ConnectionClosed(Exception):
    """The connection is closed (by either side) or lost; ``code`` is the close code if known."""

    def __init__(self, code: int | None = None) -> None:
        super().__init__(f"connection closed ({code})" if code is not None else "connection closed")
        self.code = code


class Connection:
    """An accepted WebSocket."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.close_code: int | None = None  # the peer's, once it is gone
        self._closing: asyncio.Future[None] | None = None

    @property
    def path(self) -> str:
        """The request path (no query string)."""
        return str(self.websocket.scope.get("path", "/"))

    async def recv(self) -> str | bytes:
        """The next message.

        Raises:
            ConnectionClosed: the peer closed or the connection was lost or closed here.
        """
        try:
            message = await self.websocket.receive()
        except (WebSocketDisconnected, RuntimeError) as exc:
            raise ConnectionClosed(self.close_code) from exc
        if message["type"] == "websocket.disconnect":
            self.close_code = int(message.get("code", 1005))
            raise ConnectionClosed(self.close_code)
        text = message.get("text")
        if text is not None:
            return str(text)
        return bytes(message.get("bytes") or b"")

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                yield await self.recv()
            except ConnectionClosed:
                return

    async def send(self, text: str) -> None:
        """Send a text message (waits while the client's socket buffer is full).

        Raises:
            ConnectionClosed: the connection is gone or was closed here.
        """
        try:
            await self.websocket.send_text(text)
        except (WebSocketDisconnect, WebSocketDisconnected, RuntimeError, OSError) as exc:
            raise ConnectionClosed(self.close_code) from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once); the transport closes when the client answers, or after
        uvicorn's close timeout."""
        if self.websocket.application_state is WebSocketState.DISCONNECTED:
            return
        try:
            await self.websocket.close(code, reason)
        except (WebSocketDisconnect, WebSocketDisconnected, RuntimeError, OSError):
            pass

    def abort(self) -> None:
        """Drop the connection now, without a closing handshake."""
        extension = self.websocket.scope.get("extensions", {}).get(ABORT_EXTENSION)
        abort: Callable[[], None] | None = extension.get("abort") if extension else None
        if abort is not None:
            abort()
        elif self._closing is None:  # another ASGI server: close as well as it can, not waiting
            self._closing = asyncio.ensure_future(self.close(1008, "client does not read"))
