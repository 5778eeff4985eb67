"""A small HTTP server for a service's web page, run beside its gRPC server and stopped with it."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)


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
