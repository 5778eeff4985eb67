"""Multi-label items through the router's decisions (no store, no broker)."""

from __future__ import annotations

import numpy as np

from labelstream.common.projects import resolve
from labelstream.router import multilabel as routing
from labelstream.routing.multilabel import choose_label_thresholds
from labelstream.v1 import events_pb2

LABELS = ["anger", "joy", "sadness"]


def multi(**overrides) -> events_pb2.ProjectSpec:
    return resolve(events_pb2.ProjectSpec(**{"project_id": "p", "task": "multi_label", "labels": LABELS,
                                             "auto_accept_threshold": 0.9, **overrides}))


def prediction(probabilities) -> events_pb2.Prediction:
    return events_pb2.Prediction(project_id="p", item_id="i", labels=LABELS, probabilities=probabilities,
                                 model_name="encoder_fewshot", model_version="1", text="t")


def test_an_item_is_auto_accepted_only_when_every_label_is_decided():
    decision = routing.route(prediction([0.95, 0.02, 0.97]), multi(), None)
    assert decision.route == events_pb2.ROUTE_AUTO and decision.label == '["anger","sadness"]'
    unsure = routing.route(prediction([0.95, 0.4, 0.97]), multi(), None)
    assert unsure.route == events_pb2.ROUTE_HUMAN and "joy" in unsure.reason
    assert unsure.label == '["anger","sadness"]'  # the model's own set (p >= 0.5) travels to people


def test_an_empty_or_overfull_model_set_goes_to_people():
    nothing = routing.route(prediction([0.01, 0.02, 0.03]), multi(), None)
    assert nothing.route == events_pb2.ROUTE_HUMAN  # every item holds a label: no none_label
    named = routing.route(prediction([0.01, 0.02, 0.03]), multi(none_label="none of these"), None)
    assert named.route == events_pb2.ROUTE_AUTO and named.label == "[]"
    capped = routing.route(prediction([0.99, 0.99, 0.01]), multi(max_labels_per_item=1), None)
    assert capped.route == events_pb2.ROUTE_HUMAN


def test_calibrated_routing_waits_for_verified_items_then_uses_per_label_thresholds():
    spec = multi(routing_strategy="calibrated", target_accuracy=0.9, min_verified=50)
    cold = routing.route(prediction([0.99, 0.01, 0.99]), spec, None, n_verified=3)
    assert cold.route == events_pb2.ROUTE_HUMAN and cold.reason.startswith("cold start")
    rng = np.random.default_rng(0)
    truth = rng.random((2000, 3)) < 0.3
    # a model sure and right on 70% of the (item, label) pairs, and at a loss (0.3-0.7) on the rest
    sure = rng.random(truth.shape) < 0.7
    right = np.where(truth, rng.uniform(0.9, 1.0, truth.shape), rng.uniform(0.0, 0.1, truth.shape))
    probabilities = np.where(sure, right, rng.uniform(0.3, 0.7, truth.shape))
    thresholds = choose_label_thresholds(probabilities, truth, 0.9, 0.95)
    decision = routing.route(prediction([0.99, 0.01, 0.99]), spec, thresholds, n_verified=2000, routing_version=1)
    assert decision.route == events_pb2.ROUTE_AUTO and decision.verified_items == 2000
    assert routing.route(prediction([0.99, 0.5, 0.99]), spec, thresholds, 2000).route == events_pb2.ROUTE_HUMAN


def test_the_calibration_sample_is_drawn_by_id_or_taken_before_any_threshold_exists():
    spec = multi(routing_strategy="calibrated", target_accuracy=0.9, min_verified=50, explore_fraction=0.1)
    cold = routing.route(prediction([0.99, 0.01, 0.99]), spec, None, n_verified=3)
    assert cold.calibration_sample and cold.route == events_pb2.ROUTE_HUMAN
    rng = np.random.default_rng(0)
    truth = rng.random((2000, 3)) < 0.3
    probabilities = np.where(truth, rng.uniform(0.9, 1.0, truth.shape), rng.uniform(0.0, 0.1, truth.shape))
    thresholds = choose_label_thresholds(probabilities, truth, 0.9, 0.95)
    decisions = [routing.route(events_pb2.Prediction(
        project_id="p", item_id=str(i), labels=LABELS, probabilities=[0.99, 0.01, 0.99], model_name="m",
        model_version="1", text="t"), spec, thresholds, 2000, 1) for i in range(1000)]
    sampled = [d for d in decisions if d.calibration_sample]
    assert 60 < len(sampled) < 140  # the exploration draw alone: thresholds exist
    assert all(d.explored and d.route == events_pb2.ROUTE_HUMAN for d in sampled)
    assert all(d.route == events_pb2.ROUTE_AUTO for d in decisions if not d.calibration_sample)
