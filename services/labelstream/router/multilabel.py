"""Routing a multi_label project's items label by label (labelstream.routing.multilabel).

Each label gets two decisions the model may take alone: "present" (p_L at or above its present
threshold) and "absent" (1 - p_L at or above its absent threshold). An item is auto-accepted when
every label is decided; its final label is then the set of the labels decided present. Otherwise
people see it.

People see the whole item, not only its undecided labels as yes/no questions. The per-label
questions are cheaper in judgements (scripts/benchmarks/multilabel_routing.py counts one unit per
label asked), but everything after the router takes whole sets: the annotator page shows a set of
checkboxes, gold and the set fraud signals (always none, always all, always the same set) judge
whole answers, and the aggregator's per-label Dawid-Skene fits read each answer as a full row of
yes/no on every label (labelstream.crowd.multilabel). A partial answer would need its own kind of
task, answer and worker model through all three; until then the whole item keeps one kind of
answer, and the model's confident labels are not lost: they travel as the task's model_label.

Thresholds by routing strategy:
- "threshold": one fixed bar for every label, the project's auto_accept_threshold, on p_L for
  "present" and on 1 - p_L for "absent" (no guarantee: raw scores, as for single-label projects).
- "calibrated" and "meta": per-label thresholds chosen on verified items with the per-label
  guarantee of routing/multilabel.py (precision, NPV and the recall clause, at target_accuracy
  with probability confidence_level for every label at once); nothing is auto-accepted before
  min_verified items are verified. "meta" has no multi-label meta-classifier: it routes as
  "calibrated" (a per-label calibrator is monotone and moves no per-label decision).
Verified items keep the probabilities the router saw when it routed them, keyed by the head
version that gave them, so thresholds are chosen on the scores they are applied to.
"""

from __future__ import annotations

import threading

import numpy as np
from cachetools import TTLCache
from pymongo.errors import DuplicateKeyError

from labelstream.common.projects import (
    RoutingStrategy,
    label_set_key,
    parse_label_set,
)
from labelstream.common.store import Store, item_key
from labelstream.common.telemetry import now_ms
from labelstream.common.topics import SCHEMA_VERSION
from labelstream.crowd.multilabel import model_set
from labelstream.router.budget import Budget
from labelstream.router.models import json_safe
from labelstream.router.policy import in_exploration_draw, settle
from labelstream.routing.multilabel import (
    LabelThresholds,
    MultiLabelThresholds,
    choose_label_thresholds,
    item_confidence,
    route_item,
)
from labelstream.routing.thresholds import NEVER, ClassThreshold
from labelstream.v1 import events_pb2

CACHE_SECONDS = 2.0
KIND = "multi_label"  # marks this module's documents in the router's shared collections


def fixed_thresholds(spec: events_pb2.ProjectSpec) -> MultiLabelThresholds:
    """The "threshold" strategy: the project's auto_accept_threshold for every label, both ways."""
    bar = spec.auto_accept_threshold
    return MultiLabelThresholds([LabelThresholds(ClassThreshold(bar), ClassThreshold(bar)) for _ in spec.labels],
                                target=bar, confidence_level=0.0)


def route(prediction: events_pb2.Prediction, spec: events_pb2.ProjectSpec,
          thresholds: MultiLabelThresholds | None, n_verified: int = 0, routing_version: int = 0,
          budget: Budget | None = None) -> events_pb2.RouteDecision:
    probabilities = np.array(prediction.probabilities, dtype=float)
    if len(probabilities) != len(spec.labels) or list(prediction.labels) != list(spec.labels):
        raise ValueError("a multi_label prediction must carry one probability per project label, in its order")
    if not np.all((probabilities >= 0.0) & (probabilities <= 1.0)):
        raise ValueError("a multi_label prediction's probabilities must each lie in [0, 1]")
    confidence = float(item_confidence(probabilities)[0])
    decision = events_pb2.RouteDecision(
        schema_version=SCHEMA_VERSION, project_id=prediction.project_id, item_id=prediction.item_id,
        label=label_set_key(model_set(probabilities, spec)), confidence=confidence, score=confidence,
        model_name=prediction.model_name, model_version=prediction.model_version,
        ingested_at_ms=prediction.ingested_at_ms, strategy=spec.routing_strategy,
        head_version=prediction.head_version or prediction.model_version, target_accuracy=spec.target_accuracy,
        threshold=spec.auto_accept_threshold, routing_model_version=routing_version, verified_items=n_verified)
    auto = False
    if spec.routing_strategy != RoutingStrategy.THRESHOLD and thresholds is None:
        decision.reason = f"cold start: {n_verified} of {spec.min_verified} verified items needed before " \
                          "auto-acceptance"
    else:
        chosen = thresholds if spec.routing_strategy != RoutingStrategy.THRESHOLD else fixed_thresholds(spec)
        item = route_item(probabilities, chosen)
        present = [spec.labels[j] for j in item.present]
        if item.uncertain:
            decision.reason = (f"labels {[spec.labels[j] for j in item.uncertain]} are not decided by the model "
                               "alone: people label the whole item")
        elif not present and not spec.none_label:
            decision.reason = "the model finds no label, but every item of this project holds one: people label it"
        elif spec.max_labels_per_item and len(present) > spec.max_labels_per_item:
            decision.reason = (f"the model finds {len(present)} labels, over the project's "
                               f"{spec.max_labels_per_item}: people label it")
        else:
            auto = True
            decision.label = label_set_key(present)
            decision.reason = f"every label decided by the model: {present or [spec.none_label]}"
        if spec.routing_strategy != RoutingStrategy.THRESHOLD:
            decision.reason += (f" (per-label thresholds on {n_verified} verified items, target "
                                f"{chosen.target:.3f} at {chosen.confidence_level:.0%} confidence)")
    # Exploration, the calibration sample and the budget as on single-label items (router/policy.py);
    # no score is accepted before the first fit or while some label has no threshold either way.
    drawn = in_exploration_draw(prediction, spec)
    decision.calibration_sample = drawn or (spec.routing_strategy != RoutingStrategy.THRESHOLD and (
        thresholds is None or any(t.present.threshold == NEVER and t.absent.threshold == NEVER
                                  for t in thresholds.labels)))
    # the empty set stands alone only where the project names it
    return settle(decision, spec, auto, drawn, budget, overflow_may_accept=decision.label != "[]" or
                  bool(spec.none_label))


