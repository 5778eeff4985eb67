"""Per-class thresholds that provably reach a target accuracy on auto-accepted items.

For each predicted class, verified items are sorted by score; the threshold is the lowest
score at which a lower confidence bound (Wilson or Clopper-Pearson) on the accuracy of the
items at or above it still reaches the target. A class whose bound never reaches the target
gets no threshold: its items always go to people.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import beta, norm

from labelstream.common.projects import AccuracyBound

NEVER = math.inf


def wilson_lower_bound(successes: int, n: int, confidence_level: float) -> float:
    if n == 0:
        return 0.0
    z = float(norm.ppf(confidence_level))  # one-sided
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def clopper_pearson_lower_bound(successes: int, n: int, confidence_level: float) -> float:
    if successes == 0:
        return 0.0
    return float(beta.ppf(1 - confidence_level, successes, n - successes + 1))


BOUNDS = {AccuracyBound.WILSON: wilson_lower_bound, AccuracyBound.CLOPPER_PEARSON: clopper_pearson_lower_bound}


@dataclass
class ClassThreshold:
    threshold: float          # NEVER: this class is never auto-accepted
    accepted: int = 0         # verified items at or above the threshold
    correct: int = 0
    lower_bound: float = 0.0


@dataclass
class Thresholds:
    per_class: dict[int, ClassThreshold] = field(default_factory=dict)
    target: float = 0.95
    confidence_level: float = 0.95
    bound: str = "wilson"

    def threshold(self, cls: int) -> ClassThreshold:
        return self.per_class.get(cls, ClassThreshold(NEVER))

    def accepts(self, cls: int, score: float) -> bool:
        return score >= self.threshold(cls).threshold

    def to_doc(self) -> dict[str, Any]:
        return {"target": self.target, "confidence_level": self.confidence_level, "bound": self.bound,
                "per_class": {str(k): {"threshold": None if v.threshold == NEVER else v.threshold,
                                       "accepted": v.accepted, "correct": v.correct, "lower_bound": v.lower_bound}
                              for k, v in self.per_class.items()}}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Thresholds:
        per_class = {int(k): ClassThreshold(NEVER if v["threshold"] is None else v["threshold"], v["accepted"],
                                            v["correct"], v["lower_bound"]) for k, v in doc["per_class"].items()}
        return cls(per_class, doc["target"], doc["confidence_level"], doc["bound"])


def choose_thresholds(scores: np.ndarray, predicted: np.ndarray, correct: np.ndarray, n_classes: int,
                      target: float, confidence_level: float = 0.95, bound: str = "wilson",
                      min_accepted: int = 10) -> Thresholds:
    """Per-class thresholds whose bounds hold together at `confidence_level`: each class's bound
    is taken at 1 - (1 - confidence_level) / n_classes (a union bound over the classes)."""
    lower = BOUNDS[bound]
    per_class_level = 1.0 - (1.0 - confidence_level) / n_classes
    chosen = Thresholds(target=target, confidence_level=confidence_level, bound=bound)
    for cls in range(n_classes):
        mask = predicted == cls
        order = np.argsort(-scores[mask], kind="stable")
        s, y = scores[mask][order], correct[mask][order].astype(int)
        hits = np.cumsum(y)
        best = ClassThreshold(NEVER)
        for i in range(min_accepted - 1, len(s)):
            if i + 1 < len(s) and s[i + 1] == s[i]:
                continue  # a threshold accepts every item with an equal score
            bound_value = lower(int(hits[i]), i + 1, per_class_level)
            if bound_value >= target:
                best = ClassThreshold(float(s[i]), i + 1, int(hits[i]), bound_value)
        chosen.per_class[cls] = best
    return chosen
