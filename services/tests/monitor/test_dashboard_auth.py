"""The dashboard's JSON API under the access rules, on a live server: both API paths against every
kind of caller (none, an unknown token, a worker, the services' token, another project's owner, the
project's owner, the admin), with the HTTP status and gRPC status name each gets. The page itself and
/healthz stay open. The rules are labelstream.common.auth's, as on the monitor's gRPC API."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from labelstream.common import auth
from labelstream.common.auth import WEB_RULES, Principal, Role, TokenDirectory, readable_projects
from labelstream.monitor.dashboard_web import DashboardWeb
from tests.monitor.test_dashboard_data import FakeStore, small_store

PROJECT, OTHER = "proj", "other"
TOKENS = {"admin": "lsa_admin", "service": "lss_service", "worker": "lsw_worker",
          "owner": "lso_owner", "other_owner": "lso_other", "unknown": "lsa_not-a-token", "none": ""}


class Directory(TokenDirectory):
    """Owners and workers from a dict instead of the store."""

    def _lookup(self, digest: str) -> Principal | None:
        known = {auth.hash_token(TOKENS["worker"]): Principal(Role.WORKER, "w1"),
                 auth.hash_token(TOKENS["owner"]): Principal(Role.OWNER, "o1", PROJECT),
                 auth.hash_token(TOKENS["other_owner"]): Principal(Role.OWNER, "o2", OTHER)}
        return known.get(digest)


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    stop = threading.Event()
    store = FakeStore(small_store(), {PROJECT: ["a", "b"], OTHER: ["x", "y"]})
    tokens = Directory(None, admin_token=TOKENS["admin"], service_token=TOKENS["service"])
    web = DashboardWeb(store, 0, tokens=tokens)
    web.start(stop)
    yield f"http://127.0.0.1:{web.port}"
    stop.set()
    web.stop()


def call(url: str, authorization: str | None) -> tuple[int, dict | bytes]:
    request = urllib.request.Request(url, headers={} if authorization is None else {"Authorization": authorization})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def get(url: str, who: str) -> tuple[int, dict | bytes]:
    return call(url, f"Bearer {TOKENS[who]}" if TOKENS[who] else None)


# path -> caller -> (HTTP status, the gRPC status name of a refusal or the answer's check)
EXPECTED = {
    "/api/projects": {
        "none": (401, "UNAUTHENTICATED"), "unknown": (401, "UNAUTHENTICATED"),
        "worker": (403, "PERMISSION_DENIED"),
        "service": (403, "PERMISSION_DENIED"),  # as GetProjectStats: the services never read the dashboard
        "other_owner": (200, [OTHER]), "owner": (200, [PROJECT]), "admin": (200, [OTHER, PROJECT]),
    },
    f"/api/dashboard?project_id={PROJECT}": {
        "none": (401, "UNAUTHENTICATED"), "unknown": (401, "UNAUTHENTICATED"),
        "worker": (403, "PERMISSION_DENIED"), "service": (403, "PERMISSION_DENIED"),
        "other_owner": (403, "PERMISSION_DENIED"), "owner": (200, PROJECT), "admin": (200, PROJECT),
    },
}
CASES = [(path, who, *expected) for path, row in EXPECTED.items() for who, expected in row.items()]


@pytest.mark.parametrize(("path", "who", "status", "expected"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_every_api_path_against_every_kind_of_caller(base: str, path: str, who: str, status: int,
                                                      expected: object):
    got_status, body = get(base + path, who)
    assert got_status == status, body
    assert isinstance(body, dict)
    if status == 200 and path == "/api/projects":
        assert body["projects"] == expected
        assert body["signed_in_as"]["role"] == ("admin" if who == "admin" else "owner")
    elif status == 200:
        assert body["project_id"] == expected and "summary" in body
    else:
        assert set(body) == {"error", "code"} and body["code"] == expected and body["error"]


def test_the_table_above_covers_every_api_path_and_every_role():
    assert {path.partition("?")[0] for path in EXPECTED} == {key.removeprefix("dashboard ") for key in WEB_RULES
                                                            if key.startswith("dashboard ")}
    assert all(set(row) == set(TOKENS) for row in EXPECTED.values())


def test_the_dashboard_admits_whom_get_project_stats_admits():
    stats = auth.RULES[auth.V1 + "MonitorService/GetProjectStats"]
    assert WEB_RULES["dashboard /api/dashboard"].roles == stats.roles
    assert WEB_RULES["dashboard /api/projects"].roles == stats.roles


def test_refusals_say_what_is_wrong(base: str):
    status, body = get(base + f"/api/dashboard?project_id={PROJECT}", "worker")
    assert status == 403 and "role admin, owner" in body["error"] and "worker" in body["error"]  # type: ignore[index]
    status, body = get(base + f"/api/dashboard?project_id={PROJECT}", "other_owner")
    assert status == 403 and repr(OTHER) in body["error"]  # type: ignore[index]


def test_an_owner_learns_nothing_of_other_projects_not_even_whether_they_exist(base: str):
    assert get(base + "/api/dashboard?project_id=missing", "owner")[0] == 403
    assert get(base + "/api/dashboard?project_id=" + OTHER, "owner")[0] == 403
    assert get(base + "/api/dashboard", "owner")[0] == 403  # no project named: not theirs either
    status, body = get(base + "/api/dashboard?project_id=missing", "admin")
    assert (status, body["code"]) == (404, "NOT_FOUND")  # type: ignore[index]


def test_only_a_bearer_token_in_the_authorization_header_counts(base: str):
    for authorization in (TOKENS["admin"], f"Basic {TOKENS['admin']}", "Bearer", "Bearer "):
        status, body = call(base + "/api/projects", authorization)
        assert (status, body["code"]) == (401, "UNAUTHENTICATED"), authorization  # type: ignore[index]
    assert call(base + "/api/projects", f"bearer  {TOKENS['admin']} ")[0] == 200  # scheme in any case
    assert call(base + f"/api/projects?token={TOKENS['admin']}", None)[0] == 401  # never from the address


def test_the_page_and_health_stay_open(base: str):
    status, page = get(base + "/", "none")
    assert status == 200 and isinstance(page, bytes) and b'data-testid="token-input"' in page
    assert get(base + "/healthz", "none") == (200, {"status": "SERVING"})


def test_readable_projects():
    ids = [OTHER, PROJECT]
    assert readable_projects(Principal(Role.ADMIN, "admin"), ids) == ids
    assert readable_projects(Principal(Role.OWNER, "o1", PROJECT), ids) == [PROJECT]
    assert readable_projects(Principal(Role.OWNER, "o3", "gone"), ids) == []
    assert readable_projects(Principal(Role.WORKER, "w1"), ids) == []


def test_a_web_request_names_its_project_in_its_query():
    assert auth.request_project({"project_id": ["p", "q"]}, "project_id") == "p"
    assert auth.request_project({"project_id": []}, "project_id") == ""
    assert auth.request_project({}, "project_id") == ""
