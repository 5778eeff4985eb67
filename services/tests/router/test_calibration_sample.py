"""The router tests thresholds on a random sample of the stream, not on every verified item.

A stream is routed item by item as the router does it (policy.route, then fit_on_verified every
50 verified items), with a model whose accuracy rises with its confidence. Once the confident items
are auto-accepted, every other verified item is one people saw because its score was low; only
the random sample is exchangeable with the stream (routing/thresholds.py). On the calibration
sample the automation holds once it starts and the accepted items still reach the target."""

from __future__ import annotations

import numpy as np

from labelstream.common.projects import resolve
from labelstream.router.models import fit_on_verified
from labelstream.router.policy import route
from labelstream.v1 import events_pb2

LABELS = ["a", "b", "c", "d"]
TARGET = 0.90
ITEMS = 5000
BLOCK = 500


def stream(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and true labels of a model about 80% right overall whose most confident third
    is about 95% right."""
    rng = np.random.default_rng(seed)
    top = rng.beta(4, 1.5, ITEMS) * 0.75 + 0.25
    right = rng.random(ITEMS) < np.clip(top * 1.05 - 0.02, 0, 0.985)
    predicted = rng.integers(0, len(LABELS), ITEMS)
    wrong = (predicted + rng.integers(1, len(LABELS), ITEMS)) % len(LABELS)
    truth = np.where(right, predicted, wrong)
    probabilities = np.tile(((1 - top) / (len(LABELS) - 1))[:, None], (1, len(LABELS)))
    probabilities[np.arange(ITEMS), predicted] = top
    return probabilities, truth


def run(seed: int, sample_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Auto-accepted or not, and right or not, per item of one routed stream."""
    spec = resolve(events_pb2.ProjectSpec(
        project_id="p", task="single_label", labels=LABELS, routing_strategy="calibrated", target_accuracy=TARGET,
        confidence_level=0.95, min_verified=100, refit_every=50, explore_fraction=0.1, overlap=3,
        model="encoder_fewshot"))
    probabilities, truth = stream(seed)
    verified: list[dict] = []
    model, fitted_on = None, 0
    auto = np.zeros(ITEMS, dtype=bool)
    for i in range(ITEMS):
        prediction = events_pb2.Prediction(project_id="p", item_id=f"{seed}-{i}", labels=LABELS,
                                           probabilities=probabilities[i].tolist(), text="x" * 40,
                                           model_name="m", model_version="1")
        decision = route(prediction, spec, model, 1)
        auto[i] = decision.route == events_pb2.ROUTE_AUTO
        if not auto[i]:  # people give the true label
            verified.append({"probabilities": probabilities[i].tolist(), "label_index": int(truth[i]),
                             "text_length": 40, "calibration_sample": decision.calibration_sample or not sample_only})
        if len(verified) >= spec.min_verified and len(verified) - fitted_on >= spec.refit_every:
            model, fitted_on = fit_on_verified(spec, verified, TARGET), len(verified)
    return auto, probabilities.argmax(axis=1) == truth


def test_a_sample_chosen_by_id_or_before_any_threshold_is_flagged_and_never_answered_by_the_model():
    spec = resolve(events_pb2.ProjectSpec(project_id="p", task="single_label", labels=LABELS,
                                          routing_strategy="calibrated", min_verified=100, explore_fraction=0.1,
                                          overlap_margin=0.5, model="encoder_fewshot"))
    cold = route(events_pb2.Prediction(project_id="p", item_id="x", labels=LABELS,
                                       probabilities=[0.97, 0.01, 0.01, 0.01]), spec)
    assert cold.calibration_sample and not cold.model_votes
    drawn = [route(events_pb2.Prediction(project_id="p", item_id=str(i), labels=LABELS,
                                         probabilities=[0.97, 0.01, 0.01, 0.01]), spec, None) for i in range(400)]
    assert all(d.calibration_sample for d in drawn)  # cold start: everything is the sample
    probabilities, truth = stream(0)
    verified = [{"probabilities": p.tolist(), "label_index": int(t), "text_length": 1} for p, t in
                zip(probabilities, truth, strict=True)]
    model = fit_on_verified(spec, verified, spec.target_accuracy)
    assert not model.thresholds.accepts_nothing(len(LABELS))
    routed = {certainty: [route(events_pb2.Prediction(
        project_id="p", item_id=str(i), labels=LABELS, probabilities=[certainty] + [(1 - certainty) / 3] * 3),
        spec, model, 1) for i in range(1000)] for certainty in (0.999, 0.3)}
    confident, unsure = routed[0.999], routed[0.3]
    assert all(d.route == events_pb2.ROUTE_HUMAN for d in unsure)
    # the sample is the same 10% of items, by id, whatever their score
    assert [d.calibration_sample for d in confident] == [d.calibration_sample for d in unsure]
    assert 60 < sum(d.calibration_sample for d in unsure) < 140
    assert all(d.explored == d.calibration_sample for d in confident)
    assert not any(d.model_votes for d in unsure if d.calibration_sample)


def test_thresholds_tested_on_the_calibration_sample_keep_automation_and_the_target():
    for seed in (0, 1):
        auto, right = run(seed, sample_only=True)
        started = int(np.argmax(auto))
        assert auto.any() and started < ITEMS // 2, "the router never started auto-accepting"
        later_blocks = [auto[s:s + BLOCK].mean() for s in range(started + BLOCK, ITEMS - BLOCK + 1, BLOCK)]
        assert min(later_blocks) > 0.15, f"automation fell back once it had started: {later_blocks}"
        assert right[auto].mean() >= TARGET, f"auto-accepted accuracy {right[auto].mean():.3f} below the target"
