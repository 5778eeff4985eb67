"""The monitor's dashboard in a real browser against the real stack: a simulated workforce labels
demo items, then headless Debian Chromium driven by Playwright opens the page the stack's monitor
serves, signs in (a refused token, the project owner's, then the admin's through the link
`labelstream up` prints), picks the project and checks that every chart drew real data; a
screenshot is kept.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Browser, expect

from integration_tests.conftest import eventually, make_project
from labelstream.cli import client
from labelstream.cli.stack import REPO_ROOT, StackState
from labelstream.simulation.workforce import WorkerProfile, Workforce

pytestmark = pytest.mark.integration

SCREENSHOT = REPO_ROOT / "reports" / "screenshots" / "dashboard.png"
PROJECT = "dashboard-demo"
WORKERS = 6


@pytest.fixture(scope="module")
def labeled(state: StackState, demo_items: list[dict]) -> list[dict]:
    items = demo_items[440:560]
    make_project(state, PROJECT, auto_accept_threshold=0.8)
    gold_by_text = {i["text"]: i["gold_label"] for i in items}
    with Workforce(state.grpc_target("dispatcher"), PROJECT, gold_by_text, count=WORKERS,
                   profile=WorkerProfile(accuracy=0.85, answer_ms=10)):
        client.publish_json_items(state.kafka_bootstrap, PROJECT, items)
        client.wait_for_final_labels(state.grpc_target("monitor"), PROJECT, len(items), timeout_s=300)
    return items


def dashboard_json(state: StackState) -> dict:
    return client.dashboard(state.web_url("monitor"), PROJECT, state.admin_token)


def api_status(state: StackState, path: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(state.web_url("monitor") + path.lstrip("/"),
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def owner_token(state: StackState, labeled: list[dict]) -> str:
    return client.create_project_owner(state.grpc_target("ingest"), PROJECT, "dashboard-owner", rotate=True)


def test_the_dashboard_api_admits_the_admin_and_the_projects_owner_only(state: StackState, owner_token: str):
    """The monitor's own TokenDirectory (its gRPC interceptor's) checks the web API too."""
    dashboard = f"/api/dashboard?project_id={PROJECT}"
    for path in ("/api/projects", dashboard):
        status, body = api_status(state, path, "")
        assert (status, body["code"]) == (401, "UNAUTHENTICATED")
        status, body = api_status(state, path, state.service_token)
        assert (status, body["code"]) == (403, "PERMISSION_DENIED")
    status, body = api_status(state, "/api/projects", owner_token)
    assert status == 200 and body["projects"] == [PROJECT]
    assert api_status(state, dashboard, owner_token)[0] == 200
    status, body = api_status(state, "/api/projects", state.admin_token)
    assert status == 200 and PROJECT in body["projects"]


def test_the_dashboard_shows_every_section_with_real_data(state: StackState, labeled: list[dict],
                                                          owner_token: str, browser: Browser):
    # the API first: what the page should draw
    def complete() -> dict | None:
        d = dashboard_json(state)
        return d if d["summary"]["final_labels"] == len(labeled) and len(d["workers"]) == WORKERS else None

    data = eventually(complete, timeout_s=30)
    assert data, "the dashboard API never reported every final label and worker"
    operating = data["accuracy_vs_human_fraction"]["operating_point"]
    assert 0 < operating["human_fraction"] < 1, "threshold 0.8 should send some items to people, not all"
    assert data["accuracy_vs_human_fraction"]["items"] == len(labeled)
    assert any(r["krippendorff_alpha"] is not None for r in data["agreement_over_time"])
    assert all(w["ds_accuracy"] is not None for w in data["workers"]), "Dawid-Skene skill for every worker"
    assert data["summary"]["cost_per_label"] is not None

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    # signed out: the page asks for a token and shows no data
    page.goto(state.web_url("monitor"))
    expect(page.get_by_test_id("signin-view")).to_be_visible()
    expect(page.get_by_test_id("dashboard-view")).to_be_hidden()
    page.get_by_test_id("token-input").fill(state.service_token)  # a known token of a role not admitted
    page.get_by_test_id("signin-button").click()
    expect(page.get_by_test_id("error-banner")).to_contain_text("may not read the dashboard")
    expect(page.get_by_test_id("signin-view")).to_be_visible()
    # the project's owner sees their project only
    page.get_by_test_id("token-input").fill(owner_token)
    page.get_by_test_id("signin-button").click()
    expect(page.locator("body")).to_have_attribute("data-project", PROJECT, timeout=15_000)
    assert page.get_by_test_id("project-select").locator("option").all_inner_texts() == [PROJECT]
    expect(page.get_by_test_id("whoami")).to_contain_text("owner of " + PROJECT)
    page.get_by_test_id("signout-button").click()
    expect(page.get_by_test_id("signin-view")).to_be_visible()
    assert [e for e in console_errors if "403" not in e] == [], console_errors  # the refused sign-in's fetch
    console_errors.clear()

    # the admin, through the link `labelstream up` prints: signed in, and the token out of the address
    page.goto(state.dashboard_link())
    expect(page.get_by_test_id("whoami")).to_have_text("signed in as admin")
    assert "#" not in page.url and state.admin_token not in page.url
    expect(page.get_by_test_id("project-select")).to_contain_text(PROJECT)
    page.get_by_test_id("project-select").select_option(PROJECT)
    expect(page.locator("body")).to_have_attribute("data-project", PROJECT, timeout=15_000)

    expect(page.get_by_test_id("worker-row")).to_have_count(WORKERS)
    expect(page.get_by_test_id("accuracy-point")).to_have_count(21)
    expect(page.get_by_test_id("operating-point")).to_have_count(1)
    assert page.get_by_test_id("reliability-bar").count() >= 1
    expect(page.get_by_test_id("reliability-diagonal")).to_have_count(1)
    assert page.get_by_test_id("agreement-point").count() >= 1
    assert page.get_by_test_id("throughput-bar").count() == len(data["throughput_latency"])
    assert page.get_by_test_id("latency-p95-point").count() >= 1
    expect(page.get_by_test_id("ece")).not_to_have_text("–")
    expect(page.get_by_test_id("error-banner")).to_be_hidden()
    for empty in ("accuracy-empty", "reliability-empty", "agreement-empty", "throughput-empty"):
        expect(page.get_by_test_id(empty)).to_have_count(0)
    workers = page.get_by_test_id("worker-table").inner_text()
    assert all(w["worker_id"] in workers for w in data["workers"])
    assert not console_errors, console_errors  # e.g. a CSP violation or a script error

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.close()
