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
from http import HTTPStatus
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from pymongo.database import Database
from pymongo.errors import PyMongoError

from labelstream.common.web import PageHandler, PageServer
from labelstream.monitor.dashboard import dashboard_data
from labelstream.v1 import events_pb2

log = logging.getLogger(__name__)

PAGE_PATH = Path(__file__).parent / "static" / "dashboard.html"



class ProjectStore(Protocol):
    """What the page reads: the monitor's own collections, and the projects' specs (Store)."""
    db: Database

    def project_ids(self, where: dict | None = None) -> list[str]: ...

    def get_project(self, project_id: str) -> events_pb2.ProjectSpec | None: ...


class NotFound(Exception):
    pass


class DashboardWeb:
    """Serves the page and the API on (host, port); port 0 picks a free port (see `.port`)."""

    def __init__(self, store: ProjectStore, port: int, host: str = "127.0.0.1") -> None:
        self.store = store
        self.page = PAGE_PATH.read_bytes()  # read now: a missing file fails at start, not per request
        self.http = PageServer(handler_for(self), port, host, "dashboard")
        self.port = self.http.port
        self.start = self.http.start

    def projects(self, _query: dict[str, list[str]]) -> dict:
        return {"projects": self.store.project_ids()}

    def dashboard(self, query: dict[str, list[str]]) -> dict:
        project_id = query.get("project_id", [""])[0]
        spec = self.store.get_project(project_id) if project_id else None
        if spec is None:
            raise NotFound(f"no such project: {project_id!r}")
        return dashboard_data(self.store.db, project_id, list(spec.labels))


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
