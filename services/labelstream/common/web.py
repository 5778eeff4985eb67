"""A small HTTP server for a service's web page, run beside its gRPC server and stopped with it."""

from __future__ import annotations

import json
import logging
import math
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


def finite(value: float | None) -> float | None:
    """JSON has no NaN: a value not known yet ("NaN") is null."""
    return None if value is None or math.isnan(value) else float(value)


class PageHandler(BaseHTTPRequestHandler):
    """What a page's request handler shares: the page itself, JSON answers, structured logs."""

    sys_version = ""
    timeout = 30  # a client that stops sending mid-request does not hold a thread forever

    def send_page(self, page: bytes) -> None:
        self.send_body(HTTPStatus.OK, page, "text/html; charset=utf-8", PAGE_HEADERS)

    def send_json(self, status: HTTPStatus, payload: bytes) -> None:
        self.send_body(status, payload, "application/json", {"Cache-Control": "no-store"})

    def send_error_json(self, status: HTTPStatus, message: str, code: str) -> None:
        self.send_json(status, json.dumps({"error": message, "code": code}).encode())

    def send_body(self, status: HTTPStatus, payload: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        # http.server writes every request to stderr; the service's logs are structured instead.
        log.debug("%s %s", self.address_string(), format % args)


class PageServer:
    """Serves `handler` on (host, port) in daemon threads; port 0 picks a free port (see `.port`)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int, host: str, name: str) -> None:
        self.name = name
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]

    def start(self, stop_event: threading.Event) -> None:
        threading.Thread(target=self.server.serve_forever, name=self.name, daemon=True).start()
        threading.Thread(target=self._stop_when_set, args=(stop_event,), name=f"{self.name}-stop",
                         daemon=True).start()
        log.info("%s on http://%s:%d/", self.name, *self.server.server_address[:2])

    def _stop_when_set(self, stop_event: threading.Event) -> None:
        stop_event.wait()
        self.server.shutdown()
        self.server.server_close()
