"""Routing models in the store: verified items in, a fitted routing model per project and
model version out, versioned so that every router replica picks up a refit."""

from __future__ import annotations

import threading

import numpy as np
from cachetools import TTLCache
from pymongo.errors import DuplicateKeyError

from labelstream.common.projects import RoutingStrategy
from labelstream.common.store import Store, item_key
from labelstream.common.telemetry import now_ms
from labelstream.routing.scoring import RoutingModel, fit_routing_model, item_context
from labelstream.v1 import events_pb2

CACHE_SECONDS = 2.0


def json_safe(value):
    """NaN is not portable across MongoDB implementations: store it as null."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def model_key(project_id: str, model_name: str, model_version: str) -> str:
    return f"{project_id}|{model_name}/{model_version}"


def fit_on_verified(spec: events_pb2.ProjectSpec, verified: list[dict], target: float) -> RoutingModel:
    """The routing model of a project's verified records (add_verified): the scorer learns from
    all of them, the thresholds are tested on its calibration sample alone (routing/thresholds.py)."""
    probabilities = np.array([v["probabilities"] for v in verified], dtype=float)
    labels = np.array([v["label_index"] for v in verified])
    context = item_context([v["text_length"] for v in verified], [v.get("models_agree", 1.0) for v in verified])
    return fit_routing_model(spec.routing_strategy, probabilities, context, labels, target, spec.confidence_level,
                             spec.accuracy_bound, in_sample=np.array([v.get("calibration_sample", True)
                                                                      for v in verified], dtype=bool))


class RoutingModels:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: TTLCache[str, tuple[RoutingModel | None, int]] = TTLCache(maxsize=4096, ttl=CACHE_SECONDS)
        self._lock = threading.Lock()

    def current(self, project_id: str, model_name: str, model_version: str) -> tuple[RoutingModel | None, int]:
        key = model_key(project_id, model_name, model_version)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        doc = self.store.db.routing_models.find_one({"_id": key})
        model, version = (RoutingModel.from_doc(doc["model"]), doc["version"]) if doc else (None, 0)
        with self._lock:
            self._cache[key] = (model, version)
        return model, version

    def add_verified(self, project_id: str, item_id: str, label: str) -> dict | None:
        """Record a verified label beside the model's prediction for that item; returns the
        verified record, or None when the router never saw the item (or saw it already)."""
        decision = self.store.db.decisions.find_one({"_id": item_key(project_id, item_id)})
        if decision is None or "probabilities" not in decision or label not in decision["labels"]:
            return None
        doc = {"_id": item_key(project_id, item_id), "project_id": project_id, "item_id": item_id,
               "model": f"{decision['model_name']}/{decision.get('head_version') or decision['model_version']}",
               "probabilities": decision["probabilities"], "label_index": decision["labels"].index(label),
               "text_length": decision.get("text_length", 0), "models_agree": decision.get("models_agree", 1.0),
               # decisions stored before the calibration sample existed: every verified item tested
               "calibration_sample": decision.get("in_calibration_sample", True), "at_ms": now_ms()}
        try:
            self.store.db.verified.insert_one(doc)
        except DuplicateKeyError:
            return None
        return doc

    def target_accuracy(self, spec: events_pb2.ProjectSpec) -> float:
        """The project's target, raised while the monitor reports low model accuracy."""
        override = self.store.db.routing_overrides.find_one({"_id": spec.project_id})
        return max(spec.target_accuracy, override["target_accuracy"]) if override else spec.target_accuracy

    def tighten(self, spec: events_pb2.ProjectSpec, step: float = 0.02, ceiling: float = 0.995) -> float:
        """Low model accuracy: raise the target (so thresholds rise) and recalibrate every model now."""
        target = min(ceiling, self.target_accuracy(spec) + step)
        self.store.db.routing_overrides.replace_one(
            {"_id": spec.project_id}, {"_id": spec.project_id, "target_accuracy": target, "at_ms": now_ms()},
            upsert=True)
        for model in {v["model"] for v in self.store.db.verified.find({"project_id": spec.project_id}, {"model": 1})}:
            self.refit_if_due(spec, model, force=True)
        return target

    def refit_if_due(self, spec: events_pb2.ProjectSpec, model: str, force: bool = False) -> int:
        """Refit when enough new verified items arrived (or now, when forced); returns the new
        version (0: no refit)."""
        if spec.routing_strategy == RoutingStrategy.THRESHOLD:
            return 0
        verified = list(self.store.db.verified.find({"project_id": spec.project_id, "model": model}))
        key = f"{spec.project_id}|{model}"
        current = self.store.db.routing_models.find_one({"_id": key})
        fitted_on = current["model"]["n_verified"] if current else 0
        if len(verified) < spec.min_verified or (
                not force and len(verified) - fitted_on < max(1, spec.refit_every)):
            return 0
        fitted = fit_on_verified(spec, verified, self.target_accuracy(spec))
        version = (current["version"] if current else 0) + 1
        self.store.db.routing_models.replace_one({"_id": key}, {
            "_id": key, "project_id": spec.project_id, "version": version, "model": json_safe(fitted.to_doc()),
            "fitted_at_ms": now_ms()}, upsert=True)
        with self._lock:
            self._cache.pop(key, None)
        return version
