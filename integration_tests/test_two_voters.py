"""A project whose two models (encoder and causal LM on Triton) vote together."""

from __future__ import annotations

import numpy as np
import pytest

from integration_tests.conftest import eventually, make_project
from labelstream.cli import client

pytestmark = pytest.mark.integration


def test_both_models_vote_and_the_prediction_is_their_mean(state, db, demo_items):
    project = "two-voters"
    items = demo_items[420:440]
    spec = make_project(state, project, auto_accept_threshold=0.01)
    del spec.models[:]
    spec.models.extend(["encoder_fewshot", "causal_lm"])
    client.apply_project(state.grpc_target("ingest"), spec)
    client.publish_json_items(state.kafka_bootstrap, project, items)
    # 15 s alone; late in the suite the inference service still works through earlier tests' items
    assert eventually(lambda: db.predictions.count_documents({"project_id": project}) == len(items), timeout_s=420)
    for doc in db.predictions.find({"project_id": project}):
        assert doc["model_name"] == "encoder_fewshot+causal_lm"
        assert [v["model_name"] for v in doc["votes"]] == ["encoder_fewshot", "causal_lm"]
        votes = np.array([v["probabilities"] for v in doc["votes"]])
        np.testing.assert_allclose(votes.sum(axis=1), 1.0, atol=1e-4)
        np.testing.assert_allclose(doc["probabilities"], votes.mean(axis=0) / votes.mean(axis=0).sum(), atol=1e-5)
    client.wait_for_final_labels(state.grpc_target("monitor"), project, len(items), timeout_s=120)
