"""The monitor's dashboard in a real browser against the real stack: a simulated workforce labels
demo items, then headless Debian Chromium driven by Playwright opens the page the stack's monitor
serves, picks the project and checks that every chart drew real data; a screenshot is kept.
"""

from __future__ import annotations

import json
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
    with urllib.request.urlopen(f"{state.web_url('monitor')}api/dashboard?project_id={PROJECT}", timeout=30) as r:
        return json.loads(r.read())


def test_the_dashboard_shows_every_section_with_real_data(state: StackState, labeled: list[dict],
                                                          browser: Browser):
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
    page.goto(state.web_url("monitor"))
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
