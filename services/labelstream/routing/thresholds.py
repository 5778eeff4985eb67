"""Score thresholds whose auto-accepted items reach a target accuracy, with a guarantee that holds.

The guarantee. With probability at least `confidence_level` (over the draw of the verified items),
the accuracy of the future items the chosen threshold accepts is at least `target`. "Accuracy of
the items at or above threshold lam" means A(lam) = P(model right | score >= lam) over the stream.

How (Learn-then-Test with fixed-sequence testing, the default `fixed_sequence_pooled`):
1. Candidate thresholds lam_1 > lam_2 > ... are placed at the scores of the verified items, most
   strict first: the first at the 5% most confident (at most 400 items), then one every 1% of
   the items (`candidate_sizes`). The set a threshold accepts grows as it falls, so the order is
   the natural one.
2. Each candidate j is a null hypothesis H_j: A(lam_j) < target, tested with the exact binomial
   p-value P(Binomial(n_j, target) >= correct_j) of the n_j verified items at or above lam_j
   (rejecting exactly when the Clopper-Pearson lower bound at 1 - alpha reaches the target).
   Given n_j, those items' correctness values are independent draws with mean A(lam_j), so the
   p-value is valid; it is exact, where a Wilson bound is only approximate and its one-sided
   coverage falls below nominal close to accuracy 1, where thresholds live.
3. Walk down the sequence rejecting H_1, H_2, ... and stop at the first p-value above alpha; the
   threshold chosen is the last rejected one (none rejected: the items always go to people).

Why this is sound while keeping the largest passing prefix is not. The chosen threshold is
wrong (accuracy below target) only if some true null hypothesis was rejected. Let j* be the first
true null in the fixed order: the walk can reach any later hypothesis only by rejecting H_j*
first, so P(a wrong threshold) <= P(reject H_j*) <= alpha. No correction for the number of
candidates is needed and no monotone accuracy curve is assumed. Keeping every prefix whose
pointwise bound passes (`scan_thresholds_pointwise`, the former rule) instead accepts as soon as
ANY of thousands of tests passes; where the true curve hovers near the target one of them passes
far more often than alpha. On 2,000 such synthetic streams (tests/test_threshold_guarantee.py)
the accepted accuracy fell below the target in 1.2% of runs with this rule and in 12.3% with the
scan, for an allowed 5%.

Pooled or per class. `fixed_sequence_pooled` runs one sequence on the score across all predicted
classes, at the full alpha and with all verified items behind every test; it guarantees the
accuracy of everything auto-accepted, not of each class (a weak class can ride on strong ones if
its scores are high; scores calibrated per predicted class, as isotonic calibration is, keep the
classes comparable). Choosing the items most likely right regardless of class is also what
accepts the most for a given accuracy when the score is calibrated.
`fixed_sequence_per_class` runs one sequence per predicted class at alpha / (classes with verified
items) (a union bound): every class's auto-accepted accuracy reaches the target together, at the
price of splitting both alpha and the items. scripts/threshold_power.py measures the price.

What the guarantee assumes.
- Verified and future items are exchangeable: the verified items must be a random sample of the
  stream (the cold start, and the `explore_fraction` draws afterwards). Items sent to people
  because their score was low are a sample chosen by score: above the current threshold only
  the random ones appear, so the router keeps to random items: the thresholds are tested only on
  verified items of its calibration sample (router/policy.py: drawn by the item's id, or routed
  while no score could be accepted), while the calibrator is fit on every verified item (its fit
  moves efficiency, not validity: out-of-fold scores never saw the item they score). Testing on
  every verified item was not conservative in practice: once the most confident items are
  auto-accepted, the verified items above the threshold are only the explored few beside many
  low-scored ones, the first test fails, and routing falls back to all-human until the next refit
  (the demo's waves went 6%, 0%, 34% auto that way).
- The candidate grid depends on the verified scores but never on their correctness. Strictly,
  Learn-then-Test assumes a grid fixed in advance; a grid at score ranks is the common practice,
  and the soundness test measures the error rate it gives on streams built to be at the edge.
- The scores are the ones the router will apply. scoring.py tests out-of-fold scores and then
  applies the scorer refit on every verified item: a small mismatch, the price of not setting
  aside a second sample for the thresholds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from scipy.stats import beta, binom, norm

from labelstream.common.projects import AccuracyBound

NEVER = math.inf


class ThresholdMethod(StrEnum):
    FIXED_SEQUENCE_POOLED = "fixed_sequence_pooled"        # one sound threshold for all classes (default)
    FIXED_SEQUENCE_PER_CLASS = "fixed_sequence_per_class"  # one sound threshold per class, alpha split
    POINTWISE_SCAN = "pointwise_scan"                      # the former rule: UNSOUND, a baseline only


DEFAULT_METHOD = ThresholdMethod.FIXED_SEQUENCE_POOLED

# The candidate grid (measured in scripts/threshold_power.py; reports/routing/threshold_power.json).
# The sequence starts at the 5% most confident items, at most 400 of them, and never below the
# smallest count that can pass at all. Starting at the very top loses most of the power: a test
# on the top ~60 items passes only if every one is right, and the walk ends at its first
# non-rejection, so one early error ends it (on the SST-2-shaped curve with 10,000 verified items
# the top start accepts about half as much). 400 items three points above the target already
# pass with ~90% probability, so the cap keeps thresholds of large projects with few acceptable
# items reachable. Thresholds stricter than the start are never chosen; with a falling accuracy
# curve they are never needed.
FIRST_STEP_FRACTION = 0.05
FIRST_STEP_MAX_ITEMS = 400
# Then a candidate every 1% of the items: 0.5% and 2% accept the same (within 1-3%), 5% loses up
# to ~10%, and one candidate per item gains nothing.
STEP_FRACTION = 0.01
# The first step passes with this probability when its items are halfway between the target and 1.
FIRST_STEP_POWER = 0.8


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


def _wilson_lower_bounds(successes: np.ndarray, n: np.ndarray, confidence_level: float) -> np.ndarray:
    z = float(norm.ppf(confidence_level))
    n = n.astype(float)
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def _clopper_pearson_lower_bounds(successes: np.ndarray, n: np.ndarray, confidence_level: float) -> np.ndarray:
    bounds = beta.ppf(1 - confidence_level, np.maximum(successes, 1), n - successes + 1)
    return np.where(successes > 0, bounds, 0.0)


_VECTOR_BOUNDS = {AccuracyBound.WILSON: _wilson_lower_bounds,
                  AccuracyBound.CLOPPER_PEARSON: _clopper_pearson_lower_bounds}


def binomial_p_value(correct: np.ndarray | int, n: np.ndarray | int, target: float) -> np.ndarray:
    """Exact one-sided p-value of H0 "accuracy < target" given `correct` right of `n`:
    P(Binomial(n, target) >= correct). At most alpha exactly when the Clopper-Pearson lower bound
    at level 1 - alpha reaches the target."""
    return binom.sf(np.asarray(correct) - 1, np.asarray(n), target)


def smallest_passing_count(target: float, alpha: float) -> int:
    """The fewest items that can reject "accuracy < target" at `alpha` (all of them right)."""
    return max(1, math.ceil(math.log(alpha) / math.log(target) - 1e-12))


@dataclass
class ClassThreshold:
    threshold: float          # NEVER: this class is never auto-accepted
    accepted: int = 0         # verified items at or above the threshold (pooled: of every class)
    correct: int = 0
    lower_bound: float = 0.0  # the lower confidence bound on their accuracy that reached the target


@dataclass
class Thresholds:
    per_class: dict[int, ClassThreshold] = field(default_factory=dict)
    target: float = 0.95
    confidence_level: float = 0.95
    bound: str = "clopper_pearson"
    # How the thresholds were chosen (ThresholdMethod). With the pooled method every class holds
    # the same threshold and the pooled counts and bound.
    method: str = DEFAULT_METHOD.value

    def threshold(self, cls: int) -> ClassThreshold:
        return self.per_class.get(cls, ClassThreshold(NEVER))

    def accepts(self, cls: int, score: float) -> bool:
        return score >= self.threshold(cls).threshold

    def accepts_nothing(self, n_classes: int) -> bool:
        """No class of `n_classes` has a threshold: every item goes to people, whatever its score."""
        return all(self.threshold(cls).threshold == NEVER for cls in range(n_classes))

    def to_doc(self) -> dict[str, Any]:
        return {"target": self.target, "confidence_level": self.confidence_level, "bound": self.bound,
                "method": self.method,
                "per_class": {str(k): {"threshold": None if v.threshold == NEVER else v.threshold,
                                       "accepted": v.accepted, "correct": v.correct, "lower_bound": v.lower_bound}
                              for k, v in self.per_class.items()}}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Thresholds:
        per_class = {int(k): ClassThreshold(NEVER if v["threshold"] is None else v["threshold"], v["accepted"],
                                            v["correct"], v["lower_bound"]) for k, v in doc["per_class"].items()}
        # Documents written before the field existed were chosen by the pointwise scan.
        return cls(per_class, doc["target"], doc["confidence_level"], doc["bound"],
                   doc.get("method", ThresholdMethod.POINTWISE_SCAN.value))


@dataclass
class _Ranked:
    """One group's verified items, most confident first."""

    scores: np.ndarray
    hits: np.ndarray            # hits[i]: correct items among the first i + 1
    accepted_at: np.ndarray     # accepted_at[i]: items with a score >= scores[i] (ties included)

    @classmethod
    def of(cls, scores: np.ndarray, correct: np.ndarray) -> _Ranked:
        order = np.argsort(-scores, kind="stable")
        ranked = scores[order]
        # A threshold accepts every item with an equal score, so a candidate at rank i covers the
        # whole run of ties it belongs to.
        return cls(ranked, np.cumsum(correct[order].astype(int)), np.searchsorted(-ranked, -ranked, side="right"))


