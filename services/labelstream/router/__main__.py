"""python -m labelstream.router: consumes predictions, publishes labels.auto and tasks.human."""

from __future__ import annotations

import grpc
from google.protobuf import json_format

from labelstream.common.kafka import Incoming, InvalidMessage, Outgoing, Topics, decode, per_record
from labelstream.common.runtime import Runtime, run_service
from labelstream.common.store import insert_once, item_key
from labelstream.common.telemetry import tracer
from labelstream.router.policy import human_task, route
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc


def make_handler(runtime: Runtime):
    decisions = runtime.store.db.decisions

    def handle(record: Incoming) -> list[Outgoing]:
        prediction = decode(record, events_pb2.Prediction)
        with tracer().start_as_current_span("router.route", context=record.trace_context, attributes={
                "labelstream.project_id": prediction.project_id, "labelstream.item_id": prediction.item_id}):
            spec = runtime.store.get_project(prediction.project_id)
            if spec is None:
                raise InvalidMessage("unknown_project", f"project {prediction.project_id!r} does not exist",
                                     prediction.project_id, prediction.item_id)
            try:
                decision = route(prediction, spec)
            except ValueError as exc:
                raise InvalidMessage("bad_prediction", str(exc), prediction.project_id,
                                     prediction.item_id) from exc
            key = item_key(prediction.project_id, prediction.item_id)
            # First decision wins: a replay re-sends the same decision even if the policy changed since.
            stored, _ = insert_once(decisions, {
                "_id": key, **json_format.MessageToDict(decision, preserving_proto_field_name=True)})
            stored.pop("_id")
            decision = json_format.ParseDict(stored, events_pb2.RouteDecision(), ignore_unknown_fields=True)
            if decision.route == events_pb2.ROUTE_AUTO:
                return [Outgoing(Topics.LABELS_AUTO, key, decision)]
            return [Outgoing(Topics.TASKS_HUMAN, key, human_task(prediction, decision, spec, task_id=key))]

    return per_record(handle, runtime.name)


class RouterServicer(services_pb2_grpc.RouterServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def Explain(self, request: services_pb2.ExplainRequest, context: grpc.ServicerContext):
        doc = self.runtime.store.db.decisions.find_one({"_id": item_key(request.project_id, request.item_id)})
        if doc is None:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"no routing decision for item {request.item_id!r} of project {request.project_id!r}")
        doc.pop("_id")
        return json_format.ParseDict(doc, events_pb2.RouteDecision(), ignore_unknown_fields=True)


def register(runtime: Runtime, server: grpc.Server) -> None:
    services_pb2_grpc.add_RouterServiceServicer_to_server(RouterServicer(runtime), server)


def main() -> None:
    run_service("router", [Topics.PREDICTIONS], make_handler, register)


if __name__ == "__main__":
    main()
