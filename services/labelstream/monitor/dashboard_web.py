"""The monitor's dashboard page and its read-only JSON API, served beside the monitor's gRPC API.

  GET /                              the page
  GET /api/projects                  {"projects": [project ids]}
  GET /api/dashboard?project_id=     dashboard_data() of that project

No authentication: the page is a read-only operations view with no worker identities beyond ids
and no item texts, and it listens on the configured bind host (loopback by default) like the
gRPC API. Put it behind an authenticating proxy before exposing that host to anyone else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from pymongo.database import Database
from pymongo.errors import PyMongoError

from labelstream.common.web import PageServer
from labelstream.monitor.dashboard import dashboard_data

log = logging.getLogger(__name__)

PAGE_PATH = Path(__file__).parent / "static" / "dashboard.html"
REQUEST_TIMEOUT_S = 30  # a client that stops mid-request does not hold a thread forever

# Self-contained page: nothing from other origins; inline script and style are the page's own.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class HasDb(Protocol):
    db: Database


class NotFound(Exception):
    pass


def database_of(source: HasDb | Database | Callable[[], Database]) -> Callable[[], Database]:
    """A Store (its .db), a Database, or a function returning one."""
    if isinstance(source, Database):
        return lambda: source
    if hasattr(source, "db"):
        return lambda: source.db
    return source


class DashboardWeb:
    """Serves the page and the API on (host, port); port 0 picks a free port (see `.port`)."""

    def __init__(self, source: HasDb | Database | Callable[[], Database], port: int,
                 host: str = "127.0.0.1") -> None:
        self.db = database_of(source)
        self.page = PAGE_PATH.read_bytes()  # read now: a missing file fails at start, not per request
        self.http = PageServer(handler_for(self), port, host, "dashboard")
        self.port = self.http.port
        self.start = self.http.start

    def projects(self, _query: dict[str, list[str]]) -> dict:
        return {"projects": sorted(d["_id"] for d in self.db().projects.find({}, {"_id": 1}))}

    def dashboard(self, query: dict[str, list[str]]) -> dict:
        project_id = query.get("project_id", [""])[0]
        db = self.db()
        if not project_id or db.projects.find_one({"_id": project_id}, {"_id": 1}) is None:
            raise NotFound(f"no such project: {project_id!r}")
        return dashboard_data(db, project_id)


def error_body(message: str, code: str) -> bytes:
    return json.dumps({"error": message, "code": code}).encode()


def handler_for(web: DashboardWeb) -> type[BaseHTTPRequestHandler]:
    calls = {"/api/projects": web.projects, "/api/dashboard": web.dashboard}

    class Handler(BaseHTTPRequestHandler):
        server_version = "labelstream-dashboard"
        sys_version = ""
        timeout = REQUEST_TIMEOUT_S

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, web.page, "text/html; charset=utf-8", PAGE_HEADERS)
                return
            call = calls.get(url.path)
            if call is None:
                self._send(HTTPStatus.NOT_FOUND, error_body(f"no such page: {url.path}", "NOT_FOUND"),
                           "application/json", {"Cache-Control": "no-store"})
                return
            try:
                # allow_nan=False: a NaN that slipped through is a 500 here, not a page that fails to parse
                status, payload = HTTPStatus.OK, json.dumps(call(parse_qs(url.query)), allow_nan=False).encode()
            except NotFound as error:
                status, payload = HTTPStatus.NOT_FOUND, error_body(str(error), "NOT_FOUND")
            except PyMongoError:
                log.exception("store error serving %s", self.path)
                status = HTTPStatus.SERVICE_UNAVAILABLE
                payload = error_body("the store is unavailable; retry in a few seconds", "UNAVAILABLE")
            except Exception:
                log.exception("failed serving %s", self.path)
                status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, error_body("internal error", "INTERNAL")
            self._send(status, payload, "application/json", {"Cache-Control": "no-store"})

        def _send(self, status: HTTPStatus, payload: bytes, content_type: str, headers: dict[str, str]) -> None:
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

    return Handler