def model_key(project_id: str, model: str) -> str:
    return f"{project_id}|{model}"


class MultiLabelRouting:
    """Per-label thresholds per project and head version, in the router's `routing_models`, fit on
    the router's `verified` items (each holding its multi-hot verified set)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: TTLCache[str, tuple[MultiLabelThresholds | None, int, int]] = TTLCache(
            maxsize=4096, ttl=CACHE_SECONDS)
        self._lock = threading.Lock()

    def current(self, project_id: str, model_name: str, head_version: str
                ) -> tuple[MultiLabelThresholds | None, int, int]:
        """(thresholds or None before the first fit, version, verified items they were fit on)."""
        key = model_key(project_id, f"{model_name}/{head_version}")
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        doc = self.store.db.routing_models.find_one({"_id": key, "kind": KIND})
        found = ((MultiLabelThresholds.from_doc(doc["thresholds"]), doc["version"], doc["n_verified"])
                 if doc else (None, 0, self.store.db.verified.count_documents(
                     {"project_id": project_id, "model": f"{model_name}/{head_version}"})))
        with self._lock:
            self._cache[key] = found
        return found

    def add_verified(self, spec: events_pb2.ProjectSpec, item_id: str, label: str) -> dict | None:
        """A verified set (its key) beside the probabilities the item was routed on; None when the
        router never routed the item, the set is not one of the project's, or it is known already."""
        labels = parse_label_set(label)
        decision = self.store.db.decisions.find_one({"_id": item_key(spec.project_id, item_id)})
        if labels is None or decision is None or "probabilities" not in decision:
            return None
        if not set(labels) <= set(decision["labels"]):
            return None
        doc = {"_id": item_key(spec.project_id, item_id), "project_id": spec.project_id, "item_id": item_id,
               "kind": KIND,
               "model": f"{decision['model_name']}/{decision.get('head_version') or decision['model_version']}",
               "probabilities": decision["probabilities"],
               "targets": [int(name in labels) for name in decision["labels"]],
               "calibration_sample": decision.get("in_calibration_sample", True), "at_ms": now_ms()}
        try:
            self.store.db.verified.insert_one(doc)
        except DuplicateKeyError:
            return None
        return doc

    def refit_if_due(self, spec: events_pb2.ProjectSpec, model: str, target: float) -> int:
        """Choose per-label thresholds again once min_verified items exist and refit_every new ones
        arrived since the last fit; returns the new version (0: no refit)."""
        if spec.routing_strategy == RoutingStrategy.THRESHOLD:
            return 0
        verified = list(self.store.db.verified.find({"project_id": spec.project_id, "model": model, "kind": KIND}))
        key = model_key(spec.project_id, model)
        current = self.store.db.routing_models.find_one({"_id": key})
        fitted_on = current["n_verified"] if current else 0
        if len(verified) < spec.min_verified or len(verified) - fitted_on < max(1, spec.refit_every):
            return 0
        # only the calibration sample tests thresholds (router/policy.py: in_exploration_draw)
        sample = [v for v in verified if v.get("calibration_sample", True)]
        chosen = choose_label_thresholds(np.array([v["probabilities"] for v in sample], dtype=float).reshape(
                                             len(sample), len(spec.labels)),
                                         np.array([v["targets"] for v in sample], dtype=bool).reshape(
                                             len(sample), len(spec.labels)), target, spec.confidence_level)
        doc = json_safe(chosen.to_doc())
        version = (current["version"] if current else 0) + 1
        self.store.db.routing_models.replace_one({"_id": key}, {
            "_id": key, "kind": KIND, "project_id": spec.project_id, "version": version, "thresholds": doc,
            "n_verified": len(verified), "fitted_at_ms": now_ms()}, upsert=True)
        with self._lock:
            self._cache.pop(key, None)
        return version
