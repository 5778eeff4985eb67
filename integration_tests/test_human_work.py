"""Human work through the real dispatcher, broker, store and aggregator: tokens and refusals,
hidden gold that looks like any task, qualification, blocking with retroactive exclusion and a
corrected final label."""

from __future__ import annotations

import re
import time

import grpc
import pytest

from integration_tests.conftest import eventually, make_project
from labelstream.cli import client
from labelstream.common.channels import open_channel
from labelstream.common.store import item_key
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

pytestmark = pytest.mark.integration
PROJECT = "human-work"
POLICY = events_pb2.WorkerPolicy(
    qualification_tasks=2, qualification_accuracy=1.0, block_accuracy=0.6, block_confidence=0.8,
    min_gold_to_block=3, gold_rate_new=0.5, gold_rate_trusted=0.5, gold_rate_suspect=0.5, trusted_after=50)
HANDLE = re.compile(r"^t-[0-9a-f]{24}$")


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
def dispatcher(state):
    with open_channel(state.grpc_target("dispatcher", token="")) as channel:
        yield services_pb2_grpc.DispatcherServiceStub(channel)


@pytest.fixture(scope="module")
def project(state, demo_items, dispatcher):
    """Six items, all to people (two answers each), and twenty hidden gold items."""
    spec = make_project(state, PROJECT, auto_accept_threshold=1.0, overlap=2, max_overlap=4, pay_per_answer=0.05)
    spec.workers.CopyFrom(POLICY)
    client.apply_project(state.grpc_target("ingest"), spec)
    gold = demo_items[600:620]
    added = dispatcher.AddGold(services_pb2.AddGoldRequest(project_id=PROJECT, items=[
        services_pb2.GoldItem(item_id=g["item_id"], text=g["text"], label=g["gold_label"]) for g in gold]),
        metadata=bearer(state.admin_token))
    assert (added.added, added.total) == (20, 20)
    items = demo_items[620:626]
    client.publish_json_items(state.kafka_bootstrap, PROJECT, items)
    truth = {g["text"]: g["gold_label"] for g in gold + items}
    gold_texts = {g["text"] for g in gold}
    return items, truth, gold_texts


def new_worker(dispatcher, state, worker_id: str) -> tuple[tuple[str, str], ...]:
    created = dispatcher.CreateWorker(services_pb2.CreateWorkerRequest(worker_id=worker_id, rotate_token=True),
                                      metadata=bearer(state.admin_token))
    return bearer(created.token)


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code()


def lease_now(dispatcher, token) -> services_pb2.LeasedTask | None:
    try:
        return dispatcher.LeaseTask(services_pb2.LeaseTaskRequest(project_id=PROJECT), metadata=token)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return None


def lease(dispatcher, token, timeout_s: float = 30.0) -> services_pb2.LeasedTask | None:
    return eventually(lambda: lease_now(dispatcher, token), timeout_s=timeout_s, interval_s=0.3)


def submit(dispatcher, token, task, label: str) -> None:
    dispatcher.SubmitAnswer(services_pb2.SubmitAnswerRequest(task_id=task.task_id, label=label), metadata=token)


def test_calls_without_a_valid_token_are_unauthenticated(dispatcher, project):
    assert code_of(lambda: dispatcher.LeaseTask(services_pb2.LeaseTaskRequest())) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: dispatcher.LeaseTask(services_pb2.LeaseTaskRequest(), metadata=bearer("lsw_forged"))) \
        == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: dispatcher.GetMyStats(services_pb2.GetMyStatsRequest())) \
        == grpc.StatusCode.UNAUTHENTICATED


