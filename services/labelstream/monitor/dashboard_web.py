"""The monitor's dashboard page and its read-only JSON API, served beside the monitor's gRPC API
(Starlette on uvicorn, labelstream.common.web).

  GET /                              the page (open: it holds no data; it asks for a token)
  GET /api/projects                  {"projects": [the project ids the caller may read],
                                      "signed_in_as": {"role", "name", "project_id"}}
  GET /api/dashboard?project_id=     dashboard_data() of that project
  GET /healthz                       200 while the monitor is SERVING, else 503 (HTTP probes; open)

Every API call needs `Authorization: Bearer <token>`, checked by the same TokenDirectory and rules
as the monitor's gRPC API (labelstream.common.auth.WEB_RULES): /api/projects lists every project to
an admin and their own to a project owner; /api/dashboard admits an admin and that project's owner
(as GetProjectStats does). Refusals are {"error": message, "code": gRPC status name}: 401
UNAUTHENTICATED without a known token, 403 PERMISSION_DENIED for another role or project.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs

from pymongo.database import Database
from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from labelstream.common.auth import (
    HTTP_STATUS,
    WEB_RULES,
    AuthError,
    Principal,
    TokenDirectory,
    authorize,
    bearer,
    readable_projects,
)
from labelstream.common.web import PageServer, error_response, health_route, json_response, page_app, page_response
from labelstream.monitor.dashboard import dashboard_data
from labelstream.v1 import events_pb2

log = logging.getLogger(__name__)

PAGE_PATH = Path(__file__).parent / "static" / "dashboard.html"
PAGE_PATHS = ("/", "/index.html")

# An API call: (the caller, the request's query) -> the JSON body of a 200.
ApiCall = Callable[[Principal, dict[str, list[str]]], dict]


class ProjectStore(Protocol):
    """What the page reads: the monitor's own collections, and the projects' specs (Store)."""
    db: Database

    def project_ids(self, where: dict | None = None) -> list[str]: ...

    def get_project(self, project_id: str) -> events_pb2.ProjectSpec | None: ...


class NotFound(Exception):
    pass


class DashboardWeb:
    """Serves the page and the API on (host, port); port 0 picks a free port (see `.port`).
    `serving` tells /healthz whether the monitor is SERVING (always, when not given); `tokens` says
    who a bearer token names (the monitor's own directory, shared with its gRPC interceptor)."""

    def __init__(self, store: ProjectStore, port: int, host: str = "127.0.0.1",
                 serving: Callable[[], bool] = lambda: True, *, tokens: TokenDirectory) -> None:
        self.store = store
        self.tokens = tokens
        self.page = PAGE_PATH.read_bytes()  # read now: a missing file fails at start, not per request
        self.http = PageServer(build_app(self, serving), port, host, "dashboard", "labelstream-dashboard")
        self.port = self.http.port
        self.start = self.http.start
        self.stop = self.http.stop

    def admit(self, path: str, token: str, query: dict[str, list[str]]) -> Principal:
        """The caller, if WEB_RULES let them call `path` with this query; else AuthError."""
        principal = self.tokens.identify(token)
        authorize(WEB_RULES.get(f"dashboard {path}"), f"GET {path}", principal, query)
        return principal

    def projects(self, caller: Principal, _query: dict[str, list[str]]) -> dict:
        return {"projects": readable_projects(caller, self.store.project_ids()),
                "signed_in_as": {"role": caller.role.value, "name": caller.name, "project_id": caller.project_id}}

    def dashboard(self, _caller: Principal, query: dict[str, list[str]]) -> dict:
        project_id = query.get("project_id", [""])[0]
        spec = self.store.get_project(project_id) if project_id else None
        if spec is None:
            raise NotFound(f"no such project: {project_id!r}")
        return dashboard_data(self.store.db, project_id, list(spec.labels))


def api_endpoint(web: DashboardWeb, call: ApiCall) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint admitting the caller and running `call` (both blocking: they may read the store)
    in the thread pool."""
    def admitted(path: str, token: str, query: dict[str, list[str]]) -> dict:
        return call(web.admit(path, token, query), query)

    async def endpoint(request: Request) -> Response:
        try:
            token = bearer([("authorization", request.headers.get("Authorization", ""))])
            return json_response(HTTPStatus.OK, await run_in_threadpool(
                admitted, request.url.path, token, parse_qs(request.url.query)))
        except AuthError as refusal:
            return error_response(HTTP_STATUS.get(refusal.code, HTTPStatus.FORBIDDEN), str(refusal),
                                  refusal.code.name)
        except NotFound as error:
            return error_response(HTTPStatus.NOT_FOUND, str(error), "NOT_FOUND")
        except PyMongoError:
            log.exception("store error serving %s", request.url.path)
            return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "the store is unavailable; retry in a few seconds",
                                  "UNAVAILABLE")
        except Exception:
            log.exception("failed serving %s", request.url.path)
            return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", "INTERNAL")
    return endpoint


def build_app(web: DashboardWeb, serving: Callable[[], bool]) -> Starlette:
    calls: dict[str, ApiCall] = {"/api/projects": web.projects, "/api/dashboard": web.dashboard}

    def page(_request: Request) -> Response:
        return page_response(web.page)

    def not_found(request: Request, _exc: HTTPException) -> Response:
        return error_response(HTTPStatus.NOT_FOUND, f"no such page: {request.url.path}", "NOT_FOUND")

    def method_not_allowed(request: Request, _exc: HTTPException) -> Response:
        return error_response(HTTPStatus.METHOD_NOT_ALLOWED, f"use GET for {request.url.path}: the dashboard is "
                              "read-only", "UNIMPLEMENTED")

    routes = [*(Route(path, page, methods=["GET"]) for path in PAGE_PATHS),
              *(Route(path, api_endpoint(web, call), methods=["GET"]) for path, call in calls.items()),
              health_route(serving)]
    return page_app(routes, not_found, method_not_allowed)
