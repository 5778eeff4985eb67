"""Per-label routing of multi-label items: the guarantee measured on synthetic streams, and the
item-level decision.

Each synthetic label has a known curve q(s) = P(label held | its probability s), s uniform, so
the TRUE precision of a "present" threshold, NPV of an "absent" one and the share of the label's
occurrences marked absent are computed exactly (no held-out noise). The curves sit a hair on the
wrong side of the target over long ranges, where a threshold rule is most easily fooled.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelstream.routing.multilabel import (
    ABSENT,
    PRESENT,
    UNCERTAIN,
    AbsentGuarantee,
    LabelThresholds,
    MultiLabelThresholds,
    calibrated_probabilities,
    choose_label_thresholds,
    decide_labels,
    fit_label_calibrators,
    item_confidence,
    route_item,
)
from labelstream.routing.thresholds import NEVER, ClassThreshold

TARGET = 0.95
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
LABELS = 3
STREAMS = 600
SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / STREAMS)
GRID = np.linspace(0.0, 1.0, 4001)


class Label:
    """A label whose items with probability s hold it with probability q(s)."""

    def __init__(self, q: np.ndarray) -> None:
        self.q = np.clip(q, 0.0, 1.0)
        step = np.diff(GRID)
        self.mass = np.concatenate([[0.0], np.cumsum((self.q[1:] + self.q[:-1]) / 2 * step)])  # int_0^s q

    def held(self, s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.random(len(s)) < np.interp(s, GRID, self.q)

    def _mass(self, s: float) -> float:
        return float(np.interp(s, GRID, self.mass))

    def precision(self, present: float) -> float:
        """Of future items with s >= present, the share holding the label (1.0: none accepted)."""
        if present >= 1.0:
            return 1.0
        return (self._mass(1.0) - self._mass(present)) / (1.0 - present)

    def npv_and_missed(self, absent: float) -> tuple[float, float]:
        """Of future items with 1 - s >= absent: the share lacking the label, and the share of the
        label's occurrences among them."""
        cut = 1.0 - absent
        if cut <= 0.0:
            return 1.0, 0.0
        return 1.0 - self._mass(cut) / cut, self._mass(cut) / self._mass(1.0)


def hovering_label(rng: np.random.Generator) -> Label:
    """Common label: "absent" region right under the NPV target, "present" region right under
    the precision target; or rare label: NPV passes everywhere and only the recall clause binds."""
    s = GRID
    if rng.random() < 0.5:
        low, high = rng.uniform(0.3, 0.45), rng.uniform(0.5, 0.65)
        q = np.where(s < low, 1 - TARGET + rng.uniform(0.0005, 0.004),
                     np.where(s < high, 0.5, TARGET - rng.uniform(0.0005, 0.004)))
    else:
        edge = rng.uniform(0.6, 0.9)
        q = np.where(s < edge, rng.uniform(0.01, 0.03), rng.uniform(0.2, 0.5))
    return Label(q)


def violations(thresholds: MultiLabelThresholds, labels: list[Label]) -> dict[str, bool]:
    """Whether any label's true precision, NPV or recall clause falls short of the target."""
    precision = npv = recall = False
    for label, chosen in zip(labels, thresholds.labels, strict=True):
        precision |= label.precision(chosen.present.threshold) < TARGET
        negative, missed = label.npv_and_missed(chosen.absent.threshold)
        npv |= negative < TARGET
        recall |= missed > 1 - TARGET
    return {"precision": precision, "npv": npv, "recall": recall}