def test_admin_calls_need_the_admin_token(dispatcher, state, project):
    worker = new_worker(dispatcher, state, "not-an-admin")
    create = services_pb2.CreateWorkerRequest(worker_id="intruder")
    assert code_of(lambda: dispatcher.CreateWorker(create)) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: dispatcher.CreateWorker(create, metadata=worker)) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: dispatcher.AddGold(services_pb2.AddGoldRequest(project_id=PROJECT), metadata=worker)) \
        == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: dispatcher.ListWorkers(services_pb2.ListWorkersRequest(project_id=PROJECT),
                                                  metadata=worker)) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: dispatcher.BlockWorker(services_pb2.BlockWorkerRequest(
        project_id=PROJECT, worker_id="not-an-admin"), metadata=worker)) == grpc.StatusCode.PERMISSION_DENIED
    rotated = dispatcher.CreateWorker(services_pb2.CreateWorkerRequest(worker_id="not-an-admin", rotate_token=True),
                                      metadata=bearer(state.admin_token))
    assert rotated.token and code_of(lambda: dispatcher.GetMyStats(services_pb2.GetMyStatsRequest(),
                                                                   metadata=worker)) \
        == grpc.StatusCode.UNAUTHENTICATED, "a rotated token stops working"


def test_gold_is_indistinguishable_and_answers_are_guarded(dispatcher, state, project, db):
    _, truth, gold_texts = project
    first, second = new_worker(dispatcher, state, "guard-1"), new_worker(dispatcher, state, "guard-2")
    task = lease(dispatcher, first)
    assert task.text in gold_texts, "a new worker qualifies on gold first"
    assert code_of(lambda: submit(dispatcher, second, task, truth[task.text])) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: submit(dispatcher, first, task, "no such label")) == grpc.StatusCode.INVALID_ARGUMENT
    submit(dispatcher, first, task, truth[task.text])
    assert code_of(lambda: submit(dispatcher, first, task, truth[task.text])) == grpc.StatusCode.ALREADY_EXISTS
    second_gold = lease(dispatcher, first)
    assert second_gold.text in gold_texts, "qualification is two gold tasks"
    submit(dispatcher, first, second_gold, truth[second_gold.text])
    seen: dict[bool, services_pb2.LeasedTask] = {}
    for _ in range(30):
        task = lease(dispatcher, first)
        seen.setdefault(task.text in gold_texts, task)
        submit(dispatcher, first, task, truth[task.text])
        if len(seen) == 2:
            break
    assert set(seen) == {True, False}, "after qualification both kinds of task come"
    gold, real = seen[True], seen[False]
    assert [f.name for f, _ in gold.ListFields()] == [f.name for f, _ in real.ListFields()]
    assert HANDLE.match(gold.task_id) and HANDLE.match(real.task_id)
    assert (gold.instructions, gold.pay, list(gold.labels)) == (real.instructions, real.pay, list(real.labels))
    own = dispatcher.GetMyStats(services_pb2.GetMyStatsRequest(project_id=PROJECT), metadata=first)
    assert own.gold_answered == 0 and not own.fraud_signals, "the worker's own view hides gold counts"


