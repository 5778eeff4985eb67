"""Services killed mid-run lose nothing and create no second final label; SIGTERM is graceful."""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

from integration_tests.conftest import make_project
from labelstream.cli import client
from labelstream.common.topics import Topics
from labelstream.simulation.workforce import WorkerProfile, Workforce
from labelstream.v1 import events_pb2

pytestmark = pytest.mark.integration
PROJECT = "crash"


def all_final_label_messages(bootstrap: str) -> dict[str, list[events_pb2.FinalLabel]]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(Topics.LABELS_FINAL, p) for p in consumer.partitions_for_topic(Topics.LABELS_FINAL)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = consumer.end_offsets(partitions)
    found: dict[str, list[events_pb2.FinalLabel]] = defaultdict(list)
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        for batch in consumer.poll(timeout_ms=500).values():
            for record in batch:
                label = events_pb2.FinalLabel.FromString(record.value)
                if label.project_id == PROJECT:
                    found[label.item_id].append(label)
    consumer.close()
    return found


@pytest.mark.parametrize("victims", [("router", "aggregator", "dispatcher", "inference")])
def test_sigkill_mid_run_loses_nothing_and_duplicates_nothing(stack, state, db, demo_items, victims):
    items = demo_items[500:800]
    make_project(state, PROJECT)
    gold_by_text = {i["text"]: i["gold_label"] for i in items}
    monitor = state.grpc_target("monitor")
    with Workforce(state.grpc_target("dispatcher"), PROJECT, gold_by_text, count=6,
                   profile=WorkerProfile(accuracy=0.85, answer_ms=40)):
        client.publish_json_items(state.kafka_bootstrap, PROJECT, items)
        client.wait_for_final_labels(monitor, PROJECT, len(items) // 4, timeout_s=300)
        before = client.project_stats(monitor, PROJECT).final_labels
        assert before < len(items), "the run finished before the kill; nothing was tested"
        for victim in victims:
            stack.signal_service(victim, signal.SIGKILL)
        time.sleep(1.0)
        for victim in victims:
            stack.start_service(victim)
        client.wait_for_final_labels(monitor, PROJECT, len(items), timeout_s=600)

    stored = list(db.final_labels.find({"project_id": PROJECT}))
    assert len(stored) == len(items)
    assert {d["item_id"] for d in stored} == {i["item_id"] for i in items}
    messages = all_final_label_messages(state.kafka_bootstrap)
    assert set(messages) == {i["item_id"] for i in items}, "an item was lost"
    for item_id, labels in messages.items():
        assert len({(x.label, x.version) for x in labels}) == 1, f"{item_id} got two different final labels"
    assert db.predictions.count_documents({"project_id": PROJECT}) == len(items)


def test_sigterm_finishes_commits_and_exits_cleanly(stack, state):
    process = stack.processes["router"]
    log = Path(state.run_dir, "logs", "router.log")
    stack.signal_service("router", signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    text = log.read_text()
    assert '"msg": "consumer closed"' in text and '"msg": "stopped"' in text
    stack.start_service("router")
