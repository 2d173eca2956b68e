"""The HTTP front end of the inference service: an aiohttp server on the Server's own event loop,
serving the KServe v2 REST routes (routes.py) over the same InferenceResources as gRPC.

The Server starts it after its Resources and stops it before them (``Server.add_front_end``).
Worker processes each bind the HTTP port with SO_REUSEPORT, as they do the gRPC port. Every
failure is ``{"error": "<message>"}`` with the error's HTTP status, unknown paths and methods
included; an unexpected exception answers "internal error (id=...)" and is logged once.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler

from ...errors import ConfigError, RpcError, UsageError, bounded_message, echo, internal_error
from ...restriction import Restrictions
from .body import UnreadBody
from .routes import add_routes, json_response

if TYPE_CHECKING:
    from ...config import ServerConfig
    from ...tls import ServerTls
    from ..service import InferenceResources

__all__ = ["HTTP_BODY_TIMEOUT", "HttpFrontEnd"]

log = logging.getLogger("asyncinfer.inference.http")


#: Seconds a request body may take to arrive, by default.
HTTP_BODY_TIMEOUT = 30.0
#: Seconds an idle keep-alive connection stays open.
KEEPALIVE_TIMEOUT = 75.0


def error_response(status: int, message: str) -> web.Response:
    return json_response({"error": bounded_message(message)}, status)


def _guarded(handler: Handler, api: str | None, restrictions: Restrictions) -> Handler:
    """``handler`` answering every failure as ``{"error": ...}`` (an unexpected exception as
    "internal error (id=...)", logged once), and refusing calls of a restricted ``api``
    without its key header with 403 and tritonserver's text (the header is the key itself
    over HTTP). A wrapper per route rather than aiohttp middlewares, which cost every request
    two more coroutines and a lookup."""
    restricted = api is not None and restrictions.group_of(api) is not None

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            if restricted:
                refused = restrictions.refusal(api, request.headers.get, "", noun="API")
                if refused is not None:
                    return error_response(403, refused)
            return await handler(request)
        except RpcError as exc:
            reply = error_response(exc.http_status, exc.message)
            if isinstance(exc, UnreadBody):
                reply.force_close()
            return reply
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            what = f"{request.method} {echo(request.path)}"
            return error_response(exc.status, f"{exc.reason}: {what}")
        except Exception as exc:
            error = internal_error(exc, f"HTTP {request.method} {request.path}")
            return error_response(error.http_status, error.message)

    return guarded


def _add_unmatched(app: web.Application) -> None:
    """The last route, for every path and method no other route takes: 405 when another
    route has the path (for other methods), 404 otherwise, as aiohttp's router says them."""
    routes = list(app.router.resources())

    async def unmatched(request: web.Request) -> web.StreamResponse:
        allowed: set[str] = set()
        for resource in routes:
            allowed |= (await resource.resolve(request))[1]
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        raise web.HTTPNotFound()

    app.router.add_route("*", "/{path:.*}", _guarded(unmatched, None, Restrictions()))


class HttpFrontEnd:
    """The KServe v2 REST protocol over ``resources`` on ``host:port`` (host None: the
    Server's; port 0 picks a free one)."""

    name = "HTTP"

    def __init__(
        self,
        resources: InferenceResources,
        *,
        host: str | None = None,
        port: int = 8000,
        reuse_port: bool = False,
        body_timeout: float = HTTP_BODY_TIMEOUT,
        tls: ServerTls | None = None,
        restrictions: Restrictions | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError(f"http_port must be 0..65535, not {port}")
        if body_timeout <= 0:
            raise ConfigError(f"the HTTP body timeout must be > 0 seconds, not {body_timeout}")
        self.resources = resources
        self.host = host
        self.requested_port = port
        self.reuse_port = reuse_port
        self.body_timeout = body_timeout
        self.tls = tls
        self.restrictions = restrictions or Restrictions()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._bound_host = ""

    @property
    def port(self) -> int:
        if self._port is None:
            raise UsageError("the HTTP front end is not started; its port is known after start()")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self._bound_host}]" if ":" in self._bound_host else self._bound_host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def start(self, config: ServerConfig) -> None:
        host = self.host or config.host
        app = web.Application(client_max_size=config.max_receive_message_bytes)
        restrictions = self.restrictions
        add_routes(
            app,
            self.resources,
            body_timeout=self.body_timeout,
            max_body_bytes=config.max_receive_message_bytes,
            wrap=lambda handler, api: _guarded(handler, api, restrictions),
        )
        _add_unmatched(app)
        ssl_context = self.tls.ssl_context() if self.tls else None
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
            shutdown_timeout=config.grace,
        )
        sock = self._bind(host)
        await runner.setup()
        try:
            await web.SockSite(runner, sock, backlog=1024, ssl_context=ssl_context).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner, self._bound_host = runner, host
        self._port = int(sock.getsockname()[1])
        log.info("HTTP on %s", self.url)

    def _bind(self, host: str) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot serve HTTP on {host}:{self.requested_port}: {exc.strerror}; choose "
                "another --http-port, or 0 to pick a free one"
            ) from exc
        return sock

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (the Server's grace), close."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
