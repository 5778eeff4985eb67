"""A service's web page on Starlette, served by uvicorn in a daemon thread beside the service's
gRPC server and stopped with it (graceful: requests in flight finish, within a few seconds).

What the pages share: the page itself with a strict Content-Security-Policy, JSON answers and
refusals ({"error": message, "code": gRPC status name}), a health path for HTTP probes, and the
server's life (bind at construction so that port 0 is known at once, serve until the stop event).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from labelstream.common.runtime import Runtime

log = logging.getLogger(__name__)

# The pages are self-contained: nothing from other origins, so a text shown on a page can never
# pull in a script or beacon. Inline script and style are the pages' own.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The path of the HTTP probes (Kubernetes readiness and liveness, helm/labelstream): 200 while the
# service is SERVING on its gRPC health service, 503 otherwise.
HEALTH_PATH = "/healthz"
# Seconds a stopping server gives requests in flight before it cancels them.
GRACEFUL_STOP_S = 5
# Idle keep-alive connections are closed after this many seconds (a browser reconnects at once).
KEEP_ALIVE_S = 30

Handler = Callable[[Request, HTTPException], Response]


def finite(value: float | None) -> float | None:
    """JSON has no NaN: a value not known yet ("NaN") is null."""
    return None if value is None or math.isnan(value) else float(value)


def page_response(page: bytes) -> Response:
    return Response(page, HTTPStatus.OK, PAGE_HEADERS, media_type="text/html; charset=utf-8")


def json_response(status: HTTPStatus, body: object) -> Response:
    """`body` as JSON; allow_nan=False: a NaN that slipped through is an error here, not a page that
    fails to parse it."""
    return json_bytes_response(status, json.dumps(body, allow_nan=False).encode())


def json_bytes_response(status: HTTPStatus, payload: bytes) -> Response:
    return Response(payload, status, {"Cache-Control": "no-store"}, media_type="application/json")


def error_response(status: HTTPStatus, message: str, code: str) -> Response:
    return json_response(status, {"error": message, "code": code})


def serving(runtime: Runtime) -> Callable[[], bool]:
    """Whether the service is SERVING, as its gRPC health service says: no part unhealthy, not stopping."""
    return lambda: not runtime.unhealthy and not runtime.stop_event.is_set()


def health_route(serving: Callable[[], bool]) -> Route:
    """GET /healthz: what the gRPC health service says, for probes that reach the web port."""
    def health(_request: Request) -> Response:
        up = serving()
        return json_response(HTTPStatus.OK if up else HTTPStatus.SERVICE_UNAVAILABLE,
                             {"status": "SERVING" if up else "NOT_SERVING"})
    return Route(HEALTH_PATH, health, methods=["GET"])


def page_app(routes: Sequence[BaseRoute], not_found: Handler, method_not_allowed: Handler) -> Starlette:
    """A Starlette app of `routes` whose 404 and 405 answers are the page's own JSON refusals."""
    async def on_not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return not_found(request, exc)

    async def on_method_not_allowed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        response = method_not_allowed(request, exc)
        response.headers.update(exc.headers or {})  # Allow: the methods the path takes
        return response

    return Starlette(routes=list(routes), exception_handlers={
        HTTPStatus.NOT_FOUND.value: on_not_found, HTTPStatus.METHOD_NOT_ALLOWED.value: on_method_not_allowed})


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); IPv6 when host is an IPv6 address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=128)


class PageServer:
    """Serves `app` on (host, port) with uvicorn in a daemon thread; port 0 picks a free port
    (see `.port`). The socket is bound here, so a port in use fails the service at start."""

    def __init__(self, app: Starlette, port: int, host: str, name: str, server: str) -> None:
        self.name = name
        self.socket = bind(host, port)
        self.host = host
        self.port: int = self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(
            app, lifespan="off", http="h11", ws="none", interface="asgi3",
            log_config=None,  # the service's structured logging stays as it is
            access_log=False, server_header=False, headers=[("Server", server)],
            proxy_headers=False, timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=GRACEFUL_STOP_S))
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def start(self, stop_event: threading.Event) -> None:
        self.thread.start()
        threading.Thread(target=self._stop_when_set, args=(stop_event,), name=f"{self.name}-stop",
                         daemon=True).start()
        log.info("%s on http://%s:%d/", self.name, self.host, self.port)

    def stop(self, timeout_s: float = GRACEFUL_STOP_S + 2) -> None:
        """Stop accepting, let requests in flight finish (at most GRACEFUL_STOP_S), and wait for it."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout_s)
        else:
            self.socket.close()

    def _serve(self) -> None:
        try:
            # uvicorn installs no signal handlers outside the main thread: the service's SIGTERM
            # handler sets the stop event, which stops this server.
            self.server.run(sockets=[self.socket])
        except (OSError, asyncio.CancelledError):
            log.exception("%s stopped serving", self.name)

    def _stop_when_set(self, stop_event: threading.Event) -> None:
        stop_event.wait()
        self.stop()