@functools.lru_cache(maxsize=256)
def powered_first_step(target: float, alpha: float, power: float = FIRST_STEP_POWER) -> int:
    """The fewest items whose test passes with probability `power` when their accuracy is halfway
    between the target and 1. Depends on the target and alpha only, never on the verified items."""
    halfway = (1 + target) / 2
    for size in range(smallest_passing_count(target, alpha), 20_000):
        needed = int(binom.isf(alpha, size, target)) + 1  # fewest correct whose p-value is <= alpha
        while needed > 0 and binom.sf(needed - 2, size, target) <= alpha:
            needed -= 1
        if binom.sf(needed - 1, size, halfway) >= power:
            return size
    return 20_000


def candidate_sizes(n_items: int, target: float, alpha: float, first_step_fraction: float = FIRST_STEP_FRACTION,
                    first_step_max_items: int = FIRST_STEP_MAX_ITEMS, step_fraction: float = STEP_FRACTION,
                    min_accepted: int = 1) -> np.ndarray:
    """Sizes of the candidate accepted sets (the k most confident items), in test order: from
    the first step down, one every `step_fraction` of the items. Depends on counts only.

    The first step is also never smaller than the powered step (at most a third of the items):
    with few verified items 5% of them is a set so small that a couple of errors fail the first
    test, and the walk ends there (a 2,500-item stream at target 0.90 auto-accepted nothing)."""
    powered = min(powered_first_step(target, alpha), n_items // 3)
    first = max(smallest_passing_count(target, alpha), min_accepted, powered,
                min(math.ceil(first_step_fraction * n_items), first_step_max_items))
    return np.arange(first, n_items + 1, max(1, math.ceil(step_fraction * n_items)))


def fixed_sequence_walk(scores: np.ndarray, correct: np.ndarray, target: float, alpha: float,
                        first_step_fraction: float = FIRST_STEP_FRACTION,
                        first_step_max_items: int = FIRST_STEP_MAX_ITEMS, step_fraction: float = STEP_FRACTION,
                        min_accepted: int = 1,
                        also_required: Callable[[np.ndarray], np.ndarray] | None = None) -> list[ClassThreshold]:
    """Every candidate threshold rejected before the walk's first non-rejection, most strict first
    (module docstring). Fixed-sequence testing controls the family-wise error: with probability at
    least 1 - alpha every one of them holds at once, so a caller may use any of them, not only the
    last (multilabel.py keeps a label's "absent" below its "present" that way).

    `also_required(thresholds)` gives, per candidate, the p-value of a second null the candidate
    must reject too (say, "too many of the label's occurrences fall at or above it"): the
    candidate's null is then "either fails", rejected only when both are, each at alpha. That is an
    intersection-union test: its level is alpha with no split."""
    scores = np.asarray(scores, dtype=float)
    if not scores.size:
        return []
    ranked = _Ranked.of(scores, np.asarray(correct))
    sizes = candidate_sizes(len(scores), target, alpha, first_step_fraction, first_step_max_items, step_fraction,
                            min_accepted)
    if not sizes.size:
        return []
    accepted = np.unique(ranked.accepted_at[sizes - 1])  # ascending: most strict first
    hits = ranked.hits[accepted - 1]
    thresholds = ranked.scores[accepted - 1]
    p_values = binomial_p_value(hits, accepted, target)
    if also_required is not None:
        p_values = np.maximum(p_values, also_required(thresholds))
    not_rejected = np.flatnonzero(p_values > alpha)
    rejected = int(not_rejected[0]) if not_rejected.size else len(accepted)
    bounds = _clopper_pearson_lower_bounds(hits[:rejected], accepted[:rejected], 1 - alpha)
    return [ClassThreshold(float(t), int(n), int(k), float(b))
            for t, n, k, b in zip(thresholds[:rejected], accepted[:rejected], hits[:rejected], bounds, strict=True)]


def fixed_sequence_threshold(scores: np.ndarray, correct: np.ndarray, target: float, alpha: float,
                             first_step_fraction: float = FIRST_STEP_FRACTION,
                             first_step_max_items: int = FIRST_STEP_MAX_ITEMS, step_fraction: float = STEP_FRACTION,
                             min_accepted: int = 1) -> ClassThreshold:
    """The last threshold of the fixed sequence (most strict first) whose null "accuracy at or
    above it < target" is rejected at `alpha` before the first non-rejection (module docstring)."""
    walk = fixed_sequence_walk(scores, correct, target, alpha, first_step_fraction, first_step_max_items,
                               step_fraction, min_accepted)
    return walk[-1] if walk else ClassThreshold(NEVER)


def scan_thresholds_pointwise(scores: np.ndarray, predicted: np.ndarray, correct: np.ndarray, n_classes: int,
                              target: float, confidence_level: float = 0.95, bound: str = "wilson",
                              min_accepted: int = 10) -> Thresholds:
    """UNSOUND; kept only as the baseline the evaluation compares against. Per class, the largest
    prefix of the score order whose pointwise lower bound (at 1 - (1 - confidence_level) /
    n_classes, a union bound over the classes) reaches the target. The bound is made for one
    threshold but thousands are searched, so when the accuracy curve hovers near the target the
    accepted accuracy falls below it far more often than 1 - confidence_level."""
    lower = _VECTOR_BOUNDS[AccuracyBound(bound)]
    per_class_level = 1.0 - (1.0 - confidence_level) / n_classes
    chosen = Thresholds(target=target, confidence_level=confidence_level, bound=bound,
                        method=ThresholdMethod.POINTWISE_SCAN.value)
    for cls in range(n_classes):
        mask = predicted == cls
        ranked = _Ranked.of(scores[mask], correct[mask])
        n = np.arange(1, len(ranked.scores) + 1)
        bounds = lower(ranked.hits, n, per_class_level)
        passing = np.nonzero((bounds >= target) & (ranked.accepted_at == n) & (n >= min_accepted))[0]
        if passing.size:
            i = int(passing[-1])
            chosen.per_class[cls] = ClassThreshold(float(ranked.scores[i]), i + 1, int(ranked.hits[i]),
                                                   float(bounds[i]))
        else:
            chosen.per_class[cls] = ClassThreshold(NEVER)
    return chosen


def choose_thresholds(scores: np.ndarray, predicted: np.ndarray, correct: np.ndarray, n_classes: int,
                      target: float, confidence_level: float = 0.95, bound: str = "wilson",
                      min_accepted: int = 10, *, method: str = DEFAULT_METHOD,
                      first_step_fraction: float = FIRST_STEP_FRACTION,
                      first_step_max_items: int = FIRST_STEP_MAX_ITEMS,
                      step_fraction: float = STEP_FRACTION) -> Thresholds:
    """Thresholds whose auto-accepted accuracy reaches `target` with probability at least
    `confidence_level` (module docstring). The fixed-sequence methods test with the exact
    binomial whatever `bound` says; `bound` is the pointwise scan's. `min_accepted` is the
    fewest verified items a threshold may rest on."""
    scores = np.asarray(scores, dtype=float)
    predicted = np.asarray(predicted)
    correct = np.asarray(correct).astype(bool)
    method = ThresholdMethod(method)
    if method == ThresholdMethod.POINTWISE_SCAN:
        return scan_thresholds_pointwise(scores, predicted, correct, n_classes, target, confidence_level, bound,
                                         min_accepted)
    alpha = 1.0 - confidence_level
    grid = {"first_step_fraction": first_step_fraction, "first_step_max_items": first_step_max_items,
            "step_fraction": step_fraction, "min_accepted": min_accepted}
    chosen = Thresholds(target=target, confidence_level=confidence_level, bound=AccuracyBound.CLOPPER_PEARSON.value,
                        method=method.value)
    if method == ThresholdMethod.FIXED_SEQUENCE_POOLED:
        pooled = fixed_sequence_threshold(scores, correct, target, alpha, **grid)
        chosen.per_class = {cls: ClassThreshold(pooled.threshold, pooled.accepted, pooled.correct,
                                                pooled.lower_bound) for cls in range(n_classes)}
        return chosen
    # Per class: a union bound over the classes that have verified items (a count that does not
    # look at correctness), so every class's accepted accuracy holds together at confidence_level.
    present = [cls for cls in range(n_classes) if np.any(predicted == cls)]
    class_alpha = alpha / max(1, len(present))
    for cls in range(n_classes):
        mask = predicted == cls
        chosen.per_class[cls] = fixed_sequence_threshold(scores[mask], correct[mask], target, class_alpha, **grid)
    return chosen