def test_blocking_excludes_answers_and_corrects_final_labels(dispatcher, state, project, db):
    items, truth, gold_texts = project
    good = new_worker(dispatcher, state, "good-1")
    while (task := lease(dispatcher, good, timeout_s=60)) is not None:
        submit(dispatcher, good, task, truth[task.text])
        answered_real = db.votes.count_documents({"project_id": PROJECT, "worker_id": "good-1"})
        if answered_real == len(items):
            break
    bad = new_worker(dispatcher, state, "bad-1")
    voted: set[str] = set()
    # Right on real tasks (so finals carry its vote); wrong on gold once it has voted on two items.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            task = dispatcher.LeaseTask(services_pb2.LeaseTaskRequest(project_id=PROJECT), metadata=bad)
        except grpc.RpcError as error:
            assert error.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)
            if error.code() == grpc.StatusCode.PERMISSION_DENIED:
                assert "gold accuracy" in error.details()
                break
            time.sleep(0.15)  # under the per-worker rate limit
            continue
        qualified = db.worker_quality.find_one({"_id": f"{PROJECT}|bad-1"})["status"] == "active"
        if len(voted) >= 2:  # its labels are final with its vote before it gets caught
            assert eventually(lambda: all("bad-1" in (db.final_labels.find_one(
                {"_id": item_key(PROJECT, item)}) or {}).get("workers", []) for item in voted))
        if task.text in gold_texts:
            wrong = next(label for label in task.labels if label != truth[task.text])
            submit(dispatcher, bad, task, wrong if qualified and len(voted) >= 2 else truth[task.text])
        elif len(voted) < 2:
            submit(dispatcher, bad, task, truth[task.text])
            voted.add(next(i["item_id"] for i in items if i["text"] == task.text))
        else:
            dispatcher.SkipTask(services_pb2.SkipTaskRequest(task_id=task.task_id), metadata=bad)
    record = db.worker_quality.find_one({"_id": f"{PROJECT}|bad-1"})
    assert record["status"] == "blocked", record
    assert voted, "the blocked worker answered real tasks before being caught"
    # Its finished labels are reopened; another worker's vote yields version 2 without it.
    replacement = new_worker(dispatcher, state, "good-2")

    def corrected():
        task = lease_now(dispatcher, replacement)
        if task is not None:
            submit(dispatcher, replacement, task, truth[task.text])
        finals = [db.final_labels.find_one({"_id": item_key(PROJECT, item)}) for item in voted]
        return all(f and f["version"] >= 2 for f in finals) and finals
    finals = eventually(corrected, timeout_s=90, interval_s=0.2)
    state_of = {item: (db.final_labels.find_one({"_id": item_key(PROJECT, item)}),
                       db.vote_requests.find_one({"project_id": PROJECT, "item_id": item}),
                       db.tasks.find_one({"project_id": PROJECT, "item_id": item}),
                       list(db.votes.find({"project_id": PROJECT, "item_id": item}))) for item in voted}
    assert finals, f"every label the blocked worker influenced was re-aggregated: {state_of}"
    for final in finals:
        assert "bad-1" not in final["workers"] and "blocked" in final["revision_reason"]
        assert final["label"] == truth[next(i["text"] for i in items if i["item_id"] == final["item_id"])]
    versions = eventually(lambda: (lambda seen: seen if all(
        {1, 2} <= seen.get(item, set()) for item in voted) else None)(
        client.read_final_label_versions(state.kafka_bootstrap, PROJECT)), timeout_s=30)
    assert versions, "both versions are on labels.final"



def test_the_export_carries_a_datasheet_of_the_people_behind_the_labels(dispatcher, state, project, db, tmp_path):
    """`labelstream export` writes the labels and, beside them, who made them and under which rules."""
    from labelstream.cli.main import datasheet_path, write_export

    items, truth, _gold = project
    # Earlier tests leave items that only good-1 answered (two answers each are needed): a last
    # worker finishes them, so that every item has its final label before the export.
    finisher = new_worker(dispatcher, state, "finisher")

    def all_final():
        task = lease_now(dispatcher, finisher)
        if task is not None:
            submit(dispatcher, finisher, task, truth[task.text])
        return db.final_labels.count_documents({"project_id": PROJECT}) == len(items)
    assert eventually(all_final, timeout_s=90, interval_s=0.2), "every item gets its final label"
    out = tmp_path / "labels.jsonl"
    sheet = write_export(state, PROJECT, out)
    exported = [line for line in out.read_text().splitlines() if line.strip()]
    assert len(exported) == sheet["final_labels"] == len(items)
    people = sheet["people"]
    assert people["count"] >= 4 and people["blocked"] >= 1, people  # good-1, bad-1 (blocked), good-2, finisher
    assert people["hours"] > 0 and people["paid"] == pytest.approx(0.05 * people["answers"], rel=0.01)
    assert sheet["decided_by"]["people"]["labels"] == len(items), "a threshold of 1.0 leaves every item to people"
    assert sheet["pay"]["people_with_measured_time"] == people["count"]
    assert sheet["rules"]["gold"]["gold_rate_new"] == pytest.approx(0.5)
    text = datasheet_path(out, ".md").read_text()
    assert f"{people['count']} people answered {people['answers']} tasks" in text
    assert datasheet_path(out, ".json").exists()
