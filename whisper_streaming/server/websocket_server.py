"""WhisperStreamingServer: the asyncio WebSocket server, routing, start-up and shutdown."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import mimetypes
import os
import signal
import time
import urllib.parse
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from ..audio import SAMPLE_RATE
from ..backends import load_backend
from ..backends.base import ASRBackend, InferenceRequest
from ..config import ProcessorOptions, ServerOptions
from ..exceptions import ConfigError
from .client_manager import ClientManager
from .context import ServerContext
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .scheduler import Scheduler
from .serve_client import serve_whisperlive
from .serve_json import serve_json

__all__ = [
    "JSON_PATH",
    "STATIC_DIR",
    "WHISPERLIVE_PATH",
    "WhisperStreamingServer",
    "origin_allowed",
]

logger = logging.getLogger(__name__)

WHISPERLIVE_PATH = "/"
JSON_PATH = "/ws/transcribe"
STATIC_DIR = Path(__file__).resolve().parent / "static"
# examples/ of a source checkout; served at /examples/ when present.
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


class WhisperStreamingServer:
    """Serves real-time transcription over WebSocket with one shared model.

    Args:
        backend: a ready backend; if None, ``backend_name`` is loaded with ``backend_options``.
        backend_name: registry name of the backend to load.
        backend_options: keyword arguments for the backend (model, device, compute_type, ...).
        processor_options: defaults for every session's processor.
        server_options: limits and timeouts.
        max_clients: shortcut for ``server_options.max_clients``.
        max_connection_time: shortcut for ``server_options.max_connection_time_s``.
        max_batch_size: requests per model call.
    """

    def __init__(
        self,
        backend: ASRBackend | None = None,
        *,
        backend_name: str = "faster_whisper",
        backend_options: dict[str, Any] | None = None,
        processor_options: ProcessorOptions | None = None,
        server_options: ServerOptions | None = None,
        max_clients: int | None = None,
        max_connection_time: float | None = None,
        max_batch_size: int = 1,
    ) -> None:
        options = server_options or ServerOptions()
        if max_clients is not None or max_connection_time is not None:
            import dataclasses

            options = dataclasses.replace(
                options,
                max_clients=max_clients if max_clients is not None else options.max_clients,
                max_connection_time_s=(
                    max_connection_time
                    if max_connection_time is not None
                    else options.max_connection_time_s
                ),
            )
        self.options = options
        self.processor_options = processor_options or ProcessorOptions()
        self.backend = backend
        self._backend_name = backend_name
        self._backend_options = dict(backend_options or {})
        self._max_batch_size = max_batch_size
        self.client_manager = ClientManager(options.max_clients, options.max_connection_time_s)
        self.context: ServerContext | None = None
        self._server: Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._lag_watch: asyncio.Task[None] | None = None
        self._public = False  # listening beyond loopback (see origin_allowed)
        self.static_dir = STATIC_DIR

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "localhost", port: int = 9090) -> None:
        """Load and warm up the model, then listen. ``port=0`` picks a free port."""
        loop = asyncio.get_running_loop()
        if self.options.save_audio_dir is not None:
            _prepare_folder(self.options.save_audio_dir)
        if self.backend is None:
            name, opts = self._backend_name, self._backend_options
            self.backend = await loop.run_in_executor(None, lambda: load_backend(name, **opts))
        backend = self.backend
        await loop.run_in_executor(None, _warm_up, backend)
        scheduler = Scheduler(backend, max_batch_size=self._max_batch_size)
        await scheduler.start()
        self._lag_watch = asyncio.create_task(self._watch_loop_lag())
        self._public = not _is_loopback_host(host)
        self.context = ServerContext(
            options=self.options,
            processor_options=self.processor_options,
            manager=self.client_manager,
            scheduler=scheduler,
            backend_name=backend.name,
            model_name=backend.model_name,
            multilingual=bool(getattr(backend, "is_multilingual", True)),
        )
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            max_size=self.options.max_message_bytes,
            compression=None,  # audio does not compress; deflate would only cost CPU
            # No keepalive pings: while a fast client is held back (max_backlog_s) its pong waits
            # behind the audio it already sent, and a ping timeout would drop a healthy session.
            # Dead clients are ended by the idle timeout instead.
            ping_interval=None,
        )
        logger.info(
            "serving %s model %s on ws://%s:%d (WhisperLive protocol at %s), max %d clients",
            backend.name,
            backend.model_name,
            host,
            self.port,
            WHISPERLIVE_PATH,
            self.options.max_clients,
        )

    async def _watch_loop_lag(self, interval_s: float = 0.25) -> None:
        """Observe how late a timer fires: anything that blocks the event loop shows here."""
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(interval_s)
            if self.context is not None:
                lag = loop.time() - before - interval_s
                self.context.metrics.loop_lag.observe(max(0.0, lag))

    @property
    def port(self) -> int:
        """The port actually listened on."""
        assert self._server is not None, "server not started"
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1])

    async def shutdown(self) -> None:
        """Stop accepting, flush every session (final segments are sent), close with 1001."""
        if self._server is None or self.context is None:
            return
        logger.info("shutting down: flushing %d session(s)", self.client_manager.current_clients)
        self._server.server.close()  # stop accepting new connections
        self.context.shutting_down.set()
        if self._handlers:
            _, pending = await asyncio.wait(
                set(self._handlers), timeout=self.options.shutdown_timeout_s + 5
            )
            if pending:
                logger.warning("%d session(s) did not finish in time; closing them", len(pending))
        self._server.close(close_connections=True, code=CloseCode.GOING_AWAY)
        await self._server.wait_closed()
        await self.context.scheduler.stop()
        if self._lag_watch is not None:
            self._lag_watch.cancel()
            self._lag_watch = None
        self._server = None
        logger.info("server stopped")

    async def serve_forever(self, host: str = "localhost", port: int = 9090) -> None:
        """Start, then serve until SIGINT / SIGTERM, then shut down gracefully."""
        await self.start(host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
                pass
        try:
            await stop.wait()
        finally:
            await self.shutdown()

    def run(self, host: str = "localhost", port: int = 9090) -> None:
        """Blocking: serve until interrupted (the user's guide entry point)."""
        asyncio.run(self.serve_forever(host, port))

    # -- routing -----------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert self.context is not None
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            path = ws.request.path.split("?", 1)[0] if ws.request else "/"
            if self.context.shutting_down.is_set():
                await ws.close(CloseCode.GOING_AWAY, "server shutting down")
            elif path == WHISPERLIVE_PATH:
                await serve_whisperlive(ws, self.context)
            elif path == JSON_PATH:
                await serve_json(ws, self.context)
            else:  # process_request refuses other paths; this is a safety net
                await ws.close(CloseCode.POLICY_VIOLATION, "unknown path")
        finally:
            self._handlers.discard(task)

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if request.method != "GET":
            response = _text(HTTPStatus.METHOD_NOT_ALLOWED, f"{request.method} is not allowed\n")
            response.headers["Allow"] = "GET"
            return response
        upgrade = "websocket" in (_header(request, "Upgrade") or "").lower()
        if upgrade:
            if not self._origin_allowed(request):
                return _text(HTTPStatus.FORBIDDEN, "origin not allowed\n")
            if path in (WHISPERLIVE_PATH, JSON_PATH):
                return None
            return _text(HTTPStatus.NOT_FOUND, f"no WebSocket endpoint at {path}\n")
        if path == "/health":
            return self._health()
        if path == "/metrics":
            assert self.context is not None
            return _response(HTTPStatus.OK, self.context.metrics.render(), METRICS_CONTENT_TYPE)
        if path == "/" and (self.static_dir / "index.html").is_file():
            headers = Headers([("Location", "/static/index.html"), ("Content-Length", "0")])
            return Response(HTTPStatus.FOUND.value, HTTPStatus.FOUND.phrase, headers, b"")
        if path.startswith("/static/"):
            return _static(self.static_dir, path[len("/static/") :])
        if path == "/examples/simple-client.html":
            return _static(EXAMPLES_DIR, "simple-client.html")
        return _text(HTTPStatus.NOT_FOUND, "not found\n")

    def _origin_allowed(self, request: Request) -> bool:
        origins = request.headers.get_all("Origin")
        if len(origins) > 1:  # a browser sends one
            return False
        return origin_allowed(
            origins[0] if origins else None,
            _header(request, "Host") or "",
            self.options.allowed_origins or (),
            public=self._public,
        )

    def _health(self) -> Response:
        import json

        assert self.context is not None
        from ..backends.faster_whisper import cuda_available

        workers = self.context.scheduler.alive_workers
        status = HTTPStatus.OK if workers else HTTPStatus.SERVICE_UNAVAILABLE
        body = {
            "status": "ok" if workers else "degraded",
            "websocket_enabled": True,
            "active_connections": self.client_manager.current_clients,
            "max_clients": self.options.max_clients,
            "backend": self.context.backend_name,
            "model": self.context.model_name,
            "model_loaded": self.backend is not None,
            "workers": workers,
            "worker_restarts": self.context.scheduler.restarts,
            "gpu_available": cuda_available(),
            "uptime_s": round(time.monotonic() - self.context.started_at, 1),
        }
        return _response(status, json.dumps(body).encode(), "application/json")


def _prepare_folder(folder: str) -> None:
    """Create the folder audio is saved to, or explain why it cannot be used."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder to save audio in ({folder!r}): {exc}") from exc
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"the folder to save audio in is not writable: {folder!r}")
    logger.info("saving each session's audio in %s", os.path.abspath(folder))


def _warm_up(backend: ASRBackend) -> None:
    """One decode at start-up, so the first client does not pay for lazy initialisation."""
    import numpy as np

    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    audio = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    try:
        backend.transcribe(InferenceRequest(audio, 0.0, beam_size=1))
    except Exception:
        logger.exception("warm-up decode failed")


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def origin_allowed(
    origin: str | None, host: str, allowed: tuple[str, ...], *, public: bool
) -> bool:
    """Whether a browser page from ``origin`` may open a WebSocket on this server.

    Allowed: clients that send no Origin (not browsers), listed origins (``"*"``: any), pages on
    localhost, and the server's own pages (Origin matching the Host header) reached by IP
    address, or by name when the server listens beyond loopback (``public``). A page reached by
    name on a loopback-only server is refused unless listed: it could be a DNS rebinding page
    (an attacker's name resolving to 127.0.0.1), whose Origin and Host would match too.
    """
    if origin is None or origin in allowed or "*" in allowed:
        return True
    try:
        parts = urllib.parse.urlsplit(origin)
        hostname = parts.hostname or ""
    except ValueError:  # "http://[::1" and the like
        return False
    if _is_loopback_host(hostname):
        return True
    return parts.netloc == host and (public or _is_ip(hostname))


def _header(request: Request, name: str) -> str | None:
    """A header's value; None when it is missing or repeated (``Headers.get`` raises then)."""
    values = request.headers.get_all(name)
    return values[0] if len(values) == 1 else None


def _is_loopback_host(hostname: str) -> bool:
    return hostname == "localhost" or _is_ip(hostname, loopback=True)


def _is_ip(hostname: str, *, loopback: bool = False) -> bool:
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return address.is_loopback or not loopback


def _static(root: Path, relative: str) -> Response:
    """A file under ``root``; anything that resolves outside it (``..``, encoded or not), or
    that the file system refuses (a name too long), is 404."""
    name = urllib.parse.unquote(relative)
    if not name or "\x00" in name or "\\" in name:
        return _text(HTTPStatus.NOT_FOUND, "not found\n")
    base = root.resolve()
    try:
        target = (base / name).resolve()
        found = base in target.parents and target.is_file()
    except OSError:
        found = False
    if not found:
        return _text(HTTPStatus.NOT_FOUND, "not found\n")
    content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type in ("application/javascript",):
        content_type += "; charset=utf-8"
    return _response(HTTPStatus.OK, target.read_bytes(), content_type)


def _text(status: HTTPStatus, text: str) -> Response:
    return _response(status, text.encode(), "text/plain; charset=utf-8")
