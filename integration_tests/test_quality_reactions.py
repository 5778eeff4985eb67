"""Dawid-Skene aggregation with dynamic overlap in the live aggregator, and the router's
reaction to the monitor's low-model-accuracy alert."""

from __future__ import annotations

import random
import statistics
import uuid

import numpy as np
import pytest
from kafka import KafkaProducer

from integration_tests.conftest import eventually, make_project
from labelstream.cli import client
from labelstream.common.settings import Settings
from labelstream.common.store import Store
from labelstream.common.topics import Topics
from labelstream.router.models import RoutingModels
from labelstream.simulation.workforce import WorkerProfile, Workforce
from labelstream.v1 import events_pb2

pytestmark = pytest.mark.integration
MAX_OVERLAP = 5


def test_dawid_skene_finalizes_at_the_posterior_bound_with_fewer_votes(state, demo_items, db):
    project = "ds-dynamic"
    items = demo_items[800:880]
    make_project(state, project, auto_accept_threshold=1.0, overlap=2, max_overlap=MAX_OVERLAP,
                 aggregation="dawid_skene", posterior_bound=0.95)
    truth = {i["text"]: i["gold_label"] for i in items}
    with Workforce(state.grpc_target("dispatcher"), project, truth, count=5,
                   profile=WorkerProfile(accuracy=0.92, answer_ms=150), prefix="ds-good"), \
            Workforce(state.grpc_target("dispatcher"), project, truth, count=2,
                      profile=WorkerProfile(behaviour="random", answer_ms=150), prefix="ds-noisy"):
        client.publish_json_items(state.kafka_bootstrap, project, items)
        client.wait_for_final_labels(state.grpc_target("monitor"), project, len(items), timeout_s=300)
    finals = client.read_final_labels(state.kafka_bootstrap, project)
    assert set(finals) == {i["item_id"] for i in items}
    assert {f.method for f in finals.values()} == {"dawid_skene"}
    for final in finals.values():
        assert final.confidence >= 0.95 or len(final.workers) == MAX_OVERLAP, final
    votes = [len(f.workers) for f in finals.values()]
    assert statistics.mean(votes) < MAX_OVERLAP - 1, f"dynamic overlap asked for {votes}"
    assert max(votes) > 2, "disagreement asked for more votes"
    gold = {i["item_id"]: i["gold_label"] for i in items}
    accuracy = np.mean([f.label == gold[item] for item, f in finals.items()])
    assert accuracy >= 0.85, accuracy


def test_router_tightens_and_recalibrates_on_low_model_accuracy(state, db):
    project = f"tighten-{uuid.uuid4().hex[:6]}"
    spec = make_project(state, project, routing_strategy="calibrated", target_accuracy=0.9, min_verified=20,
                        refit_every=1000)
    rng = random.Random(0)
    for i in range(60):  # verified items of a model that is right 85% of the time
        confidence = rng.uniform(0.5, 1.0)
        right = rng.random() < 0.85
        db.verified.insert_one({"_id": f"{project}:v{i}", "project_id": project, "item_id": f"v{i}",
                                "model": "encoder_fewshot/1", "probabilities": [confidence, 1 - confidence],
                                "label_index": 0 if right else 1, "text_length": 50, "models_agree": 1.0,
                                "at_ms": 0})
    event = events_pb2.QualityEvent(schema_version=events_pb2.SCHEMA_VERSION_1, project_id=project,
                                    kind="low_model_accuracy", value=0.6, threshold=0.7)
    producer = KafkaProducer(bootstrap_servers=state.kafka_bootstrap, acks="all")
    producer.send(Topics.QUALITY_EVENTS, key=project.encode(), value=event.SerializeToString()).get(timeout=30)
    producer.close()
    override = eventually(lambda: db.routing_overrides.find_one({"_id": project}), timeout_s=60)
    assert override and override["target_accuracy"] == pytest.approx(0.92)
    refit = eventually(lambda: db.routing_models.find_one({"project_id": project}), timeout_s=30)
    assert refit is not None, "the router recalibrated at once, without waiting for refit_every"
    models = RoutingModels(Store(Settings.from_env({"LABELSTREAM_MONGODB_URI": state.mongodb_uri})))
    assert models.target_accuracy(spec) == pytest.approx(0.92)
