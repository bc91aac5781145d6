"""WhisperStreamingServer: one ASGI application (Starlette) under uvicorn, on one port: both
WebSocket protocols, health, metrics and the demo page; start-up and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import time
import urllib.parse
from http import HTTPStatus
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import CloseCode

from ..audio import SAMPLE_RATE
from ..backends import load_backend
from ..backends.base import ASRBackend, InferenceRequest
from ..backends.faster_whisper import cuda_available
from ..config import ProcessorOptions, ServerOptions
from ..exceptions import ConfigError
from ..speakers import SpeakerEncoder, load_encoder
from . import rest
from .auth import ApiKeys, Verdict
from .client_manager import ClientManager
from .connection import ABORT_EXTENSION, Connection
from .context import ServerContext
from .driver import serve
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .openapi import openapi
from .protocols.json_v1 import JsonAdapter
from .protocols.whisperlive import WhisperLiveAdapter
from .scheduler import Scheduler

__all__ = [
    "JSON_PATH",
    "STATIC_DIR",
    "WHISPERLIVE_PATH",
    "WebSocketProtocol",
    "WhisperStreamingServer",
    "origin_allowed",
]

logger = logging.getLogger(__name__)

WHISPERLIVE_PATH = "/"
JSON_PATH = "/ws/transcribe"
STATIC_DIR = Path(__file__).resolve().parent / "static"
# Pages on this machine (any port), always allowed to call the server from a browser.
LOCAL_ORIGIN = r"https?://(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?"


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
        ssl_certfile / ssl_keyfile: serve TLS (``wss://`` and ``https://``) with this
            certificate chain and private key (PEM); both or neither.

    Raises:
        ConfigError: invalid options (API keys, TLS files).
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
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        speaker_encoder: SpeakerEncoder | None = None,
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
        self.speaker_encoder = speaker_encoder
        self._backend_name = backend_name
        self._backend_options = dict(backend_options or {})
        self._max_batch_size = max_batch_size
        self.client_manager = ClientManager(options.max_clients, options.max_connection_time_s)
        self.context: ServerContext | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._uvicorn_loop: asyncio.Task[None] | None = None
        self._sockets: list[socket.socket] = []
        self._handlers: set[asyncio.Task[Any]] = set()
        self._lag_watch: asyncio.Task[None] | None = None
        self._public = False  # listening beyond loopback (see origin_allowed)
        self.static_dir = STATIC_DIR
        self.api_keys = ApiKeys(options.api_keys)
        self._ssl = _check_tls(ssl_certfile, ssl_keyfile)
        self._static_files: StaticFiles | None = None
        self._gpu_available = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "localhost", port: int = 9090) -> None:
        """Load and warm up the model, then listen. ``port=0`` picks a free port.

        Raises:
            OSError: the address cannot be listened on (checked before the model loads).
        """
        loop = asyncio.get_running_loop()
        if self.options.save_audio_dir is not None:
            _prepare_folder(self.options.save_audio_dir)
        sockets = _listen(host, port)
        try:
            if self.backend is None:
                name, opts = self._backend_name, self._backend_options
                self.backend = await loop.run_in_executor(None, lambda: load_backend(name, **opts))
            backend = self.backend
            if self.options.diarization and self.speaker_encoder is None:
                o = self.options
                self.speaker_encoder = await loop.run_in_executor(
                    None, load_encoder, o.speaker_encoder, o.speaker_model, o.hf_token
                )
            await loop.run_in_executor(None, _warm_up, backend)
            # Asked once: a CUDA query per /health request would run on the event loop.
            self._gpu_available = await loop.run_in_executor(None, cuda_available)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
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
            speaker_encoder=self.speaker_encoder if self.options.diarization else None,
        )
        config = uvicorn.Config(
            self.app(),
            ws=WebSocketProtocol,
            ws_max_size=self.options.max_message_bytes,
            # Audio does not compress; deflate would only cost CPU.
            ws_per_message_deflate=False,
            # No keepalive pings: while a fast client is held back (max_backlog_s) its pong
            # waits behind the audio it already sent, and a ping timeout would drop a healthy
            # session. Dead clients are ended by the idle timeout instead.
            ws_ping_interval=None,
            ws_ping_timeout=None,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
            ssl_certfile=self._ssl[0] if self._ssl else None,
            ssl_keyfile=self._ssl[1] if self._ssl else None,
        )
        # uvicorn logs each WebSocket's path with its query string (which may hold an API key)
        # at INFO: sessions are logged here instead.
        uvicorn_log = logging.getLogger("uvicorn.error")
        if uvicorn_log.level == logging.NOTSET:
            uvicorn_log.setLevel(logging.WARNING)
        config.load()
        self._uvicorn = server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        self._sockets = sockets
        await server.startup(sockets=sockets)
        # uvicorn's housekeeping (the Date header, once a second) until shutdown.
        self._uvicorn_loop = asyncio.create_task(server.main_loop())
        logger.info(
            "serving %s model %s on %s://%s:%d (WhisperLive protocol at %s), max %d clients%s",
            backend.name,
            backend.model_name,
            "wss" if self._ssl else "ws",
            host,
            self.port,
            WHISPERLIVE_PATH,
            self.options.max_clients,
            ", API keys required" if self.api_keys.enabled else "",
        )

    def app(self) -> Starlette:
        """The ASGI application: both WebSocket protocols, the OpenAI-compatible REST API,
        health, metrics, the demo page."""
        # Cross-origin HTTP (the REST API from a web page): the same origins as WebSockets
        # (origin_allowed), by Starlette's CORS middleware. Same-origin requests need no CORS.
        cors = Middleware(
            CORSMiddleware,
            allow_origins=self.options.allowed_origins or (),
            allow_origin_regex=LOCAL_ORIGIN,
            allow_methods=("GET", "POST"),
            allow_headers=("Authorization", "Content-Type"),
            expose_headers=("X-Whisper-Streaming-Warning",),
        )
        return Starlette(
            middleware=[cors],
            routes=[
                WebSocketRoute(WHISPERLIVE_PATH, self._websocket),
                WebSocketRoute(JSON_PATH, self._websocket),
                WebSocketRoute("/{path:path}", _no_websocket_here),
                Route("/", self._index),
                Route("/health", self._health),
                Route("/health/websocket", self._health),
                Route("/health/live", self._live),
                Route("/metrics", self._metrics),
                Mount("/static", app=self._static),
                Route("/examples/simple-client.html", _simple_client),
                Route("/openapi.json", self._openapi),
                Route("/v1/models", self._models),
                Route("/v1/audio/transcriptions", self._transcriptions, methods=["POST"]),
                Route("/v1/audio/translations", self._translations, methods=["POST"]),
            ],
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
        assert self._sockets, "server not started"
        return int(self._sockets[0].getsockname()[1])

    async def shutdown(self) -> None:
        """Stop accepting, flush every session (final segments are sent), close with 1001."""
        if self._uvicorn is None or self.context is None:
            return
        logger.info("shutting down: flushing %d session(s)", self.client_manager.current_clients)
        # Draining: still listening, so /health answers 503 "draining" and a new WebSocket or
        # upload gets 503 (a proxy tries another instance), while open sessions get their finals.
        self.context.shutting_down.set()
        if self._handlers:
            _, pending = await asyncio.wait(
                set(self._handlers), timeout=self.options.shutdown_timeout_s + 5
            )
            if pending:
                logger.warning("%d session(s) did not finish in time; closing them", len(pending))
        for listener in self._uvicorn.servers:
            listener.close()  # stop accepting new connections
        self._uvicorn.should_exit = True
        if self._uvicorn_loop is not None:
            await self._uvicorn_loop
            self._uvicorn_loop = None
        await self._uvicorn.shutdown()
        await self.context.scheduler.stop()
        if self._lag_watch is not None:
            self._lag_watch.cancel()
            self._lag_watch = None
        self._uvicorn = None
        self._sockets = []
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

    async def _websocket(self, websocket: WebSocket) -> None:
        """Both WebSocket protocols: the origin check, then the path's handler."""
        assert self.context is not None
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if not self._origin_allowed(websocket):
                await websocket.send_denial_response(
                    PlainTextResponse("origin not allowed\n", HTTPStatus.FORBIDDEN)
                )
                return
            open_path = websocket.scope.get("path") == WHISPERLIVE_PATH and (
                self.options.open_whisperlive
            )
            verdict = Verdict.OK if open_path else self._verdict(websocket)
            if verdict is not Verdict.OK and "origin" not in websocket.headers:
                # Not a browser: the HTTP status says why.
                await websocket.send_denial_response(_unauthorized(verdict))
                return
            full = self.client_manager.current_clients >= self.options.max_clients
            if self.context.shutting_down.is_set() or (full and self.options.refuse_when_full):
                why = "server shutting down" if self.context.shutting_down.is_set() else "full"
                await websocket.send_denial_response(
                    PlainTextResponse(f"{why}\n", HTTPStatus.SERVICE_UNAVAILABLE)
                )
                return
            await websocket.accept()
            ws = Connection(websocket)
            if verdict is not Verdict.OK:
                # A browser cannot read a refused upgrade's status; it can read a close reason.
                await ws.close(CloseCode.POLICY_VIOLATION, verdict.message)
                return
            adapter = JsonAdapter() if ws.path == JSON_PATH else WhisperLiveAdapter()
            await serve(ws, self.context, adapter)
        finally:
            self._handlers.discard(task)

    def _origin_allowed(self, websocket: WebSocket) -> bool:
        origins = websocket.headers.getlist("origin")
        if len(origins) > 1:  # a browser sends one
            return False
        hosts = websocket.headers.getlist("host")
        return origin_allowed(
            origins[0] if origins else None,
            hosts[0] if len(hosts) == 1 else "",
            self.options.allowed_origins or (),
            public=self._public,
        )

    async def _index(self, request: Request) -> Response:
        """A browser opening the server's address is sent to the demo page."""
        if (self.static_dir / "index.html").is_file():
            return RedirectResponse("/static/index.html", HTTPStatus.FOUND)
        return PlainTextResponse("not found\n", HTTPStatus.NOT_FOUND)

    async def _static(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The demo page's files, from ``static_dir`` as it is now."""
        if self._static_files is None or self._static_files.directory != self.static_dir:
            self._static_files = StaticFiles(directory=self.static_dir, check_dir=False)
        await self._static_files(scope, receive, send)

    def _verdict(self, connection: HTTPConnection) -> Verdict:
        """The API-key verdict on a request (OK when no keys are set)."""
        authorization = connection.headers.getlist("authorization")
        tokens = connection.query_params.getlist("token")
        return self.api_keys.check(
            authorization[0] if len(authorization) == 1 else None,
            tokens[0] if len(tokens) == 1 else None,
        )

    def _draining(self) -> Response | None:
        assert self.context is not None
        if not self.context.shutting_down.is_set():
            return None
        return rest.error_response(503, "server shutting down", code="draining")

    def _refused(self, request: Request) -> Response | None:
        verdict = self._verdict(request)
        if verdict is Verdict.OK:
            return None
        status = 401 if verdict is Verdict.MISSING else 403
        response = rest.error_response(status, verdict.message, code="invalid_api_key")
        if verdict is Verdict.MISSING:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    async def _openapi(self, request: Request) -> Response:
        from .. import __version__

        assert self.context is not None
        return JSONResponse(openapi(self.context.model_name, __version__))

    async def _models(self, request: Request) -> Response:
        assert self.context is not None
        return self._refused(request) or rest.models(self.context)

    async def _transcriptions(self, request: Request) -> Response:
        return await self._rest(request, "transcribe")

    async def _translations(self, request: Request) -> Response:
        return await self._rest(request, "translate")

    async def _rest(self, request: Request, task: str) -> Response:
        """A REST transcription; a shutdown waits for it as for a live session."""
        assert self.context is not None
        refused = self._refused(request) or self._draining()
        if refused is not None:
            return refused
        task_handle = asyncio.current_task()
        assert task_handle is not None
        self._handlers.add(task_handle)
        try:
            return await rest.transcribe(request, self.context, task=task)
        finally:
            self._handlers.discard(task_handle)

    async def _live(self, request: Request) -> Response:
        """Liveness: the process serves HTTP (a full or draining server is alive)."""
        return JSONResponse({"status": "alive"})

    async def _metrics(self, request: Request) -> Response:
        assert self.context is not None
        return Response(self.context.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    async def _health(self, request: Request) -> Response:
        assert self.context is not None
        workers = self.context.scheduler.alive_workers
        # Readiness: 503 while this instance should get no new session, so a load balancer
        # sends them elsewhere (liveness is /health/live).
        if self.context.shutting_down.is_set():
            state = "draining"
        elif not workers:
            state = "degraded"
        elif self.client_manager.current_clients >= self.options.max_clients:
            state = "full"
        else:
            state = "ok"
        status = HTTPStatus.OK if state == "ok" else HTTPStatus.SERVICE_UNAVAILABLE
        body = {
            "status": state,
            "websocket_enabled": True,
            "active_connections": self.client_manager.current_clients,
            "max_clients": self.options.max_clients,
            "backend": self.context.backend_name,
            "model": self.context.model_name,
            "model_loaded": self.backend is not None,
            "workers": workers,
            "worker_restarts": self.context.scheduler.restarts,
            "gpu_available": self._gpu_available,
            "uptime_s": round(time.monotonic() - self.context.started_at, 1),
        }
        return JSONResponse(body, status)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol on the websockets library's sans-I/O core, handing the
    application ``transport.abort`` too (scope extension ``ABORT_EXTENSION``), so a client
    that stopped reading is dropped without waiting behind the data it does not read."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][ABORT_EXTENSION] = {"abort": self.transport.abort}


def _unauthorized(verdict: Verdict) -> Response:
    if verdict is Verdict.MISSING:
        return PlainTextResponse(
            verdict.message + "\n", HTTPStatus.UNAUTHORIZED, {"WWW-Authenticate": "Bearer"}
        )
    return PlainTextResponse(verdict.message + "\n", HTTPStatus.FORBIDDEN)


def _check_tls(certfile: str | None, keyfile: str | None) -> tuple[str, str] | None:
    """Both TLS files, readable, or neither."""
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        raise ConfigError("TLS needs both a certificate file and a key file")
    for name in (certfile, keyfile):
        if not os.access(name, os.R_OK):
            raise ConfigError(f"cannot read the TLS file {name!r}")
    return certfile, keyfile


async def _no_websocket_here(websocket: WebSocket) -> None:
    path = websocket.scope.get("path", "")
    await websocket.send_denial_response(
        PlainTextResponse(f"no WebSocket endpoint at {path}\n", HTTPStatus.NOT_FOUND)
    )


async def _simple_client(request: Request) -> Response:
    # Package data (examples/simple-client.html in a checkout is a link to it), so an installed
    # server serves it too.
    return FileResponse(STATIC_DIR / "simple-client.html", media_type="text/html; charset=utf-8")


def _listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to ("localhost" is often both
    127.0.0.1 and ::1), all on one port (``port`` 0: a free one, picked by the first)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if len(sockets) > 1:  # the port the first one got
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


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


def _is_loopback_host(hostname: str) -> bool:
    return hostname == "localhost" or _is_ip(hostname, loopback=True)


def _is_ip(hostname: str, *, loopback: bool = False) -> bool:
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return address.is_loopback or not loopback
