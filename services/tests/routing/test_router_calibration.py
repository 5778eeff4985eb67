"""Calibration, threshold selection, scoring strategies and the routing decision, without a broker."""

import math

import numpy as np
import pytest

from labelstream.router.budget import Budget
from labelstream.router.policy import explore_draw, route
from labelstream.routing.calibration import expected_calibration_error, fit_calibrator
from labelstream.routing.scoring import RoutingModel, fit_routing_model
from labelstream.routing.thresholds import (
    NEVER,
    ThresholdMethod,
    choose_thresholds,
    clopper_pearson_lower_bound,
    wilson_lower_bound,
)
from labelstream.v1 import events_pb2


def overconfident(n: int, seed: int = 0):
    """A model that says 0.95 on every item but is right 70% of the time."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    right = rng.random(n) < 0.7
    predicted = np.where(right, labels, 1 - labels)
    top = rng.uniform(0.9, 0.99, n)
    probabilities = np.zeros((n, 2))
    probabilities[np.arange(n), predicted] = top
    probabilities[np.arange(n), 1 - predicted] = 1 - top
    return probabilities, labels


def test_calibration_repairs_an_overconfident_model():
    probabilities, labels = overconfident(2000)
    calibrator = fit_calibrator(probabilities, labels)
    assert calibrator.ece_before > 0.2
    assert calibrator.ece_after < 0.05
    assert set(calibrator.held_out_log_loss) == {"temperature", "isotonic"}
    assert calibrator.method == min(calibrator.held_out_log_loss, key=calibrator.held_out_log_loss.get)


def test_ece_of_a_perfectly_calibrated_score_is_small():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.5, 1.0, 20000)
    correct = rng.random(20000) < confidence
    assert expected_calibration_error(confidence, correct) < 0.02


def test_lower_bounds():
    assert 0.89 < wilson_lower_bound(95, 100, 0.95) < 0.92
    assert clopper_pearson_lower_bound(100, 100, 0.95) == pytest.approx(0.05 ** (1 / 100), rel=1e-6)
    assert clopper_pearson_lower_bound(95, 100, 0.95) < wilson_lower_bound(95, 100, 0.95)


def test_thresholds_meet_the_bound_per_class_and_refuse_hopeless_classes():
    rng = np.random.default_rng(2)
    n = 4000
    scores = rng.uniform(0, 1, n)
    predicted = rng.integers(0, 2, n)
    # class 0: accuracy equals the score; class 1: always 60% right
    correct = np.where(predicted == 0, rng.random(n) < scores, rng.random(n) < 0.6)
    thresholds = choose_thresholds(scores, predicted, correct, 2, target=0.9,
                                   method=ThresholdMethod.FIXED_SEQUENCE_PER_CLASS)
    zero = thresholds.threshold(0)
    assert 0.8 < zero.threshold < 0.98
    assert zero.lower_bound >= 0.9 and zero.correct / zero.accepted >= 0.9
    assert thresholds.threshold(1).threshold == NEVER
    # One pooled threshold (the default) guarantees the accuracy of everything accepted, not of
    # each class: on scores that do not tell the classes apart it cannot certify the mix at all.
    pooled = choose_thresholds(scores, predicted, correct, 2, target=0.9)
    assert pooled.threshold(0).threshold == pooled.threshold(1).threshold == NEVER


def test_routing_model_round_trips_through_a_document():
    probabilities, labels = overconfident(400)
    model = fit_routing_model("meta", probabilities, np.full(400, 50.0), labels, target=0.9)
    again = RoutingModel.from_doc(model.to_doc())
    np.testing.assert_allclose(again.score(probabilities[:20], np.full(20, 50.0)),
                               model.score(probabilities[:20], np.full(20, 50.0)))


SPEC = events_pb2.ProjectSpec(project_id="p", labels=["neg", "pos"], overlap=3, routing_strategy="calibrated",
                              target_accuracy=0.95, confidence_level=0.95, min_verified=100)


def prediction(top: float, item_id: str = "1"):
    return events_pb2.Prediction(project_id="p", item_id=item_id, labels=["neg", "pos"],
                                 probabilities=[1 - top, top], text="some text", model_name="m", model_version="1")


def test_cold_start_sends_everything_to_people():
    decision = route(prediction(0.999), SPEC, routing=None)
    assert decision.route == events_pb2.ROUTE_HUMAN and decision.reason.startswith("cold start: 0 of 100")


def test_calibrated_routing_uses_class_thresholds_and_explains_itself():
    rng = np.random.default_rng(3)
    n = 3000
    top = rng.uniform(0.5, 1.0, n)
    labels = rng.integers(0, 2, n)
    right = rng.random(n) < top  # a calibrated model
    predicted = np.where(right, labels, 1 - labels)
    probabilities = np.zeros((n, 2))
    probabilities[np.arange(n), predicted] = top
    probabilities[np.arange(n), 1 - predicted] = 1 - top
    model = fit_routing_model("calibrated", probabilities, np.full(n, 9.0), labels, target=0.95)
    sure, unsure = route(prediction(0.999), SPEC, model, 4), route(prediction(0.6), SPEC, model, 4)
    assert sure.route == events_pb2.ROUTE_AUTO and unsure.route == events_pb2.ROUTE_HUMAN
    assert sure.routing_model_version == 4 and sure.verified_items == n
    assert sure.accuracy_lower_bound >= 0.95 and "class threshold" in sure.reason


def test_exploration_is_a_fixed_random_sample():
    spec = events_pb2.ProjectSpec()
    spec.CopyFrom(SPEC)
    spec.routing_strategy = "threshold"
    spec.auto_accept_threshold = 0.5
    spec.explore_fraction = 0.2
    decisions = [route(prediction(0.99, str(i)), spec) for i in range(2000)]
    explored = [d for d in decisions if d.explored]
    assert 300 < len(explored) < 500
    assert all(d.route == events_pb2.ROUTE_HUMAN for d in explored)
    assert explore_draw("p", "7") == explore_draw("p", "7")


def test_budget_cap_overflows_to_auto_or_people():
    spec = events_pb2.ProjectSpec()
    spec.CopyFrom(SPEC)
    spec.routing_strategy = "threshold"
    spec.auto_accept_threshold = 0.99
    budget = Budget(human_fraction_cap=0.5, routed=10, to_people=5)
    spec.overflow = "auto"
    capped = route(prediction(0.6), spec, budget=budget)
    assert capped.route == events_pb2.ROUTE_AUTO and "human fraction cap" in capped.budget
    spec.overflow = "people"
    assert route(prediction(0.6), spec, budget=budget).route == events_pb2.ROUTE_HUMAN


def test_spend_per_hour():
    budget = Budget(budget_per_hour=3.0, cost_per_task=1.0)
    for t in (0.0, 10.0, 20.0):
        assert budget.binding(now=t) == ""
        budget.record(True, now=t)
    assert "budget 3.00/h" in budget.binding(now=30.0)
    assert budget.binding(now=3601.0) == ""
    assert math.isclose(budget.spend_last_hour(now=3611.0), 1.0)


def test_items_near_the_threshold_get_the_model_as_a_voter():
    from labelstream.router.policy import human_task

    spec = events_pb2.ProjectSpec()
    spec.CopyFrom(SPEC)
    spec.routing_strategy = "threshold"
    spec.auto_accept_threshold = 0.9
    spec.overlap_margin = 0.2
    spec.overlap_near_threshold = 2
    near, far = route(prediction(0.8), spec), route(prediction(0.6), spec)
    assert near.model_votes and not far.model_votes
    assert human_task(prediction(0.8), near, spec, "t").overlap == 1  # one person + the model
    assert human_task(prediction(0.6), far, spec, "t").overlap == 3


def test_wait_overflow_defers_instead_of_sending():
    spec = events_pb2.ProjectSpec()
    spec.CopyFrom(SPEC)
    spec.routing_strategy = "threshold"
    spec.auto_accept_threshold = 0.99
    spec.overflow = "wait"
    decision = route(prediction(0.6), spec, budget=Budget(human_fraction_cap=0.5, routed=10, to_people=5))
    assert decision.route == events_pb2.ROUTE_HUMAN and decision.deferred


def test_meta_classifier_learns_from_the_models_agreement():
    """When two voting models disagree the top label is usually wrong: the meta score says so."""
    from labelstream.router.policy import models_agree
    from labelstream.routing.scoring import MetaClassifier, item_context

    rng = np.random.default_rng(4)
    n = 2000
    probabilities, labels = overconfident(n, seed=4)
    correct = probabilities.argmax(axis=1) == labels
    agree = np.where(correct, rng.random(n) < 0.9, rng.random(n) < 0.2).astype(float)
    meta = MetaClassifier.fit(probabilities, item_context(np.full(n, 40.0), agree), labels)
    scores = meta.score(probabilities, item_context(np.full(n, 40.0), agree))
    assert scores[agree == 1].mean() > scores[agree == 0].mean() + 0.3
    vote = events_pb2.Prediction(labels=["neg", "pos"], probabilities=[0.4, 0.6])
    vote.votes.add(model_name="a", probabilities=[0.2, 0.8])
    vote.votes.add(model_name="b", probabilities=[0.7, 0.3])
    assert models_agree(vote) == 0.0 and models_agree(prediction(0.9)) == 1.0
