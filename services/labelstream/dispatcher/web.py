"""The annotator web page and its small JSON API, served by the dispatcher beside its gRPC API
(Starlette on uvicorn, labelstream.common.web).

Both call the same Workbench (and its accounts, records and pay), so a worker gets the same
rules (tokens, rate limits, gold, blocking, breaks, pay) whichever way they label. The page is
one static file; the API is:

  GET  /                      the page
  GET  /api/me?project_id=    the worker's own stats
  POST /api/lease             {"project_id": ""}        -> the next task (its handle as task_id)
  POST /api/answer            {"task_id", "label"}       (multi_label: "label" is a JSON array of labels)
  POST /api/skip              {"task_id"}
  GET  /healthz               200 while the dispatcher is SERVING, else 503 (HTTP probes)

Every API call needs `Authorization: Bearer <worker token>`; refusals are
{"error": message, "code": gRPC status name} with the matching HTTP status.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs

from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from labelstream.common.web import (
    PageServer,
    error_response,
    finite,
    health_route,
    json_response,
    page_app,
    page_response,
)
from labelstream.dispatcher.display import task_fields
from labelstream.dispatcher.pool import PoolError
from labelstream.dispatcher.workbench import Outcome, Workbench
from labelstream.v1 import services_pb2

log = logging.getLogger(__name__)

PAGE_PATH = Path(__file__).parent / "static" / "annotator.html"
MAX_BODY_BYTES = 64 * 1024  # requests are a few ids and a label; anything bigger is not ours

HTTP_STATUS = {
    "INVALID_ARGUMENT": HTTPStatus.BAD_REQUEST,
    "UNAUTHENTICATED": HTTPStatus.UNAUTHORIZED,
    "PERMISSION_DENIED": HTTPStatus.FORBIDDEN,
    "NOT_FOUND": HTTPStatus.NOT_FOUND,
    "ALREADY_EXISTS": HTTPStatus.CONFLICT,
    "FAILED_PRECONDITION": HTTPStatus.CONFLICT,
    "RESOURCE_EXHAUSTED": HTTPStatus.TOO_MANY_REQUESTS,
    "UNAVAILABLE": HTTPStatus.SERVICE_UNAVAILABLE,
}
PAGE_PATHS = ("/", "/index.html")

# An API call: (bearer token, JSON body of a POST or the query of a GET) -> the JSON body of a 200.
ApiCall = Callable[[str, dict], dict]


class ApiError(Exception):
    """A request refused before it reaches the Workbench (bad JSON, missing field, no route)."""

    def __init__(self, code: str, message: str, status: HTTPStatus | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status or HTTP_STATUS.get(code, HTTPStatus.BAD_REQUEST)


def bearer(header: str | None) -> str:
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def stats_json(stats: services_pb2.WorkerStats) -> dict:
    return {"worker_id": stats.worker_id, "project_id": stats.project_id, "status": stats.status,
            "tasks_done": stats.tasks_done, "gold_accuracy": finite(stats.gold_accuracy),
            "earnings": stats.earnings, "hourly_rate": finite(stats.hourly_rate),
            "blocked_reason": stats.blocked_reason}


def text_field(body: dict, name: str, required: bool) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise ApiError("INVALID_ARGUMENT", f"{name!r} must be a string")
    if required and not value:
        raise ApiError("INVALID_ARGUMENT", f"{name!r} is required")
    return value


class AnnotatorWeb:
    """Serves the page and the API on (host, port); port 0 picks a free port (see `.port`).
    `serving` tells /healthz whether the dispatcher is SERVING (always, when not given)."""

    def __init__(self, workbench: Workbench, submit: Callable[[Outcome], None], port: int,
                 host: str = "127.0.0.1", serving: Callable[[], bool] = lambda: True) -> None:
        self.workbench = workbench
        self.submit = submit
        self.page = PAGE_PATH.read_bytes()  # read now: a missing file fails at start, not per request
        self.http = PageServer(build_app(self, serving), port, host, "annotator page", "labelstream-annotator")
        self.port = self.http.port
        self.start = self.http.start
        self.stop = self.http.stop

    # API calls: each returns the JSON body of a 200 or raises PoolError / ApiError.
    def me(self, token: str, query: dict[str, list[str]]) -> dict:
        worker_id = self.workbench.accounts.authenticate(token)
        project_id = query.get("project_id", [""])[0]
        stats = self.workbench.records.my_stats(worker_id, project_id)
        if not stats:  # never leased anything here yet
            stats = [services_pb2.WorkerStats(worker_id=worker_id, project_id=project_id, status="new",
                                              gold_accuracy=math.nan, hourly_rate=math.nan)]
        return stats_json(stats[0])

    def lease(self, token: str, body: dict) -> dict:
        worker_id = self.workbench.accounts.authenticate(token)
        lease, spec, reminder = self.workbench.lease(worker_id, text_field(body, "project_id", required=False))
        # Only the handle leaves the dispatcher: never Lease.task_id nor Lease.gold.
        shown = {"task_id": lease.handle, "project_id": lease.project_id, "text": lease.text,
                 "labels": list(lease.labels), "instructions": spec.instructions,
                 "content_warning": spec.content_warning, "break_reminder": reminder,
                 "pay": self.workbench.pay_rates.per_answer(lease.project_id),
                 "lease_expires_at_ms": lease.expires_at_ms, **task_fields(spec)}
        if lease.responses:  # a preference task: its responses in this worker's order
            shown["responses"] = list(lease.responses)
        return shown

    def answer(self, token: str, body: dict) -> dict:
        worker_id = self.workbench.accounts.authenticate(token)
        handle = text_field(body, "task_id", required=True)
        label = text_field(body, "label", required=True)
        self.submit(self.workbench.answer(worker_id, handle, label))
        return {"accepted": True}

    def skip(self, token: str, body: dict) -> dict:
        worker_id = self.workbench.accounts.authenticate(token)
        self.workbench.skip(worker_id, text_field(body, "task_id", required=True))
        return {"skipped": True}


def parse_json(raw: bytes) -> dict:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError("INVALID_ARGUMENT", f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError("INVALID_ARGUMENT", "the request body must be a JSON object")
    return body


async def read_body(request: Request) -> bytes:
    """The request's body, refused past MAX_BODY_BYTES (by its Content-Length, or as it streams in)."""
    too_large = ApiError("INVALID_ARGUMENT", f"the request body must be under {MAX_BODY_BYTES} bytes",
                         HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    declared = request.headers.get("Content-Length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError as exc:
            raise ApiError("INVALID_ARGUMENT", "Content-Length is not a number") from exc
        if length < 0 or length > MAX_BODY_BYTES:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def refusal(error: ApiError) -> Response:
    return error_response(error.status, str(error), error.code)


def api_endpoint(call: ApiCall) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint running `call` (blocking: the Workbench waits on the store) in the thread pool,
    with every refusal as {"error", "code"} and its HTTP status."""
    async def endpoint(request: Request) -> Response:
        try:
            token = bearer(request.headers.get("Authorization"))
            if request.method == "POST":
                argument: dict = parse_json(await read_body(request))
            else:
                argument = parse_qs(request.url.query)
            return json_response(HTTPStatus.OK, await run_in_threadpool(call, token, argument))
        except ApiError as error:
            return refusal(error)
        except PoolError as error:
            return error_response(HTTP_STATUS.get(error.code, HTTPStatus.INTERNAL_SERVER_ERROR), str(error),
                                  error.code)
        except PyMongoError:
            log.exception("store error serving %s %s", request.method, request.url.path)
            return error_response(HTTPStatus.SERVICE_UNAVAILABLE,
                                  "the task store is unavailable; retry in a few seconds", "UNAVAILABLE")
        except Exception:
            log.exception("failed serving %s %s", request.method, request.url.path)
            return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", "INTERNAL")
    return endpoint


def build_app(web: AnnotatorWeb, serving: Callable[[], bool]) -> Starlette:
    posts: dict[str, ApiCall] = {"/api/lease": web.lease, "/api/answer": web.answer, "/api/skip": web.skip}

    def page(_request: Request) -> Response:
        return page_response(web.page)

    def not_found(request: Request, _exc: HTTPException) -> Response:
        if request.method == "POST":
            return refusal(ApiError("NOT_FOUND", f"no such API call: POST {request.url.path}"))
        return refusal(ApiError("NOT_FOUND", f"no such page: {request.url.path}"))

    def method_not_allowed(request: Request, _exc: HTTPException) -> Response:
        path = request.url.path
        allowed = "POST" if path in posts else "GET"
        return refusal(ApiError("UNIMPLEMENTED", f"use {allowed} for {path}", HTTPStatus.METHOD_NOT_ALLOWED))

    routes = [*(Route(path, page, methods=["GET"]) for path in PAGE_PATHS),
              Route("/api/me", api_endpoint(web.me), methods=["GET"]),
              *(Route(path, api_endpoint(call), methods=["POST"]) for path, call in posts.items()),
              health_route(serving)]
    return page_app(routes, not_found, method_not_allowed)
