"""Budget deferral and model-plus-people overlap in the running stack."""

from __future__ import annotations

import pytest

from integration_tests.conftest import eventually, make_project
from labelstream.cli import client
from labelstream.simulation.workforce import WorkerProfile, Workforce

pytestmark = pytest.mark.integration


def test_capped_items_wait_and_are_released_when_the_cap_lifts(state, db, demo_items):
    project = "capped"
    items = demo_items[200:320]
    make_project(state, project, auto_accept_threshold=0.7, human_fraction_cap=0.3, overflow="wait")
    monitor = state.grpc_target("monitor")
    gold_by_text = {i["text"]: i["gold_label"] for i in items}
    with Workforce(state.grpc_target("dispatcher"), project, gold_by_text, count=6,
                   profile=WorkerProfile(accuracy=0.9, answer_ms=10)):
        client.publish_json_items(state.kafka_bootstrap, project, items)
        # right after the resilience tests restart Triton, routing 120 items took over 30 s in CI
        waiting = eventually(lambda: db.decisions.count_documents({"project_id": project}) == len(items)
                             and db.decisions.count_documents({"project_id": project, "deferred": True}),
                             timeout_s=180)
        assert waiting > 0, "the cap never made an item wait"
        routed = db.decisions.count_documents({"project_id": project})
        released = db.decisions.count_documents({"project_id": project, "route": "ROUTE_HUMAN",
                                                 "deferred": {"$ne": True}})
        assert released / routed <= 0.3 + 1 / routed
        make_project(state, project, auto_accept_threshold=0.7, human_fraction_cap=0.0, overflow="wait")
        stats = client.wait_for_final_labels(monitor, project, len(items), timeout_s=300)
    assert stats.final_labels == len(items)
    assert db.decisions.count_documents({"project_id": project, "deferred": True}) == 0


def test_near_threshold_items_are_labeled_by_the_model_and_one_person(state, db, demo_items):
    project = "near"
    items = demo_items[320:420]
    make_project(state, project, auto_accept_threshold=0.75, overlap_margin=0.2, overlap_near_threshold=2)
    gold_by_text = {i["text"]: i["gold_label"] for i in items}
    with Workforce(state.grpc_target("dispatcher"), project, gold_by_text, count=6,
                   profile=WorkerProfile(accuracy=0.9, answer_ms=10)):
        client.publish_json_items(state.kafka_bootstrap, project, items)
        client.wait_for_final_labels(state.grpc_target("monitor"), project, len(items), timeout_s=300)
    with_model = list(db.final_labels.find({"project_id": project, "method": "majority_vote_with_model"}))
    assert with_model, "no item near the threshold was labeled by the model and people together"
    assert min(len(f["workers"]) for f in with_model) == 1  # agreement of one person and the model suffices
    assert all(f["with_model"] and f["model_name"] == "encoder_fewshot" for f in with_model), "the model is named"
    near_ids = {d["item_id"] for d in db.decisions.find({"project_id": project, "model_votes": True})}
    assert {f["item_id"] for f in with_model} == near_ids
    far = db.final_labels.find_one({"project_id": project, "method": "majority_vote"})
    assert far is None or len(far["workers"]) >= 3
