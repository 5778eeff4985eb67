"""The annotator page in a real browser against the real stack: headless Debian Chromium driven by
Playwright signs in with a worker token, labels with the keyboard, skips, and sees its own stats,
while the stack's dispatcher serves the page, records the answers and publishes them to Kafka.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from pymongo.database import Database

from integration_tests.conftest import eventually, make_project
from labelstream.cli import client
from labelstream.cli.stack import REPO_ROOT, StackState
from labelstream.common.settings import Settings
from labelstream.common.store import Store
from labelstream.common.topics import SCHEMA_VERSION
from labelstream.dispatcher.pool import TaskPool
from labelstream.dispatcher.workbench import Workbench
from labelstream.v1 import events_pb2

pytestmark = pytest.mark.integration

SCREENSHOT = REPO_ROOT / "reports" / "screenshots" / "annotator.png"
PROJECT = "annotator-chromium"
WORKER = "w-chromium"
INSTRUCTIONS = "Is the sentiment of this movie review negative or positive?"
WARNING = "some reviews contain strong language"
PAY = 0.05
TEXTS = [f"review {i}: {text}" for i, text in enumerate([
    "a quietly moving film with a superb cast", "two hours i will never get back",
    "funny, warm and far too short", "the plot collapses in the last act", "an easy recommendation"])]


@pytest.fixture(scope="module")
def workbench(state: StackState) -> Iterator[Workbench]:
    """A Workbench on the stack's store, for what an admin and the router would do: a worker
    account and tasks in the pool. The page itself is served by the stack's dispatcher."""
    store = Store(Settings.from_env({"LABELSTREAM_MONGODB_URI": state.mongodb_uri}))
    yield Workbench(store, TaskPool(store, 60), requests_per_minute=600)
    store.close()


def add_tasks(state: StackState, db: Database) -> None:
    """One slot each, in falling priority, so the page shows TEXTS in order; published to
    tasks.human as the router would, and waited for until the dispatcher has them all."""
    client.publish_human_tasks(state.kafka_bootstrap, [events_pb2.HumanTask(
        schema_version=SCHEMA_VERSION, project_id=PROJECT, item_id=f"item-{i}", task_id=f"{PROJECT}:item-{i}",
        text=text, labels=["negative", "positive"], overlap=1, priority=0.9 - i / 10) for i, text in enumerate(TEXTS)])
    assert eventually(lambda: db.tasks.count_documents({"project_id": PROJECT}) == len(TEXTS), timeout_s=60)


def earnings(page: Page) -> float:
    return float(page.get_by_test_id("stat-earnings").inner_text().replace(",", ""))


def test_a_worker_labels_with_the_keyboard(state: StackState, db: Database, workbench: Workbench,
                                           browser: Browser):
    make_project(state, PROJECT, instructions=INSTRUCTIONS, content_warning=WARNING, pay_per_answer=PAY)
    add_tasks(state, db)
    token = workbench.accounts.create_worker(WORKER, rotate=True)

    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.goto(f"{state.web_url('dispatcher')}?project_id={PROJECT}")
    page.get_by_test_id("token-input").fill(token)
    page.get_by_test_id("signin-button").click()

    expect(page.get_by_test_id("whoami")).to_have_text(f"Signed in as {WORKER}")
    expect(page.get_by_test_id("guidelines")).to_have_text(INSTRUCTIONS)
    expect(page.get_by_test_id("content-warning")).to_contain_text(WARNING)
    expect(page.get_by_test_id("task-text")).to_have_text(TEXTS[0])
    expect(page.get_by_test_id("label-button")).to_have_text(["1negative", "2positive"])
    expect(page.get_by_test_id("task-pay")).to_contain_text("0.05")
    expect(page.get_by_test_id("stat-status")).to_have_text("active")
    expect(page.get_by_test_id("stat-tasks-done")).to_have_text("0")
    expect(page.get_by_test_id("stat-gold-accuracy")).to_have_text("not yet known")
    expect(page.get_by_test_id("alert")).to_be_hidden()
    seen_earnings = [earnings(page)]

    for done in range(1, 4):  # "2" is the second label: positive
        page.keyboard.press("2")
        expect(page.get_by_test_id("task-text")).to_have_text(TEXTS[done])
        expect(page.get_by_test_id("stat-tasks-done")).to_have_text(str(done))
        expect(page.get_by_test_id("status-message")).to_have_text("Saved “positive”.")
        seen_earnings.append(earnings(page))
    assert seen_earnings == sorted(set(seen_earnings)), f"earnings must grow with each answer: {seen_earnings}"
    assert seen_earnings[0] == 0 and seen_earnings[-1] == pytest.approx(3 * PAY)

    page.keyboard.press("s")
    expect(page.get_by_test_id("status-message")).to_have_text("Skipped.")
    expect(page.get_by_test_id("task-text")).to_have_text(TEXTS[4])
    expect(page.get_by_test_id("stat-tasks-done")).to_have_text("3")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.keyboard.press("1")  # the last task; then the pool is empty for this worker
    expect(page.get_by_test_id("waiting")).to_contain_text("No task is available")
    expect(page.get_by_test_id("task")).to_be_hidden()
    expect(page.get_by_test_id("stat-tasks-done")).to_have_text("4")
    page.close()

    held = {a["task_id"]: (a["status"], a.get("label")) for a in db.assignments.find({"worker_id": WORKER})}
    assert held == {f"{PROJECT}:item-{i}": state_label for i, state_label in enumerate(
        [("answered", "positive")] * 3 + [("skipped", None), ("answered", "negative")])}
    # The dispatcher published every answer to Kafka (its outbox record is marked once the broker acked).
    published = eventually(lambda: db.responses.count_documents({"worker_id": WORKER, "published": True}) == 4)
    assert published, "the dispatcher did not publish the answers"


