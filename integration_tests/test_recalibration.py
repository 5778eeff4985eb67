"""Verified labels flow back as quality events and the router refits and uses its routing model."""

from __future__ import annotations

import pytest

from integration_tests.conftest import eventually, make_project
from labelstream.cli import client
from labelstream.common.channels import open_channel
from labelstream.simulation.workforce import WorkerProfile, Workforce
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

pytestmark = pytest.mark.integration
PROJECT = "recal"


def test_router_recalibrates_from_quality_events(state, db, demo_items):
    make_project(state, PROJECT, routing_strategy="calibrated", target_accuracy=0.9, min_verified=30,
                 refit_every=20)
    first, second = demo_items[:100], demo_items[100:120]
    gold_by_text = {i["text"]: i["gold_label"] for i in first + second}
    monitor = state.grpc_target("monitor")
    with Workforce(state.grpc_target("dispatcher"), PROJECT, gold_by_text, count=6,
                   profile=WorkerProfile(accuracy=0.9, answer_ms=10)):
        client.publish_json_items(state.kafka_bootstrap, PROJECT, first)
        stats = client.wait_for_final_labels(monitor, PROJECT, len(first), timeout_s=300)
        assert stats.human_path.final_labels == len(first), "cold start must send everything to people"
        # Every human final label comes back as a verified label (the last ones a moment later).
        assert eventually(lambda: db.verified.count_documents({"project_id": PROJECT}) == len(first))
        # The router refits every refit_every=20 new verified labels from min_verified=30 on, and at
        # once when the monitor reports low model accuracy (which restarts the count): so once all
        # 100 are in, the current fit has seen more than the last 20 of them, and there were at
        # least four fits (30, 50, 70 and one more).
        routing = eventually(lambda: db.routing_models.find_one(
            {"project_id": PROJECT, "model.n_verified": {"$gt": len(first) - 20}}))
        assert routing is not None, "the router did not refit on the verified labels"
        assert routing["version"] >= 4

        client.publish_json_items(state.kafka_bootstrap, PROJECT, second)
        client.wait_for_final_labels(monitor, PROJECT, len(first) + len(second), timeout_s=300)
    current = db.routing_models.find_one({"project_id": PROJECT})
    with open_channel(state.grpc_target("router")) as channel:
        decision = services_pb2_grpc.RouterServiceStub(channel).Explain(
            services_pb2.ExplainRequest(project_id=PROJECT, item_id=second[-1]["item_id"]), timeout=10)
    assert decision.strategy == "calibrated"
    assert 4 <= decision.routing_model_version <= current["version"]
    assert decision.verified_items > len(first) - 20
    assert decision.calibration_method in ("temperature", "isotonic")
    assert "threshold" in decision.reason
    assert decision.route in (events_pb2.ROUTE_AUTO, events_pb2.ROUTE_HUMAN)
