"""Scores that say how likely the model's top label is right, and the routing model built on them.

Strategies (chosen per project):
- "threshold": the raw top probability against the project's fixed auto_accept_threshold;
- "calibrated": calibrated confidence (routing/calibration.py) with thresholds chosen for the
  project's target accuracy (routing/thresholds.py: sound fixed-sequence tests, pooled over the
  classes by default);
- "meta": a classifier that predicts whether the model is right from the top probability,
  margin, entropy, predicted class, text length and (with several voting models) whether the
  models agree, with the same threshold selection.
Scores used to choose thresholds are out-of-fold, so a fitted scorer never grades itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from labelstream.common.projects import RoutingStrategy
from labelstream.routing.calibration import Calibrator, expected_calibration_error, fit_calibrator
from labelstream.routing.thresholds import DEFAULT_METHOD, Thresholds, choose_thresholds

FOLDS = 5


def item_context(text_lengths: np.ndarray, models_agree: np.ndarray | None = None) -> np.ndarray:
    """Per-item facts beside the probabilities: text length and whether the project's models
    (when it has several voters) agree on the top label (1.0 with a single model)."""
    lengths = np.asarray(text_lengths, dtype=float)
    agree = np.ones_like(lengths) if models_agree is None else np.asarray(models_agree, dtype=float)
    return np.column_stack([lengths, agree])


def meta_features(probabilities: np.ndarray, context: np.ndarray) -> np.ndarray:
    """Features of "is the model right?": top probability, margin, entropy, text length, models'
    agreement and the predicted class. `context` is item_context(...) or plain text lengths."""
    probabilities = np.clip(np.atleast_2d(probabilities), 1e-9, 1.0)
    context = np.asarray(context, dtype=float)
    if context.ndim == 1:
        context = item_context(context)
    ordered = np.sort(probabilities, axis=1)
    top, second = ordered[:, -1], ordered[:, -2]
    entropy = -(probabilities * np.log(probabilities)).sum(axis=1) / np.log(probabilities.shape[1])
    onehot = np.eye(probabilities.shape[1])[probabilities.argmax(axis=1)]
    return np.column_stack([top, top - second, entropy, np.log1p(context[:, 0]), context[:, 1], onehot])


@dataclass
class MetaClassifier:
    coef: list[float]
    intercept: float

    @classmethod
    def fit(cls, probabilities: np.ndarray, text_lengths: np.ndarray, labels: np.ndarray) -> MetaClassifier:
        correct = (probabilities.argmax(axis=1) == labels).astype(int)
        if correct.min() == correct.max():  # all right (or all wrong): nothing to learn but the rate
            rate = float(np.clip(correct.mean(), 1e-3, 1 - 1e-3))
            return cls([0.0] * meta_features(probabilities[:1], text_lengths[:1]).shape[1],
                       float(np.log(rate / (1 - rate))))
        model = LogisticRegression(C=1.0, max_iter=2000).fit(meta_features(probabilities, text_lengths), correct)
        return cls([float(c) for c in model.coef_[0]], float(model.intercept_[0]))

    def score(self, probabilities: np.ndarray, text_lengths: np.ndarray) -> np.ndarray:
        z = meta_features(probabilities, text_lengths) @ np.array(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))


@dataclass
class RoutingModel:
    """What the router applies to new predictions of one project and model version."""

    strategy: str
    thresholds: Thresholds
    calibrator: Calibrator | None = None
    meta: MetaClassifier | None = None
    n_verified: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    def score(self, probabilities: np.ndarray, text_lengths: np.ndarray) -> np.ndarray:
        probabilities = np.atleast_2d(np.asarray(probabilities, dtype=float))
        if self.strategy == RoutingStrategy.META and self.meta is not None:
            return self.meta.score(probabilities, text_lengths)
        if self.calibrator is not None:
            return self.calibrator.confidence(probabilities)
        return probabilities.max(axis=1)

    def to_doc(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "thresholds": self.thresholds.to_doc(),
                "calibrator": self.calibrator.to_doc() if self.calibrator else None,
                "meta": {"coef": self.meta.coef, "intercept": self.meta.intercept} if self.meta else None,
                "n_verified": self.n_verified, "stats": self.stats}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> RoutingModel:
        return cls(doc["strategy"], Thresholds.from_doc(doc["thresholds"]),
                   Calibrator.from_doc(doc["calibrator"]) if doc.get("calibrator") else None,
                   MetaClassifier(**doc["meta"]) if doc.get("meta") else None, doc.get("n_verified", 0),
                   doc.get("stats", {}))


def out_of_fold_scores(strategy: str, probabilities: np.ndarray, text_lengths: np.ndarray, labels: np.ndarray,
                       seed: int = 0) -> np.ndarray:
    """Each verified item's score from a scorer fit without it."""
    scores = np.zeros(len(labels))
    folds = KFold(n_splits=min(FOLDS, len(labels)), shuffle=True, random_state=seed)
    for train, test in folds.split(probabilities):
        if strategy == RoutingStrategy.META:
            scores[test] = MetaClassifier.fit(probabilities[train], text_lengths[train], labels[train]).score(
                probabilities[test], text_lengths[test])
        else:
            scores[test] = fit_calibrator(probabilities[train], labels[train], seed).confidence(probabilities[test])
    return scores


def fit_routing_model(strategy: str, probabilities: np.ndarray, text_lengths: np.ndarray, labels: np.ndarray,
                      target: float, confidence_level: float = 0.95, bound: str = "wilson",
                      seed: int = 0, *, threshold_method: str = DEFAULT_METHOD,
                      in_sample: np.ndarray | None = None) -> RoutingModel:
    """Fit the scorer on every verified item and choose thresholds on out-of-fold scores
    (`threshold_method`: a routing.thresholds.ThresholdMethod; the pointwise scan only as a baseline).
    `in_sample` marks the verified items of a random sample of the stream: only they test the
    thresholds (routing/thresholds.py: what the guarantee assumes); all of them when not given."""
    if strategy not in (RoutingStrategy.CALIBRATED, RoutingStrategy.META):
        raise ValueError(f"strategy {strategy!r} is not fitted; choose one of calibrated, meta")
    probabilities = np.asarray(probabilities, dtype=float)
    labels = np.asarray(labels, dtype=int)
    text_lengths = np.asarray(text_lengths, dtype=float)
    predicted = probabilities.argmax(axis=1)
    correct = predicted == labels
    scores = out_of_fold_scores(strategy, probabilities, text_lengths, labels, seed)
    sample = np.ones(len(labels), dtype=bool) if in_sample is None else np.asarray(in_sample, dtype=bool)
    thresholds = choose_thresholds(scores[sample], predicted[sample], correct[sample], probabilities.shape[1],
                                   target, confidence_level, bound, method=threshold_method)
    model = RoutingModel(strategy, thresholds, n_verified=len(labels))
    if strategy == RoutingStrategy.META:
        model.meta = MetaClassifier.fit(probabilities, text_lengths, labels)
    model.calibrator = fit_calibrator(probabilities, labels, seed)
    model.stats = {"ece_raw": expected_calibration_error(probabilities.max(axis=1), correct),
                   "ece_scored": expected_calibration_error(scores, correct),
                   "model_accuracy": float(correct.mean()), "calibration_sample": int(sample.sum())}
    return model