def test_a_bad_token_shows_an_error(state: StackState, browser: Browser):
    context = browser.new_context()  # its own sessionStorage: not signed in
    page = context.new_page()
    page.goto(state.web_url("dispatcher"))
    page.get_by_test_id("token-input").fill("lsw_not-a-real-token")
    page.get_by_test_id("signin-button").click()
    expect(page.get_by_test_id("alert")).to_be_visible()
    expect(page.get_by_test_id("alert")).to_have_text(re.compile(r"Sign-in failed: this token is not valid"))
    expect(page.get_by_test_id("signin-view")).to_be_visible()
    expect(page.get_by_test_id("work-view")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('labelstream.token')") is None, "a refused token is not kept"
    context.close()


PAIRWISE = "annotator-pairwise"
PAIR_WORKER = "w-pairwise"
PROMPTS = ["How do I boil an egg?", "Name a prime number.", "What is the capital of France?"]
PAIRS = [("Put it in boiling water for about nine minutes, then cool it in cold water.", "Eggs are oval."),
         ("Seven.", "Eight is prime, probably."),
         ("Paris.", "The capital of France is Paris, on the Seine.")]


def test_a_worker_compares_responses_shown_in_their_own_order(state: StackState, db: Database,
                                                              workbench: Workbench, browser: Browser):
    """A pairwise project: the prompt and both responses side by side, in the order drawn for this
    worker and task (stored with the assignment); keys 1 and 2 pick a response, T a tie, and the
    answer reaches Kafka as the canonical response."""
    from labelstream.dispatcher.display import display_order

    spec = events_pb2.ProjectSpec(schema_version=SCHEMA_VERSION, project_id=PAIRWISE, task="pairwise",
                                  allow_ties=True, name="Which answer is better?")
    client.apply_project(state.grpc_target("ingest"), spec)
    task_ids = [f"{PAIRWISE}:pair-{i}" for i in range(len(PROMPTS))]
    client.publish_human_tasks(state.kafka_bootstrap, [events_pb2.HumanTask(
        schema_version=SCHEMA_VERSION, project_id=PAIRWISE, item_id=f"pair-{i}", task_id=task_ids[i],
        text=PROMPTS[i], labels=["1", "2", "tie"], overlap=1, priority=0.9 - i / 10,
        responses=[events_pb2.Response(text=t, source=f"model-{j}") for j, t in enumerate(PAIRS[i])])
        for i in range(len(PROMPTS))])
    assert eventually(lambda: db.tasks.count_documents({"project_id": PAIRWISE}) == len(PROMPTS), timeout_s=60)
    token = workbench.accounts.create_worker(PAIR_WORKER, rotate=True)

    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.goto(f"{state.web_url('dispatcher')}?project_id={PAIRWISE}")
    page.get_by_test_id("token-input").fill(token)
    page.get_by_test_id("signin-button").click()
    picked = []  # (task, displayed key) per answer
    for i, key in enumerate(["1", "2", "T"]):
        order = display_order(PAIR_WORKER, task_ids[i], 2)
        expect(page.get_by_test_id("task-text")).to_have_text(PROMPTS[i])
        expect(page.get_by_test_id("response")).to_have_text([f"Response {k + 1}{PAIRS[i][j]}"
                                                              for k, j in enumerate(order)])
        expect(page.get_by_test_id("label-button")).to_have_text(
            ["1Response 1 is better", "2Response 2 is better", "TTie"])
        if i == 0:
            expect(page.get_by_test_id("guidelines")).to_contain_text("choose the best response")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT.parent / "comparison.png"), full_page=True)
        page.keyboard.press(key)
        picked.append((order, key))
        expect(page.get_by_test_id("stat-tasks-done")).to_have_text(str(i + 1))
    page.close()

    expected = {task_ids[i]: ("tie" if key == "T" else str(order[int(key) - 1] + 1), order)
                for i, (order, key) in enumerate(picked)}
    held = {a["task_id"]: (a["label"], a["display_order"]) for a in db.assignments.find({"worker_id": PAIR_WORKER})}
    assert held == expected, "each answer is stored as the canonical response, with the order the worker saw"
    published = eventually(lambda: db.responses.count_documents({"worker_id": PAIR_WORKER, "published": True}) == 3)
    assert published, "the dispatcher did not publish the answers"
    for doc in db.responses.find({"worker_id": PAIR_WORKER}):
        response = events_pb2.HumanResponse.FromString(doc["payload"])
        label, order = expected[response.task_id]
        assert (response.label, list(response.display_order)) == (label, order)
        assert response.displayed_position == (-1 if label == "tie" else order.index(int(label) - 1))


