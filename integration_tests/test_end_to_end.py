"""500 SST-2 items end to end through the real broker, store, Triton and all six services."""

from __future__ import annotations

import time

import pytest

from integration_tests.conftest import make_project
from labelstream.cli import client
from labelstream.common.store import item_key
from labelstream.simulation.workforce import WorkerProfile, Workforce

pytestmark = pytest.mark.integration
PROJECT = "e2e-sst2"


@pytest.fixture(scope="module")
def labeled(state, demo_items):
    items = demo_items[:500]
    make_project(state, PROJECT)
    gold_by_text = {i["text"]: i["gold_label"] for i in items}
    with Workforce(state.grpc_target("dispatcher"), PROJECT, gold_by_text, count=8,
                   profile=WorkerProfile(accuracy=0.85, answer_ms=20)):
        client.publish_json_items(state.kafka_bootstrap, PROJECT, items)
        stats = client.wait_for_final_labels(state.grpc_target("monitor"), PROJECT, len(items), timeout_s=600)
    time.sleep(1.0)  # let the monitor catch up with any trailing duplicate
    return items, client.project_stats(state.grpc_target("monitor"), PROJECT), stats


def test_every_item_has_exactly_one_final_label(labeled, state, db):
    items, stats, _ = labeled
    stored = list(db.final_labels.find({"project_id": PROJECT}))
    assert len(stored) == len(items)
    assert {d["item_id"] for d in stored} == {i["item_id"] for i in items}
    on_topic = client.read_final_labels(state.kafka_bootstrap, PROJECT)
    assert set(on_topic) == {i["item_id"] for i in items}
    assert stats.final_labels == len(items)


def test_both_paths_are_used(labeled, db):
    items, stats, _ = labeled
    assert stats.auto_path.final_labels > 0
    assert stats.human_path.final_labels > 0
    assert stats.auto_path.final_labels + stats.human_path.final_labels == len(items)
    # Human-path items were answered by `overlap` distinct workers.
    human = db.final_labels.find_one({"project_id": PROJECT, "method": "majority_vote"})
    assert len(set(human["workers"])) >= 3


def test_accuracy_matches_the_report(labeled, state):
    items, stats, _ = labeled
    gold = {i["item_id"]: i["gold_label"] for i in items}
    finals = client.read_final_labels(state.kafka_bootstrap, PROJECT)
    correct = sum(finals[item_id].label == label for item_id, label in gold.items())
    report = client.report_dict(stats)
    assert report["accuracy"]["overall"]["accuracy"] == round(correct / len(items), 4)
    assert stats.overall.correct == correct
    # A real model plus 3 workers at 85% should beat either alone by a margin.
    assert correct / len(items) > 0.85


def test_one_trace_follows_an_item_from_ingest_to_final_label_received_over_otlp(labeled, otlp, db):
    """The spans are what an OpenTelemetry collector received from the services over OTLP/gRPC."""
    human = db.final_labels.find_one({"project_id": PROJECT, "method": "majority_vote"})
    auto = db.final_labels.find_one({"project_id": PROJECT, "method": "model_threshold"})
    deadline = time.monotonic() + 10
    while True:
        recorded = otlp.spans()
        by_item = {}
        for span in recorded:
            attributes = span["attributes"]
            project, item = attributes.get("labelstream.project_id"), attributes.get("labelstream.item_id")
            task = attributes.get("labelstream.task_id", "")
            for doc in (human, auto):
                if (project, item) == (PROJECT, doc["item_id"]) or task == item_key(PROJECT, doc["item_id"]):
                    by_item.setdefault(doc["item_id"], []).append(span)
        traces = {item: {s["trace_id"] for s in found} for item, found in by_item.items()}
        services = {item: {s["service"] for s in found} for item, found in by_item.items()}
        expected_human = {f"labelstream-{s}" for s in ("ingest", "inference", "router", "dispatcher", "aggregator")}
        if services.get(human["item_id"], set()) >= expected_human or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert services[human["item_id"]] >= expected_human
    assert services[auto["item_id"]] >= {f"labelstream-{s}" for s in ("ingest", "inference", "router", "aggregator")}
    assert len(traces[human["item_id"]]) == 1, "the human-path item's spans span several traces"
    assert len(traces[auto["item_id"]]) == 1, "the auto-path item's spans span several traces"
    # the instrumentation packages' spans: gRPC servers and clients, and pymongo's commands
    received = otlp.spans()
    names = {s["name"] for s in received}
    assert any(name.endswith("labelstream.v1.DispatcherService/LeaseTask") for name in names), sorted(names)[:20]
    assert any(s["attributes"].get("db.system") == "mongodb" for s in received)
