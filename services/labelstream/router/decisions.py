"""Routing decisions: each prediction routed once (the first decision wins on a replay), items
waiting for budget released most-uncertain first, and verified labels fed to the routing models."""

from __future__ import annotations

import logging
import threading

from google.protobuf import json_format
from pymongo import ASCENDING

from labelstream.common.dead_letters import InvalidMessage
from labelstream.common.producer import EventProducer, Outgoing
from labelstream.common.projects import QualityEventKind, is_multi_label
from labelstream.common.store import Store, insert_once, item_key
from labelstream.common.telemetry import (
    context_from_traceparent,
    log_fields,
    now_ms,
    trace_headers,
    traceparent,
    tracer,
)
from labelstream.common.topics import Topics
from labelstream.router import multilabel
from labelstream.router.budget import Budget
from labelstream.router.models import RoutingModels
from labelstream.router.policy import human_task, models_agree, route
from labelstream.v1 import events_pb2

log = logging.getLogger("labelstream.router")
# What a stored decision holds beside the RouteDecision's own fields.
DECISION_EXTRAS = ("probabilities", "labels", "text_length", "models_agree", "decided_at_ms", "_id", "text",
                   "traceparent", "released_at_ms")


class Budgets:
    """Per-project budget state, started from the decisions already in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._budgets: dict[str, Budget] = {}
        self._lock = threading.Lock()

    def get(self, spec: events_pb2.ProjectSpec) -> Budget:
        with self._lock:
            budget = self._budgets.get(spec.project_id)
            if budget is None:
                decisions = self.store.db.decisions
                budget = Budget(routed=decisions.count_documents({"project_id": spec.project_id}),
                                to_people=decisions.count_documents({"project_id": spec.project_id,
                                                                     "route": "ROUTE_HUMAN",
                                                                     "deferred": {"$ne": True}}))
                self._budgets[spec.project_id] = budget
            budget.human_fraction_cap = spec.human_fraction_cap
            budget.budget_per_hour = spec.budget_per_hour
            budget.cost_per_task = spec.overlap * spec.pay_per_answer
            return budget


class Router:
    def __init__(self, store: Store, producer: EventProducer) -> None:
        self.store = store
        self.producer = producer
        self.decisions = store.db.decisions
        self.models = RoutingModels(store)
        self.multilabel = multilabel.MultiLabelRouting(store)
        self.budgets = Budgets(store)

    def project(self, project_id: str, item_id: str) -> events_pb2.ProjectSpec:
        spec = self.store.get_project(project_id)
        if spec is None:
            raise InvalidMessage("unknown_project", f"project {project_id!r} does not exist", project_id, item_id)
        return spec

    def handle_prediction(self, prediction: events_pb2.Prediction) -> list[Outgoing]:
        spec = self.project(prediction.project_id, prediction.item_id)
        key = item_key(prediction.project_id, prediction.item_id)
        stored = self.decisions.find_one({"_id": key})
        if stored is None:
            budget = self.budgets.get(spec)
            try:
                decision = self._route(prediction, spec, budget)
            except ValueError as exc:
                raise InvalidMessage("bad_prediction", str(exc), prediction.project_id,
                                     prediction.item_id) from exc
            # First decision wins: a replay re-sends the same decision even if the policy changed since.
            doc = {"_id": key, **json_format.MessageToDict(decision, preserving_proto_field_name=True),
                   "probabilities": list(prediction.probabilities), "labels": list(prediction.labels),
                   "text_length": len(prediction.text), "models_agree": models_agree(prediction),
                   "in_calibration_sample": decision.calibration_sample, "decided_at_ms": now_ms()}
            if decision.deferred:  # what the release loop needs to send it later
                doc.update(text=prediction.text, traceparent=traceparent(), deferred=True,
                           responses=[{"text": r.text, "source": r.source} for r in prediction.responses],
                           annotators=list(prediction.annotators))
            stored, inserted = insert_once(self.decisions, doc)
            if inserted:
                budget.record(decision.route == events_pb2.ROUTE_HUMAN and not decision.deferred)
        decision = stored_decision(stored)
        if decision.route == events_pb2.ROUTE_AUTO:
            return [Outgoing(Topics.LABELS_AUTO, key, decision)]
        if stored.get("deferred"):
            return []  # waits for budget; release_deferred sends it
        return [Outgoing(Topics.TASKS_HUMAN, key, human_task(prediction, decision, spec, task_id=key))]

    def _route(self, prediction: events_pb2.Prediction, spec: events_pb2.ProjectSpec,
               budget: Budget) -> events_pb2.RouteDecision:
        head = prediction.head_version or prediction.model_version
        if is_multi_label(spec):  # label by label (router/multilabel.py)
            thresholds, version, verified = self.multilabel.current(spec.project_id, prediction.model_name, head)
            return multilabel.route(prediction, spec, thresholds, verified, version, budget)
        routing, version = self.models.current(spec.project_id, prediction.model_name, head)
        return route(prediction, spec, routing, version, budget)

    def handle_quality(self, event: events_pb2.QualityEvent) -> None:
        if event.kind == QualityEventKind.LOW_MODEL_ACCURACY:
            spec = self.store.get_project(event.project_id)
            # A multi_label project's model accuracy is exact-set accuracy, which its per-label
            # guarantee does not promise (routing/multilabel.py): nothing to tighten there.
            if spec is not None and not is_multi_label(spec):
                target = self.models.tighten(spec)
                log.info("model accuracy low: recalibrated, target raised", extra=log_fields(
                    project_id=spec.project_id, target_accuracy=target, model_accuracy=event.value))
            return
        if event.kind != QualityEventKind.VERIFIED_LABEL:
            return
        spec = self.project(event.project_id, event.item_id)
        if is_multi_label(spec):
            verified = self.multilabel.add_verified(spec, event.item_id, event.label)
            if verified is not None:
                self.multilabel.refit_if_due(spec, verified["model"], self.models.target_accuracy(spec))
            return
        verified = self.models.add_verified(event.project_id, event.item_id, event.label)
        if verified is not None:
            version = self.models.refit_if_due(spec, verified["model"])
            if version:
                log.info("routing model refit", extra=log_fields(project_id=spec.project_id, version=version,
                                                                 model=verified["model"]))

    def release_deferred(self) -> None:
        """Send waiting items to people, most uncertain first, while the budget allows."""
        waiting = {d["project_id"]
                   for d in self.decisions.find({"deferred": True}, {"project_id": 1}).limit(10_000)}
        for project_id in waiting:
            spec = self.store.get_project(project_id)
            if spec is None:
                continue
            budget = self.budgets.get(spec)
            while not budget.binding():
                doc = next(iter(self.decisions.find({"project_id": project_id, "deferred": True}).sort(
                    [("score", ASCENDING), ("confidence", ASCENDING)]).limit(1)), None)
                if doc is None:
                    break
                self.producer.publish([self._release(doc, spec)])
                budget.record_release()

    def _release(self, doc: dict, spec: events_pb2.ProjectSpec) -> Outgoing:
        decision = stored_decision(doc)
        prediction = events_pb2.Prediction(
            project_id=decision.project_id, item_id=decision.item_id, labels=doc["labels"],
            probabilities=doc["probabilities"], text=doc["text"], model_name=decision.model_name,
            model_version=decision.model_version, ingested_at_ms=decision.ingested_at_ms,
            responses=[events_pb2.Response(**r) for r in doc.get("responses", [])],
            annotators=doc.get("annotators", []))
        with tracer().start_as_current_span("router.release", context=context_from_traceparent(doc["traceparent"]),
                                            attributes={"labelstream.project_id": decision.project_id,
                                                        "labelstream.item_id": decision.item_id}):
            task = human_task(prediction, decision, spec, task_id=doc["_id"])
            headers = trace_headers()

        def mark_released() -> None:
            self.decisions.update_one({"_id": doc["_id"]},
                                      {"$set": {"deferred": False, "released_at_ms": now_ms()}})

        return Outgoing(Topics.TASKS_HUMAN, doc["_id"], task, headers, on_published=mark_released)

    def explain(self, project_id: str, item_id: str) -> events_pb2.RouteDecision | None:
        doc = self.decisions.find_one({"_id": item_key(project_id, item_id)})
        return None if doc is None else stored_decision(doc)


def stored_decision(doc: dict) -> events_pb2.RouteDecision:
    fields = {k: v for k, v in doc.items() if k not in DECISION_EXTRAS}
    return json_format.ParseDict(fields, events_pb2.RouteDecision(), ignore_unknown_fields=True)