MULTI = "annotator-multilabel"
MULTI_WORKER = "w-multilabel"
EMOTIONS = ["anger", "joy", "sadness"]
COMMENTS = ["Furious, and somehow laughing about it.", "The train was on time.", "I miss her every day."]


def test_a_worker_ticks_label_sets_with_the_keyboard(state: StackState, db: Database, workbench: Workbench,
                                                     browser: Browser):
    """A multi_label project: one checkbox per label (keys 1..9 toggle, 0 "none of these"), the
    project's cap enforced on the page, Enter submits; per-label guidelines beside the boxes; each
    answer is stored and published as its sorted set's key."""
    spec = events_pb2.ProjectSpec(schema_version=SCHEMA_VERSION, project_id=MULTI, task="multi_label",
                                  labels=EMOTIONS, none_label="none of these", max_labels_per_item=2,
                                  label_guidelines={"joy": "happiness, amusement, relief"})
    client.apply_project(state.grpc_target("ingest"), spec)
    client.publish_human_tasks(state.kafka_bootstrap, [events_pb2.HumanTask(
        schema_version=SCHEMA_VERSION, project_id=MULTI, item_id=f"c-{i}", task_id=f"{MULTI}:c-{i}", text=text,
        labels=EMOTIONS, overlap=1, priority=0.9 - i / 10) for i, text in enumerate(COMMENTS)])
    assert eventually(lambda: db.tasks.count_documents({"project_id": MULTI}) == len(COMMENTS), timeout_s=60)
    token = workbench.accounts.create_worker(MULTI_WORKER, rotate=True)

    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.goto(f"{state.web_url('dispatcher')}?project_id={MULTI}")
    page.get_by_test_id("token-input").fill(token)
    page.get_by_test_id("signin-button").click()
    boxes = page.get_by_test_id("label-checkbox")
    expect(page.get_by_test_id("task-text")).to_have_text(COMMENTS[0])
    expect(page.get_by_test_id("choices")).to_contain_text("none of these")
    expect(page.get_by_test_id("label-guideline")).to_have_text(["— happiness, amusement, relief"])
    expect(page.get_by_test_id("label-button")).to_have_count(0)
    expect(boxes).to_have_count(3)

    page.keyboard.press("1")
    page.keyboard.press("2")
    page.keyboard.press("3")  # a third label: over the cap of 2, refused on the page
    expect(page.get_by_test_id("status-message")).to_have_text("At most 2 labels per item.")
    assert [boxes.nth(i).is_checked() for i in range(3)] == [True, True, False]
    page.keyboard.press("2")  # toggles joy off again, then on
    assert not boxes.nth(1).is_checked()
    page.keyboard.press("2")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT.parent / "checkboxes.png"), full_page=True)
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("status-message")).to_have_text("Saved “anger, joy”.")

    expect(page.get_by_test_id("task-text")).to_have_text(COMMENTS[1])
    assert not any(boxes.nth(i).is_checked() for i in range(3)), "a new task starts with nothing ticked"
    page.keyboard.press("Enter")  # nothing ticked: not sent
    expect(page.get_by_test_id("status-message")).to_have_text("Tick the labels that apply, or “none of these”.")
    page.keyboard.press("1")
    page.keyboard.press("0")  # none of these clears the labels
    assert not boxes.nth(0).is_checked() and page.get_by_test_id("none-checkbox").is_checked()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("status-message")).to_have_text("Saved “none of these”.")

    expect(page.get_by_test_id("task-text")).to_have_text(COMMENTS[2])
    boxes.nth(2).check()  # the mouse works too
    page.get_by_test_id("submit-button").click()
    expect(page.get_by_test_id("stat-tasks-done")).to_have_text("3")
    page.close()

    held = {a["task_id"]: a["label"] for a in db.assignments.find({"worker_id": MULTI_WORKER})}
    assert held == {f"{MULTI}:c-0": '["anger","joy"]', f"{MULTI}:c-1": "[]", f"{MULTI}:c-2": '["sadness"]'}
    assert eventually(lambda: db.responses.count_documents({"worker_id": MULTI_WORKER, "published": True}) == 3)
