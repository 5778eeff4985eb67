"""Events published outside a consumer batch are durable: a dispatcher killed (SIGKILL) after it
stored a worker's block and before it published the event still gets the event out after a
restart, and the aggregator excludes that worker's votes and re-aggregates."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import pytest

from integration_tests.conftest import eventually, make_project
from labelstream.cli import client
from labelstream.common.channels import open_channel
from labelstream.common.store import item_key
from labelstream.v1 import services_pb2, services_pb2_grpc

pytestmark = pytest.mark.integration
PROJECT = "outbox-crash"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def assignments(state) -> int:
    """How often the dispatcher's consumer group gave it partitions (its log says so each time)."""
    log = Path(state.run_dir, "logs", "dispatcher.log")
    return log.read_text().count('"msg": "partitions assigned"') if log.exists() else 0


def answer_all(state, token, truth: dict[str, str], wrong: bool, until) -> None:
    """Lease and answer (rightly, or always wrongly) until `until()` holds."""
    def step():
        with open_channel(state.grpc_target("dispatcher", token="")) as channel:
            stub = services_pb2_grpc.DispatcherServiceStub(channel)
            try:
                task = stub.LeaseTask(services_pb2.LeaseTaskRequest(project_id=PROJECT), metadata=token, timeout=10)
            except grpc.RpcError as error:
                if error.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    raise
                return until()
            label = truth[task.text]
            if wrong:
                label = next(x for x in task.labels if x != label)
            stub.SubmitAnswer(services_pb2.SubmitAnswerRequest(task_id=task.task_id, label=label), metadata=token,
                              timeout=10)
        return until()
    assert eventually(step, timeout_s=240, interval_s=0.2), "the answers did not settle in time"


def test_a_block_stored_before_a_crash_is_published_after_it(stack, state, db, demo_items):
    items = demo_items[40:46]
    assert len(items) == 6
    truth = {i["text"]: i["gold_label"] for i in items}
    make_project(state, PROJECT, auto_accept_threshold=1.0, overlap=1, max_overlap=3)
    admin = bearer(state.admin_token)
    with open_channel(state.grpc_target("dispatcher", token="")) as channel:
        stub = services_pb2_grpc.DispatcherServiceStub(channel)
        bad = bearer(stub.CreateWorker(services_pb2.CreateWorkerRequest(worker_id="careless", rotate_token=True),
                                       metadata=admin).token)
        good = bearer(stub.CreateWorker(services_pb2.CreateWorkerRequest(worker_id="careful", rotate_token=True),
                                        metadata=admin).token)
    client.publish_json_items(state.kafka_bootstrap, PROJECT, items)

    def finals() -> list[dict]:
        return [db.final_labels.find_one({"_id": item_key(PROJECT, i["item_id"])}) for i in items]

    # the careless worker labels every item, all wrong: each final label is theirs
    answer_all(state, bad, truth, wrong=True, until=lambda: all(finals()))
    assert all(f["workers"] == ["careless"] and f["version"] == 1 for f in finals())

    # the dispatcher dies right after storing the admin's block, before publishing its event
    stack.service_env_overrides["dispatcher"] = {"LABELSTREAM_FAILPOINTS": "dispatcher.block_stored"}
    stack.stop_process("dispatcher")
    joined = assignments(state)
    stack.start_service("dispatcher")
    assert eventually(lambda: assignments(state) > joined, timeout_s=90), "the dispatcher never got its partitions"
    with open_channel(state.grpc_target("dispatcher", token="")) as channel, pytest.raises(grpc.RpcError) as died:
        services_pb2_grpc.DispatcherServiceStub(channel).BlockWorker(services_pb2.BlockWorkerRequest(
            project_id=PROJECT, worker_id="careless", reason="every answer wrong"), metadata=admin, timeout=30)
    assert died.value.code() == grpc.StatusCode.UNAVAILABLE
    assert stack.processes["dispatcher"].wait(timeout=30) == -signal.SIGKILL
    record = db.worker_quality.find_one({"_id": f"{PROJECT}|careless"})
    assert record["status"] == "blocked", "the block was stored before the crash"
    (stored,) = list(db.outbox_dispatcher.find({"_id": f"worker_blocked|{PROJECT}|careless"}))
    assert stored["published"] is False
    assert not [e for e in client.read_quality_events(state.kafka_bootstrap, PROJECT) if e.kind == "worker_blocked"], \
        "the event was not published before the crash"
    assert db.excluded_workers.find_one({"_id": f"{PROJECT}|careless"}) is None

    # restarted, the dispatcher's outbox sweep publishes the event; the aggregator excludes the votes
    stack.service_env_overrides.pop("dispatcher")
    joined = assignments(state)
    stack.start_service("dispatcher")
    events = eventually(lambda: [e for e in client.read_quality_events(state.kafka_bootstrap, PROJECT)
                                 if e.kind == "worker_blocked" and e.worker_id == "careless"], timeout_s=60)
    assert len(events) == 1 and events[0].detail == "every answer wrong"
    assert eventually(lambda: db.excluded_workers.find_one({"_id": f"{PROJECT}|careless"}), timeout_s=60)
    assert eventually(lambda: db.outbox_dispatcher.find_one(
        {"_id": f"worker_blocked|{PROJECT}|careless", "published": True}), timeout_s=30)

    assert eventually(lambda: assignments(state) > joined, timeout_s=90), "the dispatcher never got its partitions"

    # every item the careless worker decided is re-aggregated from a careful worker's vote
    answer_all(state, good, truth, wrong=False,
               until=lambda: all(f["version"] >= 2 for f in finals()))
    for final, item in zip(finals(), items, strict=True):
        assert final["workers"] == ["careful"] and final["label"] == item["gold_label"], final
        assert "careless blocked" in final["revision_reason"]
