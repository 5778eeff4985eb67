"""Routing multi-label items per label, with a guarantee per label (issue 17).

The model gives each label L its own probability p_L (the encoder's one-vs-rest head). For each
label two decisions can be made without people:
- "L present" when p_L >= present_L;
- "L absent" when 1 - p_L >= absent_L (that is, p_L <= 1 - absent_L), and p_L < present_L.
An item whose every label is decided is auto-accepted; otherwise people see it, either whole or
only its undecided labels as yes/no questions (`route_item`).

The guarantee. With probability at least `confidence_level` over the draw of the verified items,
for EVERY label at once:
- precision: of the future items auto-marked "L present", at least `target` hold L;
- NPV: of the future items auto-marked "L absent", at least `target` lack L;
- and, with the `npv_recall` form, recall is protected too: of the future items that hold L, at
  most 1 - `target` are auto-marked "L absent".
Nothing is promised about the exact set of an item: with 7 labels each decided at 0.95 the set can
be wrong more often than 5% (the item-level baseline below is the routing that promises that).

Why the recall clause exists. NPV alone is weak for a rare label: when 3% of items hold it, "absent
for every item" has NPV 0.97, so at target 0.95 a label the model cannot see at all passes the NPV
test everywhere and every occurrence of it is silently lost. Requiring that at most 1 - target of
the label's occurrences are auto-marked absent closes that; it costs human judgements where the
model is weak, which is the point (scripts/benchmarks/multilabel_routing.py measures both forms).

How. Each of the 2 x labels decisions is a Learn-then-Test fixed sequence (thresholds.py):
"present" on the score p_L with "right" = L held, "absent" on the score 1 - p_L with "right" = L
not held, at alpha / (2 x labels) each (a union bound over a count fixed in advance, so all hold
together at confidence_level). The recall clause is a second null tested at every "absent"
candidate with the exact binomial on the label's verified occurrences (given their number they are
independent draws of p_L among items holding L): a candidate is certified only when both nulls
are rejected (intersection-union: no further alpha split). Should a label's "absent" reach into
its "present" region (a rare label's NPV passes everywhere), the laxest certified "absent"
threshold that stays below "present" is used: fixed-sequence testing controls the family-wise
error, so every certified candidate holds, not only the last (thresholds.fixed_sequence_walk).

Calibration. Thresholds are chosen on the head's out-of-fold probabilities; a per-label
calibrator (calibration.fit_calibrator on the two-column [1 - p_L, p_L]) is monotone, so it moves
no per-label decision and is not needed for them. It matters where labels are combined: the
item-level confidence, the product over labels of the calibrated max(p_L, 1 - p_L).

Assumptions are those of thresholds.py: verified items a random sample of the stream (or weighted),
a candidate grid that looks at scores and never at labels, and scores as the router will apply
them. The last one bites here: thresholds chosen on out-of-fold probabilities and applied to a
head refit on every verified item (sharper, so "p <= absent" reaches further into a label's
occurrences) met the per-label target in only 14 of 20 GoEmotions runs (Ekman, target 0.90).
Score the stream with the same fold heads the thresholds were chosen on
(scripts/benchmarks/multilabel_routing.py), or choose thresholds on a sample the applied head
never learned from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from labelstream.routing.calibration import Calibrator, fit_calibrator
from labelstream.routing.thresholds import (
    NEVER,
    ClassThreshold,
    binomial_p_value,
    fixed_sequence_threshold,
    fixed_sequence_walk,
)

PRESENT, ABSENT, UNCERTAIN = 1, 0, -1


class AbsentGuarantee(StrEnum):
    NPV = "npv"                # auto "absent" is right at least `target` of the time
    NPV_RECALL = "npv_recall"  # and at most 1 - target of a label's occurrences are auto-marked absent


DEFAULT_ABSENT_GUARANTEE = AbsentGuarantee.NPV_RECALL


@dataclass
class LabelThresholds:
    present: ClassThreshold = field(default_factory=lambda: ClassThreshold(NEVER))  # on p_L
    absent: ClassThreshold = field(default_factory=lambda: ClassThreshold(NEVER))   # on 1 - p_L
    occurrences: int = 0       # verified items holding the label
    missed: int = 0            # of them, auto-marked absent by the chosen threshold (recall clause)


@dataclass
class MultiLabelThresholds:
    labels: list[LabelThresholds]
    target: float = 0.95
    confidence_level: float = 0.95
    absent_guarantee: str = DEFAULT_ABSENT_GUARANTEE.value

    @property
    def sequence_alpha(self) -> float:
        """The level of each of the 2 x labels fixed-sequence tests (a union bound)."""
        return (1 - self.confidence_level) / (2 * max(1, len(self.labels)))

    def to_doc(self) -> dict[str, Any]:
        def threshold(t: ClassThreshold) -> dict[str, Any]:
            return {"threshold": None if t.threshold == NEVER else t.threshold, "accepted": t.accepted,
                    "correct": t.correct, "lower_bound": t.lower_bound}

        return {"target": self.target, "confidence_level": self.confidence_level,
                "absent_guarantee": self.absent_guarantee,
                "labels": [{"present": threshold(t.present), "absent": threshold(t.absent),
                            "occurrences": t.occurrences, "missed": t.missed} for t in self.labels]}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> MultiLabelThresholds:
        def threshold(d: dict[str, Any]) -> ClassThreshold:
            return ClassThreshold(NEVER if d["threshold"] is None else d["threshold"], d["accepted"], d["correct"],
                                  d["lower_bound"])

        return cls([LabelThresholds(threshold(t["present"]), threshold(t["absent"]), t["occurrences"], t["missed"])
                    for t in doc["labels"]], doc["target"], doc["confidence_level"], doc["absent_guarantee"])


def _absent_threshold(probability: np.ndarray, held: np.ndarray, present: float, target: float, alpha: float,
                      guarantee: AbsentGuarantee) -> ClassThreshold:
    """The laxest certified "absent" threshold (on 1 - p) whose items all stay below `present`."""
    occurrence_scores = np.sort(1.0 - probability[held])
    occurrences = len(occurrence_scores)

    def recall_p_values(thresholds: np.ndarray) -> np.ndarray:
        # H0: more than 1 - target of the label's occurrences score at or above the threshold, i.e.
        # "not auto-marked absent" happens to fewer than `target` of them.
        if occurrences == 0:
            return np.ones(len(thresholds))  # no occurrence seen: nothing shows the label is not missed
        missed = occurrences - np.searchsorted(occurrence_scores, thresholds, side="left")
        return binomial_p_value(occurrences - missed, occurrences, target)

    walk = fixed_sequence_walk(1.0 - probability, ~held, target, alpha,
                               also_required=recall_p_values if guarantee == AbsentGuarantee.NPV_RECALL else None)
    # Items auto-marked absent have p <= 1 - threshold; keep them strictly below "present".
    below_present = [t for t in walk if 1.0 - t.threshold < present]
    return below_present[-1] if below_present else ClassThreshold(NEVER)


def choose_label_thresholds(probabilities: np.ndarray, targets: np.ndarray, target: float,
                            confidence_level: float = 0.95,
                            absent_guarantee: str = DEFAULT_ABSENT_GUARANTEE) -> MultiLabelThresholds:
    """Per-label "present" and "absent" thresholds with the guarantee of the module docstring, from
    verified items' out-of-fold probabilities (n, labels) and their multi-hot labels."""
    probabilities = np.atleast_2d(np.asarray(probabilities, dtype=float))
    targets = np.atleast_2d(np.asarray(targets)).astype(bool)
    guarantee = AbsentGuarantee(absent_guarantee)
    chosen = MultiLabelThresholds([], target, confidence_level, guarantee.value)
    alpha = (1 - confidence_level) / (2 * probabilities.shape[1])
    for label in range(probabilities.shape[1]):
        p, held = probabilities[:, label], targets[:, label]
        present = fixed_sequence_threshold(p, held, target, alpha)
        absent = _absent_threshold(p, held, present.threshold, target, alpha, guarantee)
        missed = int(np.sum(1.0 - p[held] >= absent.threshold))
        chosen.labels.append(LabelThresholds(present, absent, int(held.sum()), missed))
    return chosen