def draw(labels: list[Label], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    probabilities = rng.random((n, len(labels)))
    return probabilities, np.column_stack([label.held(probabilities[:, k], rng) for k, label in enumerate(labels)])


def empirical_rule(probabilities: np.ndarray, held: np.ndarray) -> MultiLabelThresholds:
    """The tempting rule, for contrast: per label, the laxest thresholds whose verified precision
    and NPV (point estimates) reach the target."""
    chosen = []
    for k in range(probabilities.shape[1]):
        p, y = probabilities[:, k], held[:, k]
        order = np.argsort(-p)
        precision = np.cumsum(y[order]) / np.arange(1, len(p) + 1)
        ok = np.flatnonzero(precision >= TARGET)
        present = p[order][ok[-1]] if ok.size else NEVER
        order = np.argsort(p)
        npv = np.cumsum(~y[order]) / np.arange(1, len(p) + 1)
        ok = np.flatnonzero((npv >= TARGET) & (p[order] < present))
        absent = 1 - p[order][ok[-1]] if ok.size else NEVER
        chosen.append(LabelThresholds(ClassThreshold(present), ClassThreshold(absent)))
    return MultiLabelThresholds(chosen, TARGET, CONFIDENCE)


@pytest.fixture(scope="module")
def violation_shares() -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(20250117)
    counts: dict[str, dict[str, int]] = {name: {"precision": 0, "npv": 0, "recall": 0}
                                         for name in ("npv_recall", "npv", "empirical")}
    for _ in range(STREAMS):
        labels = [hovering_label(rng) for _ in range(LABELS)]
        probabilities, held = draw(labels, int(rng.integers(1000, 3001)), rng)
        rules = {"npv_recall": choose_label_thresholds(probabilities, held, TARGET, CONFIDENCE,
                                                       AbsentGuarantee.NPV_RECALL),
                 "npv": choose_label_thresholds(probabilities, held, TARGET, CONFIDENCE, AbsentGuarantee.NPV),
                 "empirical": empirical_rule(probabilities, held)}
        for name, thresholds in rules.items():
            for clause, violated in violations(thresholds, labels).items():
                counts[name][clause] += violated
    return {name: {clause: count / STREAMS for clause, count in clauses.items()}
            for name, clauses in counts.items()}


def test_every_label_keeps_precision_npv_and_recall_together(violation_shares):
    """A run fails if ANY of the 3 labels' 2-3 clauses fails; still at most alpha of runs do."""
    shares = violation_shares["npv_recall"]
    any_clause = max(shares.values())  # a lower bound of the union; each clause is checked too
    assert any_clause <= ALPHA + SLACK, violation_shares
    assert shares["precision"] + shares["npv"] + shares["recall"] <= ALPHA + SLACK, violation_shares


def test_the_npv_form_keeps_precision_and_npv_but_loses_rare_labels(violation_shares):
    shares = violation_shares["npv"]
    assert shares["precision"] + shares["npv"] <= ALPHA + SLACK, violation_shares
    # Without the recall clause a rare label is marked absent nearly everywhere.
    assert shares["recall"] > 0.5, violation_shares


def test_the_empirical_rule_breaks_it_on_the_same_streams(violation_shares):
    """The streams discriminate: point estimates at the target fail far more often than alpha."""
    shares = violation_shares["empirical"]
    assert shares["precision"] > 4 * ALPHA and shares["npv"] > 4 * ALPHA, violation_shares


def test_a_good_model_decides_most_labels():
    """Where each label is well separated, most items are decided; the decisions agree with the
    labels at the target or better on new items."""
    rng = np.random.default_rng(5)
    separated = [Label(np.where(GRID < 0.5, 0.005, 0.995)) for _ in range(LABELS)]
    probabilities, held = draw(separated, 3000, rng)
    thresholds = choose_label_thresholds(probabilities, held, TARGET, CONFIDENCE)
    new_probabilities, new_held = draw(separated, 3000, rng)
    decisions = decide_labels(new_probabilities, thresholds)
    assert (decisions != UNCERTAIN).mean() > 0.8
    for k in range(LABELS):
        assert new_held[decisions[:, k] == PRESENT, k].mean() >= TARGET
        assert (~new_held[decisions[:, k] == ABSENT, k]).mean() >= TARGET
    assert MultiLabelThresholds.from_doc(thresholds.to_doc()) == thresholds


def test_absent_never_reaches_into_present():
    """A rare label's NPV passes everywhere; its "absent" must stop below its "present"."""
    rng = np.random.default_rng(9)
    rare = Label(np.where(GRID < 0.8, 0.01, 0.99))
    probabilities, held = draw([rare], 4000, rng)
    chosen = choose_label_thresholds(probabilities, held, TARGET, CONFIDENCE, AbsentGuarantee.NPV).labels[0]
    assert chosen.present.threshold < NEVER and chosen.absent.threshold < NEVER
    assert 1 - chosen.absent.threshold < chosen.present.threshold


def manual(present: list[float], absent_below: list[float]) -> MultiLabelThresholds:
    """Thresholds "present when p >= present[k]", "absent when p <= absent_below[k]"."""
    return MultiLabelThresholds([LabelThresholds(ClassThreshold(h), ClassThreshold(1 - lo))
                                 for h, lo in zip(present, absent_below, strict=True)])


def test_an_item_is_auto_accepted_only_when_every_label_is_decided():
    thresholds = manual([0.9, 0.8, NEVER], [0.1, 0.2, 0.05])
    decided = route_item(np.array([0.95, 0.1, 0.01]), thresholds)
    assert decided.auto_accept and decided.present == [0] and decided.uncertain == []
    nothing = route_item(np.array([0.05, 0.1, 0.01]), thresholds)
    assert nothing.auto_accept and nothing.present == []  # every label absent is a decision too
    partly = route_item(np.array([0.95, 0.5, 0.5]), thresholds)
    assert not partly.auto_accept and partly.present == [0] and partly.uncertain == [1, 2]
    # A label that can never be auto-marked present still goes to people when it may hold.
    assert route_item(np.array([0.95, 0.9, 0.3]), thresholds).uncertain == [2]
    # Exactly at a threshold counts as decided (the tests certified ">=").
    assert route_item(np.array([0.9, 0.8, 0.05]), thresholds).auto_accept
    np.testing.assert_array_equal(decide_labels(np.array([[0.95, 0.5, 0.01]]), thresholds),
                                  [[PRESENT, UNCERTAIN, ABSENT]])


def test_no_thresholds_sends_every_label_to_people():
    thresholds = MultiLabelThresholds([LabelThresholds() for _ in range(4)])
    routed = route_item(np.array([0.999, 0.001, 0.5, 0.0]), thresholds)
    assert not routed.auto_accept and routed.uncertain == [0, 1, 2, 3]


def test_per_label_calibration_repairs_an_overconfident_label():
    """A label whose probabilities say 0.95/0.05 but holds 70%/30% of the time: calibrated
    probabilities move to the observed rates, and the item-level confidence multiplies labels."""
    rng = np.random.default_rng(2)
    sure = rng.random(4000) < 0.5
    probabilities = np.column_stack([np.where(sure, 0.95, 0.05), rng.uniform(0.0, 1.0, 4000)])
    held = np.column_stack([rng.random(4000) < np.where(sure, 0.7, 0.3), rng.random(4000) < probabilities[:, 1]])
    calibrated = calibrated_probabilities(probabilities, fit_label_calibrators(probabilities, held))
    assert abs(calibrated[sure, 0].mean() - 0.7) < 0.03 and abs(calibrated[~sure, 0].mean() - 0.3) < 0.03
    np.testing.assert_allclose(item_confidence(np.array([[0.9, 0.2], [0.5, 0.5]])), [0.72, 0.25])
