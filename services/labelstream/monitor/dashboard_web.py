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
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from pymongo.database import Database
from pymongo.errors import PyMongoError

from labelstream.common.web import PageHandler, PageServer
from labelstream.monitor.dashboard import dashboard_data

log = logging.getLogger(__name__)

PAGE_PATH = Path(__file__).parent / "static" / "dashboard.html"



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


def handler_for(web: DashboardWeb) -> type[PageHandler]:
    calls = {"/api/projects": web.projects, "/api/dashboard": web.dashboard}

    class Handler(PageHandler):
        server_version = "labelstream-dashboard"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path in ("/", "/index.html"):
                self.send_page(web.page)
                return
            call = calls.get(url.path)
            if call is None:
                self.send_error_json(HTTPStatus.NOT_FOUND, f"no such page: {url.path}", "NOT_FOUND")
                return
            try:
                # allow_nan=False: a NaN that slipped through is a 500 here, not a page that fails to parse
                payload = json.dumps(call(parse_qs(url.query)), allow_nan=False).encode()
            except NotFound as error:
                self.send_error_json(HTTPStatus.NOT_FOUND, str(error), "NOT_FOUND")
                return
            except PyMongoError:
                log.exception("store error serving %s", self.path)
                self.send_error_json(HTTPStatus.SERVICE_UNAVAILABLE, "the store is unavailable; retry in a few seconds",
                                     "UNAVAILABLE")
                return
            except Exception:
                log.exception("failed serving %s", self.path)
                self.send_error_json(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", "INTERNAL")
                return
            self.send_json(HTTPStatus.OK, payload)

    return Handler
