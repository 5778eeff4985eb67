"""python -m labelstream.router: consumes predictions and quality.events, publishes labels.auto
and tasks.human, refits its routing models as verified labels arrive."""

from __future__ import annotations

import logging
import threading

import grpc
from google.protobuf import json_format

from labelstream.common.kafka import Incoming, InvalidMessage, Outgoing, Topics, by_topic, decode, per_record
from labelstream.common.runtime import Runtime, run_service
from labelstream.common.store import insert_once, item_key
from labelstream.common.telemetry import log_fields, now_ms, tracer
from labelstream.router.budget import Budget
from labelstream.router.models import RoutingModels
from labelstream.router.policy import human_task, route
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

log = logging.getLogger("labelstream.router")
DECISION_EXTRAS = ("probabilities", "labels", "text_length", "decided_at_ms", "_id")


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
                                                                     "route": "ROUTE_HUMAN"}))
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
                routing, version = models.current(spec.project_id, prediction.model_name, prediction.model_version)
                budget = budgets.get(spec)
                try:
                    decision = route(prediction, spec, routing, version, budget)
                except ValueError as exc:
                    raise InvalidMessage("bad_prediction", str(exc), prediction.project_id,
                                         prediction.item_id) from exc
                # First decision wins: a replay re-sends the same decision even if the policy changed since.
                stored, inserted = insert_once(decisions, {
                    "_id": key, **json_format.MessageToDict(decision, preserving_proto_field_name=True),
                    "probabilities": list(prediction.probabilities), "labels": list(prediction.labels),
                    "text_length": len(prediction.text), "decided_at_ms": now_ms()})
                if inserted:
                    budget.record(decision.route == events_pb2.ROUTE_HUMAN)
            decision = json_format.ParseDict({k: v for k, v in stored.items() if k not in DECISION_EXTRAS},
                                             events_pb2.RouteDecision(), ignore_unknown_fields=True)
            if decision.route == events_pb2.ROUTE_AUTO:
                return [Outgoing(Topics.LABELS_AUTO, key, decision)]
            return [Outgoing(Topics.TASKS_HUMAN, key, human_task(prediction, decision, spec, task_id=key))]

    def handle_quality(record: Incoming) -> list[Outgoing]:
        event = decode(record, events_pb2.QualityEvent)
        if event.kind != "verified_label":
            return []
        spec = project(event.project_id, event.item_id)
        verified = models.add_verified(event.project_id, event.item_id, event.label)
        if verified is not None:
            version = models.refit_if_due(spec, verified["model"])
            if version:
                log.info("routing model refit", extra=log_fields(project_id=spec.project_id, version=version,
                                                                 model=verified["model"]))
        return []

    return by_topic({Topics.PREDICTIONS: per_record(handle_prediction, runtime.name),
                Topics.QUALITY_EVENTS: per_record(handle_quality, runtime.name)})


class RouterServicer(services_pb2_grpc.RouterServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def Explain(self, request: services_pb2.ExplainRequest, context: grpc.ServicerContext):
        doc = self.runtime.store.db.decisions.find_one({"_id": item_key(request.project_id, request.item_id)})
        if doc is None:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"no routing decision for item {request.item_id!r} of project {request.project_id!r}")
        return json_format.ParseDict({k: v for k, v in doc.items() if k not in DECISION_EXTRAS},
                                     events_pb2.RouteDecision(), ignore_unknown_fields=True)


def register(runtime: Runtime, server: grpc.Server) -> None:
    services_pb2_grpc.add_RouterServiceServicer_to_server(RouterServicer(runtime), server)


def main() -> None:
    run_service("router", [Topics.PREDICTIONS, Topics.QUALITY_EVENTS], make_handler, register)


if __name__ == "__main__":
    main()
