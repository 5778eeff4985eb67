"""The annotator web page and its small JSON API, served by the dispatcher beside its gRPC API.

Both call the same Workbench (and its accounts, records and pay), so a worker gets the same
rules (tokens, rate limits, gold, blocking, breaks, pay) whichever way they label. The page is
one static file; the API is:

  GET  /                      the page
  GET  /api/me?project_id=    the worker's own stats
  POST /api/lease             {"project_id": ""}        -> the next task (its handle as task_id)
  POST /api/answer            {"task_id", "label"}
  POST /api/skip              {"task_id"}

Every API call needs `Authorization: Bearer <worker token>`; refusals are
{"error": message, "code": gRPC status name} with the matching HTTP status.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pymongo.errors import PyMongoError

from labelstream.common.web import PageHandler, PageServer, finite
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
    """Serves the page and the API on (host, port); port 0 picks a free port (see `.port`)."""

    def __init__(self, workbench: Workbench, submit: Callable[[Outcome], None], port: int,
                 host: str = "127.0.0.1") -> None:
        self.workbench = workbench
        self.submit = submit
        self.page = PAGE_PATH.read_bytes()  # read now: a missing file fails at start, not per request
        self.http = PageServer(handler_for(self), port, host, "annotator page")
        self.port = self.http.port
        self.start = self.http.start

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
                 "lease_expires_at_ms": lease.expires_at_ms}
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


def handler_for(web: AnnotatorWeb) -> type[PageHandler]:
    posts = {"/api/lease": web.lease, "/api/answer": web.answer, "/api/skip": web.skip}

    class Handler(PageHandler):
        server_version = "labelstream-annotator"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path in ("/", "/index.html"):
                self.send_page(web.page)
            elif url.path == "/api/me":
                self._api(lambda: web.me(self._token(), parse_qs(url.query)))
            elif url.path in posts:
                self._fail(ApiError("UNIMPLEMENTED", f"use POST for {url.path}", HTTPStatus.METHOD_NOT_ALLOWED))
            else:
                self._fail(ApiError("NOT_FOUND", f"no such page: {url.path}"))

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            call = posts.get(path)
            if call is None:
                self._fail(ApiError("NOT_FOUND", f"no such API call: POST {path}"))
                return
            self._api(lambda: call(self._token(), parse_json(self._body())))

        def _token(self) -> str:
            return bearer(self.headers.get("Authorization"))

        def _body(self) -> bytes:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError as exc:
                raise ApiError("INVALID_ARGUMENT", "Content-Length is not a number") from exc
            if length < 0 or length > MAX_BODY_BYTES:
                raise ApiError("INVALID_ARGUMENT", f"the request body must be under {MAX_BODY_BYTES} bytes",
                               HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return self.rfile.read(length)

        def _api(self, call: Callable[[], dict]) -> None:
            try:
                status, body = HTTPStatus.OK, call()
            except ApiError as error:
                status, body = error.status, {"error": str(error), "code": error.code}
            except PoolError as error:
                status = HTTP_STATUS.get(error.code, HTTPStatus.INTERNAL_SERVER_ERROR)
                body = {"error": str(error), "code": error.code}
            except PyMongoError:
                log.exception("store error serving %s %s", self.command, self.path)
                status = HTTPStatus.SERVICE_UNAVAILABLE
                body = {"error": "the task store is unavailable; retry in a few seconds", "code": "UNAVAILABLE"}
            except Exception:
                log.exception("failed serving %s %s", self.command, self.path)
                status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error", "code": "INTERNAL"}
            self._json(status, body)

        def _fail(self, error: ApiError) -> None:
            self._json(error.status, {"error": str(error), "code": error.code})

        def _json(self, status: HTTPStatus, body: dict) -> None:
            self.send_json(status, json.dumps(body).encode())

    return Handler