def decide_labels(probabilities: np.ndarray, thresholds: MultiLabelThresholds) -> np.ndarray:
    """Per item and label: PRESENT (1), ABSENT (0) or UNCERTAIN (-1), shape (n, labels)."""
    probabilities = np.atleast_2d(np.asarray(probabilities, dtype=float))
    present = np.array([t.present.threshold for t in thresholds.labels])
    absent = np.array([t.absent.threshold for t in thresholds.labels])
    # "Present" first: the thresholds are chosen so the two never overlap, and should rounding
    # make them meet, the precision-certified decision wins.
    return np.where(probabilities >= present, PRESENT,
                    np.where(1.0 - probabilities >= absent, ABSENT, UNCERTAIN)).astype(np.int8)


@dataclass
class ItemRoute:
    auto_accept: bool          # every label decided: the label set is `present`
    present: list[int]         # labels auto-marked present
    uncertain: list[int]       # labels people must answer (yes/no each), empty when auto-accepted


def route_item(probabilities: np.ndarray, thresholds: MultiLabelThresholds) -> ItemRoute:
    """One item's routing: auto-accept with its label set, or the labels people must decide."""
    decisions = decide_labels(np.asarray(probabilities, dtype=float)[None, :], thresholds)[0]
    uncertain = [int(i) for i in np.flatnonzero(decisions == UNCERTAIN)]
    return ItemRoute(not uncertain, [int(i) for i in np.flatnonzero(decisions == PRESENT)], uncertain)


