"""The routing guarantee, measured: with probability >= confidence_level the items a chosen
threshold auto-accepts are at least `target` accurate.

Thousands of synthetic streams whose true accuracy curve hovers at or just under the target
over a long range are where a threshold rule is most easily fooled. Each stream's generating
probabilities are known, so the TRUE accuracy of what a threshold accepts is computed exactly
(no held-out noise). A run that accepts nothing meets the guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from labelstream.routing.thresholds import (
    NEVER,
    ThresholdMethod,
    Thresholds,
    choose_thresholds,
    scan_thresholds_pointwise,
)

TARGET = 0.95
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
CLASSES = 2
STREAMS = 2000
# Three standard errors of a violation share estimated on STREAMS runs.
SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / STREAMS)
RANKS = np.linspace(0.0, 1.0, 4001)  # u: the share of the stream more confident than an item


@dataclass
class Stream:
    """A stream whose items at confidence rank u (0: most confident) are right with
    probability p(u); the score is 1 - u (in 1/200 steps for some streams, so ties occur)."""

    local_accuracy: np.ndarray  # p on RANKS
    top_accuracy: np.ndarray    # A(f): accuracy of the most confident fraction f, on RANKS
    tied: bool

    def p(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, RANKS, self.local_accuracy)

    def accuracy_of_top(self, fraction: np.ndarray) -> np.ndarray:
        return np.interp(fraction, RANKS, self.top_accuracy)

    def score(self, u: np.ndarray) -> np.ndarray:
        return np.floor((1 - u) * 200) / 200 if self.tied else 1 - u

    def accepted_fraction(self, threshold: float) -> float:
        """Share of future items with score >= threshold (score = 1 - u, or its 1/200 floor:
        either way exactly the u <= 1 - threshold)."""
        return 0.0 if threshold == NEVER else float(np.clip(1 - threshold + 1e-12, 0.0, 1.0))


def stream_of(local_accuracy: np.ndarray, tied: bool) -> Stream:
    local_accuracy = np.clip(local_accuracy, 0.0, 1.0)
    cumulative = np.concatenate([[0.0], np.cumsum((local_accuracy[1:] + local_accuracy[:-1]) / 2 * np.diff(RANKS))])
    top = np.divide(cumulative, RANKS, out=local_accuracy.copy(), where=RANKS > 0)
    return Stream(local_accuracy, top, tied)


def hovering_stream(rng: np.random.Generator) -> Stream:
    """Accuracy a hair under the target (0.05 to 0.4 points) over 40-90% of the stream, then
    falling: flat, after a short perfect head (so the true curve crosses the target slowly), or
    wiggling around it."""
    local = np.full_like(RANKS, TARGET - rng.uniform(0.0005, 0.004))
    kind = rng.integers(3)
    if kind == 1:
        local[:np.searchsorted(RANKS, rng.uniform(0.0, 0.05))] = 1.0
    elif kind == 2:
        local += rng.uniform(0.0, 0.03) * np.sin(2 * np.pi * RANKS / rng.uniform(0.05, 0.3) + rng.uniform(0, 2 * np.pi))
    local[np.searchsorted(RANKS, rng.uniform(0.4, 0.9), side="right"):] = rng.uniform(0.5, 0.8)
    return stream_of(local, tied=bool(rng.random() < 1 / 3))


@dataclass
class VerifiedSample:
    stream: Stream
    scores: np.ndarray
    predicted: np.ndarray
    correct: np.ndarray


def draw(stream: Stream, n: int, rng: np.random.Generator) -> VerifiedSample:
    ranks = rng.random(n)
    return VerifiedSample(stream, stream.score(ranks), rng.integers(0, CLASSES, n), rng.random(n) < stream.p(ranks))


def true_accuracy(sample: VerifiedSample, thresholds: Thresholds) -> float:
    """Accuracy of the future items the thresholds accept (classes are alike and equally likely,
    so each class accepts its fraction of the same curve); 1.0 when nothing is accepted."""
    fractions = np.array([sample.stream.accepted_fraction(thresholds.threshold(c).threshold)
                          for c in range(CLASSES)])
    if fractions.sum() == 0:
        return 1.0
    return float((fractions * sample.stream.accuracy_of_top(fractions)).sum() / fractions.sum())


Rule = Callable[[VerifiedSample], Thresholds]
RULES: dict[str, Rule] = {
    "default": lambda s: choose_thresholds(s.scores, s.predicted, s.correct, CLASSES, TARGET, CONFIDENCE),
    "per_class": lambda s: choose_thresholds(s.scores, s.predicted, s.correct, CLASSES, TARGET, CONFIDENCE,
                                             method=ThresholdMethod.FIXED_SEQUENCE_PER_CLASS),
    "pointwise_scan": lambda s: scan_thresholds_pointwise(s.scores, s.predicted, s.correct, CLASSES, TARGET,
                                                          CONFIDENCE, "wilson"),
}


@pytest.fixture(scope="module")
def violation_shares() -> dict[str, float]:
    rng = np.random.default_rng(20240601)
    violations = dict.fromkeys(RULES, 0)
    for _ in range(STREAMS):
        sample = draw(hovering_stream(rng), int(rng.integers(1000, 4001)), rng)
        for name, rule in RULES.items():
            violations[name] += true_accuracy(sample, rule(sample)) < TARGET
    return {name: count / STREAMS for name, count in violations.items()}


def test_fixed_sequence_thresholds_keep_the_guarantee_where_the_curve_hovers_at_the_target(violation_shares):
    # Measured: 0.012 (pooled, the default) and 0.019 (per class) against an allowed 0.05 + 0.015.
    assert violation_shares["default"] <= ALPHA + SLACK, violation_shares
    assert violation_shares["per_class"] <= ALPHA + SLACK, violation_shares


def test_the_former_pointwise_scan_breaks_it_on_the_same_streams(violation_shares):
    """The test discriminates: the rule the issue reported (largest prefix whose pointwise
    bound passes) accepts too-inaccurate sets far more often than 1 - confidence_level."""
    # Measured: 0.123.
    assert violation_shares["pointwise_scan"] > 2 * ALPHA + SLACK, violation_shares


def test_a_model_near_chance_accepts_nothing():
    rng = np.random.default_rng(7)
    runs, accepted_nothing = 500, 0
    chance = stream_of(np.full_like(RANKS, 0.5) + 0.02 * np.sin(2 * np.pi * RANKS / 0.1), tied=False)
    for _ in range(runs):
        sample = draw(chance, int(rng.integers(500, 4001)), rng)
        thresholds = RULES["default"](sample)
        accepted_nothing += all(thresholds.threshold(c).threshold == NEVER for c in range(CLASSES))
    assert accepted_nothing >= CONFIDENCE * runs


def test_the_guarantee_is_not_kept_by_refusing_everything():
    """Where the model is clearly good, the sound rule accepts most of what it could: the
    top 30% are 99% right and the rest 70%, so the best threshold accepts 34.8% (measured with
    5,000 verified items: 32.5% on average)."""
    rng = np.random.default_rng(11)
    good_head = stream_of(np.where(RANKS < 0.3, 0.99, 0.7), tied=False)
    fractions, met = [], 0
    for _ in range(100):
        sample = draw(good_head, 5000, rng)
        thresholds = RULES["default"](sample)
        fractions.append(good_head.accepted_fraction(thresholds.threshold(0).threshold))
        met += true_accuracy(sample, thresholds) >= TARGET
    assert np.mean(fractions) > 0.28
    assert met >= 95


def test_thresholds_round_trip_and_old_documents_still_load():
    rng = np.random.default_rng(3)
    scores = rng.random(3000)
    thresholds = choose_thresholds(scores, rng.integers(0, CLASSES, 3000), rng.random(3000) < 0.9 + 0.1 * scores,
                                   CLASSES, 0.9)
    assert thresholds.method == ThresholdMethod.FIXED_SEQUENCE_POOLED
    assert thresholds.threshold(0).threshold < NEVER and thresholds.threshold(0).lower_bound >= 0.9
    assert Thresholds.from_doc(thresholds.to_doc()) == thresholds
    old = {"target": 0.95, "confidence_level": 0.95, "bound": "wilson",
           "per_class": {"0": {"threshold": 0.97, "accepted": 120, "correct": 118, "lower_bound": 0.951},
                         "1": {"threshold": None, "accepted": 0, "correct": 0, "lower_bound": 0.0}}}
    loaded = Thresholds.from_doc(old)
    assert loaded.method == ThresholdMethod.POINTWISE_SCAN and loaded.threshold(1).threshold == NEVER
    assert loaded.accepts(0, 0.98) and not loaded.accepts(0, 0.96)
