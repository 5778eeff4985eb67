"""A degraded workforce (workers answering at random) raises the agreement and worker-accuracy
alerts as quality events, and the dispatcher puts those workers under more gold."""

from __future__ import annotations

import pytest

from integration_tests.conftest import eventually, make_project
from labelstream.cli import client
from labelstream.common.channels import open_channel
from labelstream.simulation.workforce import WorkerProfile, Workforce
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

pytestmark = pytest.mark.integration
PROJECT = "degraded-crowd"


def test_random_workers_raise_agreement_and_worker_accuracy_alerts(state, demo_items, db):
    spec = make_project(state, PROJECT, auto_accept_threshold=1.0, overlap=2, max_overlap=2)
    # gold checks without blocking, so the degraded crowd keeps working and the monitor sees it
    spec.workers.CopyFrom(events_pb2.WorkerPolicy(gold_rate_new=0.4, gold_rate_trusted=0.4, gold_rate_suspect=0.6))
    client.apply_project(state.grpc_target("ingest"), spec)
    gold, items = demo_items[700:730], demo_items[730:790]
    with open_channel(state.grpc_target("dispatcher")) as channel:
        services_pb2_grpc.DispatcherServiceStub(channel).AddGold(services_pb2.AddGoldRequest(
            project_id=PROJECT, items=[services_pb2.GoldItem(item_id=g["item_id"], text=g["text"],
                                                             label=g["gold_label"]) for g in gold]))
    truth = {i["text"]: i["gold_label"] for i in gold + items}

    def alerts() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for event in client.read_quality_events(state.kafka_bootstrap, PROJECT):
            found.setdefault(event.kind, set()).add(event.worker_id)
        return found if {"low_agreement", "low_worker_accuracy"} <= set(found) else {}

    with Workforce(state.grpc_target("dispatcher"), PROJECT, truth, count=4,
                   profile=WorkerProfile(behaviour="random", answer_ms=5), prefix="degraded"):
        client.publish_json_items(state.kafka_bootstrap, PROJECT, items)
        raised = eventually(alerts, timeout_s=120, interval_s=2.0)
    assert raised, f"alerts seen: {[e.kind for e in client.read_quality_events(state.kafka_bootstrap, PROJECT)]}"
    assert raised["low_worker_accuracy"] <= {f"degraded-0-{i:03d}" for i in range(4)}
    event = next(e for e in client.read_quality_events(state.kafka_bootstrap, PROJECT) if e.kind == "low_agreement")
    assert event.value < event.threshold and "agree too little" in event.detail
    flagged = eventually(lambda: db.worker_quality.count_documents(
        {"project_id": PROJECT, "flags": "low_worker_accuracy"}), timeout_s=30)
    assert flagged >= 1, "the dispatcher raised the gold rate of workers the monitor flagged"