def fit_label_calibrators(probabilities: np.ndarray, targets: np.ndarray, seed: int = 0) -> list[Calibrator]:
    """One calibrator per label: temperature scaling or isotonic (per side of 0.5), whichever has
    the lower held-out log loss, on the binary problem [1 - p_L, p_L] -> L held."""
    probabilities = np.atleast_2d(np.asarray(probabilities, dtype=float))
    targets = np.atleast_2d(np.asarray(targets)).astype(int)
    return [fit_calibrator(np.column_stack([1 - probabilities[:, k], probabilities[:, k]]), targets[:, k], seed)
            for k in range(probabilities.shape[1])]


def calibrated_probabilities(probabilities: np.ndarray, calibrators: list[Calibrator]) -> np.ndarray:
    """P(label held) per item and label after each label's calibrator."""
    probabilities = np.atleast_2d(np.asarray(probabilities, dtype=float))
    out = np.empty_like(probabilities)
    for k, calibrator in enumerate(calibrators):
        two = np.column_stack([1 - probabilities[:, k], probabilities[:, k]])
        confidence = calibrator.confidence(two)  # of the more likely side
        out[:, k] = np.where(two.argmax(axis=1) == 1, confidence, 1 - confidence)
    return out


def item_confidence(calibrated: np.ndarray) -> np.ndarray:
    """Item-level confidence that the predicted set (labels with p >= 0.5) is exactly right,
    treating labels as independent: the product of max(p_L, 1 - p_L)."""
    calibrated = np.atleast_2d(np.asarray(calibrated, dtype=float))
    return np.prod(np.maximum(calibrated, 1 - calibrated), axis=1)


def choose_item_threshold(scores: np.ndarray, exact: np.ndarray, target: float,
                          confidence_level: float = 0.95) -> ClassThreshold:
    """The baseline: one fixed-sequence threshold on an item-level score so that the exact-set
    accuracy of auto-accepted items reaches `target` with probability `confidence_level`."""
    return fixed_sequence_threshold(np.asarray(scores, dtype=float), np.asarray(exact, dtype=bool), target,
                                    1 - confidence_level)
