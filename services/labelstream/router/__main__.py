"""python -m labelstream.router: consumes predictions and quality.events, publishes labels.auto
and tasks.human, refits its routing models as verified labels arrive."""

from __future__ import annotations

import logging
import threading

import grpc
from google.protobuf import json_format
from pymongo import ASCENDING

from labelstream.common.kafka import Incoming, InvalidMessage, Outgoing, Topics, by_topic, decode, per_record
from labelstream.common.projects import QualityEventKind
from labelstream.common.runtime import Runtime, run_service
from labelstream.common.store import insert_once, item_key
from labelstream.common.telemetry import (
    context_from_traceparent,
    log_fields,
    now_ms,
    trace_headers,
    traceparent,
    tracer,
)
from labelstream.router import storage
from labelstream.router.budget import Budget
from labelstream.router.models import RoutingModels
from labelstream.router.policy import human_task, models_agree, route
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

log = logging.getLogger("labelstream.router")
DECISION_EXTRAS = ("probabilities", "labels", "text_length", "models_agree", "decided_at_ms", "_id", "text",
                   "traceparent", "released_at_ms")


class Budgets:
    """Per-project budget state, started from the decisions already in the store."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._budgets: dict[str, Budget] = {}
        self._lock = threading.Lock()

    def get(self, spec: events_pb2.ProjectSpec) -> Budget:
        with self._lock:
            budget = self._budgets.get(spec.project_id)
            if budget is None:
                decisions = self.runtime.store.db.decisions
                budget = Budget(routed=decisions.count_documents({"project_id": spec.project_id}),
                                to_people=decisions.count_documents({"project_id": spec.project_id,
                                                                     "route": "ROUTE_HUMAN",
                                                                     "deferred": {"$ne": True}}))
                self._budgets[spec.project_id] = budget
            budget.human_fraction_cap = spec.human_fraction_cap
            budget.budget_per_hour = spec.budget_per_hour
            budget.cost_per_task = spec.overlap * spec.pay_per_answer
            return budget


def make_handler(runtime: Runtime):
    decisions = runtime.store.db.decisions
    models = RoutingModels(runtime.store)
    budgets = Budgets(runtime)

    def project(project_id: str, item_id: str) -> events_pb2.ProjectSpec:
        spec = runtime.store.get_project(project_id)
        if spec is None:
            raise InvalidMessage("unknown_project", f"project {project_id!r} does not exist", project_id, item_id)
        return spec

    def handle_prediction(record: Incoming) -> list[Outgoing]:
        prediction = decode(record, events_pb2.Prediction)
        with tracer().start_as_current_span("router.route", context=record.trace_context, attributes={
                "labelstream.project_id": prediction.project_id, "labelstream.item_id": prediction.item_id}):
            spec = project(prediction.project_id, prediction.item_id)
            key = item_key(prediction.project_id, prediction.item_id)
            stored = decisions.find_one({"_id": key})
            if stored is None:
                routing, version = models.current(spec.project_id, prediction.model_name,
                                                  prediction.head_version or prediction.model_version)
                budget = budgets.get(spec)
                try:
                    decision = route(prediction, spec, routing, version, budget)
                except ValueError as exc:
                    raise InvalidMessage("bad_prediction", str(exc), prediction.project_id,
                                         prediction.item_id) from exc
                # First decision wins: a replay re-sends the same decision even if the policy changed since.
                doc = {"_id": key, **json_format.MessageToDict(decision, preserving_proto_field_name=True),
                       "probabilities": list(prediction.probabilities), "labels": list(prediction.labels),
                       "text_length": len(prediction.text), "models_agree": models_agree(prediction),
                       "decided_at_ms": now_ms()}
                if decision.deferred:  # what the release loop needs to send it later
                    doc.update(text=prediction.text, traceparent=traceparent(), deferred=True)
                stored, inserted = insert_once(decisions, doc)
                if inserted:
                    budget.record(decision.route == events_pb2.ROUTE_HUMAN and not decision.deferred)
            decision = stored_decision(stored)
            if decision.route == events_pb2.ROUTE_AUTO:
                return [Outgoing(Topics.LABELS_AUTO, key, decision)]
            if stored.get("deferred"):
                return []  # waits for budget; release_deferred sends it
            return [Outgoing(Topics.TASKS_HUMAN, key, human_task(prediction, decision, spec, task_id=key))]

    def handle_quality(record: Incoming) -> list[Outgoing]:
        event = decode(record, events_pb2.QualityEvent)
        if event.kind == QualityEventKind.LOW_MODEL_ACCURACY:
            spec = runtime.store.get_project(event.project_id)
            if spec is not None:
                target = models.tighten(spec)
                log.info("model accuracy low: recalibrated, target raised", extra=log_fields(
                    project_id=spec.project_id, target_accuracy=target, model_accuracy=event.value))
            return []
        if event.kind != QualityEventKind.VERIFIED_LABEL:
            return []
        spec = project(event.project_id, event.item_id)
        verified = models.add_verified(event.project_id, event.item_id, event.label)
        if verified is not None:
            version = models.refit_if_due(spec, verified["model"])
            if version:
                log.info("routing model refit", extra=log_fields(project_id=spec.project_id, version=version,
                                                                 model=verified["model"]))
        return []

    def release_deferred() -> None:
        """Send waiting items to people, most uncertain first, while the budget allows."""
        waiting = {d["project_id"] for d in decisions.find({"deferred": True}, {"project_id": 1}).limit(10_000)}
        for project_id in waiting:
            spec = runtime.store.get_project(project_id)
            if spec is None:
                continue
            budget = budgets.get(spec)
            while not budget.binding():
                doc = next(iter(decisions.find({"project_id": project_id, "deferred": True}).sort(
                    [("score", ASCENDING), ("confidence", ASCENDING)]).limit(1)), None)
                if doc is None:
                    break
                runtime.producer.publish([release(doc, spec)])
                budget.record(True)

    def release(doc: dict, spec: events_pb2.ProjectSpec) -> Outgoing:
        decision = stored_decision(doc)
        prediction = events_pb2.Prediction(
            project_id=decision.project_id, item_id=decision.item_id, labels=doc["labels"],
            probabilities=doc["probabilities"], text=doc["text"], model_name=decision.model_name,
            model_version=decision.model_version, ingested_at_ms=decision.ingested_at_ms)
        with tracer().start_as_current_span("router.release", context=context_from_traceparent(doc["traceparent"]),
                                            attributes={"labelstream.project_id": decision.project_id,
                                                        "labelstream.item_id": decision.item_id}):
            task = human_task(prediction, decision, spec, task_id=doc["_id"])
            headers = trace_headers()

        def mark_released() -> None:
            decisions.update_one({"_id": doc["_id"]}, {"$set": {"deferred": False, "released_at_ms": now_ms()}})

        return Outgoing(Topics.TASKS_HUMAN, doc["_id"], task, headers, on_published=mark_released)

    runtime.start_background(release_deferred, 1.0, "release-deferred")
    return by_topic({Topics.PREDICTIONS: per_record(handle_prediction, runtime.name),
                     Topics.QUALITY_EVENTS: per_record(handle_quality, runtime.name)})


def stored_decision(doc: dict) -> events_pb2.RouteDecision:
    fields = {k: v for k, v in doc.items() if k not in DECISION_EXTRAS}
    return json_format.ParseDict(fields, events_pb2.RouteDecision(), ignore_unknown_fields=True)


class RouterServicer(services_pb2_grpc.RouterServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def Explain(self, request: services_pb2.ExplainRequest, context: grpc.ServicerContext):
        doc = self.runtime.store.db.decisions.find_one({"_id": item_key(request.project_id, request.item_id)})
        if doc is None:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"no routing decision for item {request.item_id!r} of project {request.project_id!r}")
        return stored_decision(doc)


def register(runtime: Runtime, server: grpc.Server) -> None:
    services_pb2_grpc.add_RouterServiceServicer_to_server(RouterServicer(runtime), server)


def main() -> None:
    run_service("router", [Topics.PREDICTIONS, Topics.QUALITY_EVENTS], make_handler, register,
                collections=storage.COLLECTIONS)


if __name__ == "__main__":
    main()
