"""The annotator web API's HTTP layer: auth header, JSON parsing, PoolError -> HTTP status, the page.

The Workbench's own rules run against the real store in integration_tests/test_annotator_chromium.py;
here a small stub stands in for it so that only web.py is under test.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message

import pytest

from labelstream.dispatcher.pool import Lease, PoolError
from labelstream.dispatcher.web import AnnotatorWeb
from labelstream.dispatcher.workbench import Outcome
from labelstream.v1 import events_pb2, services_pb2

TOKEN = "lsw_good"


class StubAccounts:
    def authenticate(self, token: str) -> str:
        if token != TOKEN:
            raise PoolError("UNAUTHENTICATED", "this token is not valid")
        return "w1"


class StubRecords:
    def my_stats(self, worker_id: str, project_id: str = "") -> list[services_pb2.WorkerStats]:
        if project_id != "p":
            return []
        return [services_pb2.WorkerStats(worker_id=worker_id, project_id="p", status="active", tasks_done=2,
                                         gold_accuracy=math.nan, earnings=0.1, hourly_rate=math.nan)]


class StubPayRates:
    def per_answer(self, project_id: str) -> float:
        return 0.05


class StubWorkbench:
    """Knows one token and one leased handle; `refusal` makes lease() raise that PoolError code."""

    def __init__(self) -> None:
        self.refusal = ""
        self.delay_s = 0.0
        self.accounts = StubAccounts()
        self.records = StubRecords()
        self.pay_rates = StubPayRates()

    def lease(self, worker_id: str, project_id: str = "") -> tuple[Lease, events_pb2.ProjectSpec, str]:
        if self.refusal:
            raise PoolError(self.refusal, f"refused with {self.refusal}")
        time.sleep(self.delay_s)
        lease = Lease(handle="t-handle", task_id="p:internal-task-id", project_id="p", text="a fine film",
                      labels=["negative", "positive"], expires_at_ms=123, gold=True)
        spec = events_pb2.ProjectSpec(project_id="p", instructions="Pick the sentiment.", content_warning="")
        return lease, spec, ""

    def answer(self, worker_id: str, handle: str, label: str) -> Outcome:
        if handle != "t-handle":
            raise PoolError("PERMISSION_DENIED", f"task {handle!r} is not leased to you")
        return Outcome(events_pb2.HumanResponse(worker_id=worker_id, label=label))

    def skip(self, worker_id: str, handle: str) -> None:
        if handle != "t-handle":
            raise PoolError("PERMISSION_DENIED", f"task {handle!r} is not leased to you")


@pytest.fixture
def served() -> Iterator[tuple[str, StubWorkbench, list[Outcome]]]:
    workbench, submitted, stop = StubWorkbench(), [], threading.Event()
    web = AnnotatorWeb(workbench, submitted.append, 0, "127.0.0.1")
    web.start(stop)
    yield f"http://127.0.0.1:{web.port}", workbench, submitted
    stop.set()


def call(url: str, method: str = "GET", body: bytes | None = None,
         token: str | None = TOKEN) -> tuple[int, Message, bytes]:
    """Status, headers (looked up without regard to case, as HTTP names are) and body."""
    request = urllib.request.Request(url, data=body, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def post(base: str, path: str, payload: object, token: str | None = TOKEN) -> tuple[int, dict]:
    status, _, raw = call(base + path, "POST", json.dumps(payload).encode(), token)
    return status, json.loads(raw)


def test_the_page_is_served_self_contained(served):
    base, _, _ = served
    status, headers, raw = call(base + "/", token=None)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    page = raw.decode()
    for testid in ("signin-form", "guidelines", "task-text", "skip-button", "stats", "stat-gold-accuracy"):
        assert f'data-testid="{testid}"' in page
    assert 'role="alert"' in page and 'aria-live="polite"' in page
    assert "http://" not in page and "https://" not in page, "no external resources: the machine is offline"


def test_api_needs_a_bearer_token(served):
    base, _, _ = served
    status, _, raw = call(base + "/api/me", token=None)
    assert status == 401
    assert json.loads(raw)["code"] == "UNAUTHENTICATED"
    status, body = post(base, "/api/lease", {"project_id": ""}, token="lsw_wrong")
    assert (status, body["code"]) == (401, "UNAUTHENTICATED")
    assert body["error"] == "this token is not valid"


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_bad_json_is_a_clear_400(served, raw):
    base, _, submitted = served
    status, _, body = call(base + "/api/answer", "POST", raw)
    assert status == 400
    refusal = json.loads(body)
    assert refusal["code"] == "INVALID_ARGUMENT"
    assert "JSON" in refusal["error"]
    assert submitted == []


def test_missing_or_mistyped_fields_are_400(served):
    base, _, _ = served
    assert post(base, "/api/answer", {"label": "positive"}) == (
        400, {"error": "'task_id' is required", "code": "INVALID_ARGUMENT"})
    status, body = post(base, "/api/lease", {"project_id": 7})
    assert (status, body["code"]) == (400, "INVALID_ARGUMENT")


def test_another_workers_task_is_403(served):
    base, _, submitted = served
    status, body = post(base, "/api/answer", {"task_id": "t-someone-else", "label": "positive"})
    assert (status, body["code"]) == (403, "PERMISSION_DENIED")
    status, body = post(base, "/api/skip", {"task_id": "t-someone-else"})
    assert (status, body["code"]) == (403, "PERMISSION_DENIED")
    assert submitted == [], "a refused answer publishes nothing"


@pytest.mark.parametrize(("code", "http_status"), [
    ("UNAUTHENTICATED", 401), ("PERMISSION_DENIED", 403), ("NOT_FOUND", 404), ("ALREADY_EXISTS", 409),
    ("FAILED_PRECONDITION", 409), ("RESOURCE_EXHAUSTED", 429), ("INVALID_ARGUMENT", 400)])
def test_pool_errors_map_to_http_statuses(served, code, http_status):
    base, workbench, _ = served
    workbench.refusal = code
    assert post(base, "/api/lease", {}) == (http_status, {"error": f"refused with {code}", "code": code})


def test_lease_shows_only_the_handle(served):
    base, _, _ = served
    status, _, raw = call(base + "/api/lease", "POST", b"")  # an empty body is {}: any project
    assert status == 200
    assert json.loads(raw) == {
        "task_id": "t-handle", "project_id": "p", "text": "a fine film", "labels": ["negative", "positive"],
        "instructions": "Pick the sentiment.", "content_warning": "", "break_reminder": "", "pay": 0.05,
        "lease_expires_at_ms": 123}
    assert b"internal-task-id" not in raw and b"gold" not in raw


def test_answer_is_handed_to_submit_and_skip_works(served):
    base, _, submitted = served
    assert post(base, "/api/answer", {"task_id": "t-handle", "label": "positive"}) == (200, {"accepted": True})
    assert [(o.response.worker_id, o.response.label) for o in submitted] == [("w1", "positive")]
    assert post(base, "/api/skip", {"task_id": "t-handle"}) == (200, {"skipped": True})


def test_stats_turn_nan_into_null(served):
    base, _, _ = served
    status, _, raw = call(base + "/api/me?project_id=p")
    assert status == 200
    stats = json.loads(raw)
    assert stats["gold_accuracy"] is None and stats["hourly_rate"] is None
    assert (stats["status"], stats["tasks_done"], stats["earnings"]) == ("active", 2, 0.1)
    status, _, raw = call(base + "/api/me?project_id=elsewhere")
    assert json.loads(raw) == {"worker_id": "w1", "project_id": "elsewhere", "status": "new", "tasks_done": 0,
                               "gold_accuracy": None, "earnings": 0.0, "hourly_rate": None, "blocked_reason": ""}


def test_unknown_paths_and_methods(served):
    base, _, _ = served
    status, _, raw = call(base + "/api/nothing")
    assert (status, json.loads(raw)["code"]) == (404, "NOT_FOUND")
    status, headers, raw = call(base + "/api/lease")
    assert status == 405
    assert json.loads(raw) == {"error": "use POST for /api/lease", "code": "UNIMPLEMENTED"}
    assert headers["Allow"] == "POST"
    assert post(base, "/api/nothing", {}) == (
        404, {"error": "no such API call: POST /api/nothing", "code": "NOT_FOUND"})


def test_a_body_over_the_limit_is_refused_unread(served):
    base, _, submitted = served
    status, _, raw = call(base + "/api/answer", "POST", b" " * (64 * 1024 + 1))
    assert (status, json.loads(raw)["code"]) == (413, "INVALID_ARGUMENT")
    assert submitted == []


def test_healthz_says_what_the_service_health_says():
    up = threading.Event()
    stop = threading.Event()
    web = AnnotatorWeb(StubWorkbench(), lambda _outcome: None, 0, "127.0.0.1", serving=up.is_set)
    web.start(stop)
    try:
        status, _, raw = call(f"http://127.0.0.1:{web.port}/healthz", token=None)
        assert (status, json.loads(raw)) == (503, {"status": "NOT_SERVING"})
        up.set()
        status, headers, raw = call(f"http://127.0.0.1:{web.port}/healthz", token=None)
        assert (status, json.loads(raw)) == (200, {"status": "SERVING"})
        assert headers["Server"] == "labelstream-annotator"
    finally:
        stop.set()


def test_stopping_lets_a_request_in_flight_finish():
    workbench, stop = StubWorkbench(), threading.Event()
    workbench.delay_s = 1.0
    web = AnnotatorWeb(workbench, lambda _outcome: None, 0, "127.0.0.1")
    web.start(stop)
    replies: list[tuple[int, dict]] = []
    leasing = threading.Thread(target=lambda: replies.append(post(f"http://127.0.0.1:{web.port}", "/api/lease", {})))
    leasing.start()
    time.sleep(0.3)  # the lease is in flight
    stop.set()
    leasing.join(10)
    assert [status for status, _ in replies] == [200]
    assert replies[0][1]["task_id"] == "t-handle"


def test_stop_event_shuts_the_server_down():
    stop = threading.Event()
    web = AnnotatorWeb(StubWorkbench(), lambda _outcome: None, 0, "127.0.0.1")
    web.start(stop)
    assert call(f"http://127.0.0.1:{web.port}/", token=None)[0] == 200
    stop.set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            call(f"http://127.0.0.1:{web.port}/", token=None)
        except OSError:  # refused, or reset if it was queued as the socket closed
            return
        time.sleep(0.05)
    pytest.fail("the server still answers after stop_event was set")
