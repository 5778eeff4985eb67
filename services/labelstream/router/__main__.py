"""python -m labelstream.router: consumes predictions and quality.events, publishes labels.auto
and tasks.human, refits its routing models as verified labels arrive (`router.decisions`)."""

from __future__ import annotations

import grpc

from labelstream.common.consumer import BatchHandler, by_topic, per_record
from labelstream.common.producer import Outgoing
from labelstream.common.records import Incoming, decode
from labelstream.common.runtime import Runtime, run_service
from labelstream.common.telemetry import tracer
from labelstream.common.topics import Topics
from labelstream.router import storage
from labelstream.router.decisions import Router
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc


def make_router(runtime: Runtime) -> Router:
    return runtime.component("router", lambda: Router(runtime.store, runtime.producer))


def make_handler(runtime: Runtime) -> BatchHandler:
    router = make_router(runtime)

    def handle_prediction(record: Incoming) -> list[Outgoing]:
        prediction = decode(record, events_pb2.Prediction)
        with tracer().start_as_current_span("router.route", context=record.trace_context, attributes={
                "labelstream.project_id": prediction.project_id, "labelstream.item_id": prediction.item_id}):
            return router.handle_prediction(prediction)

    def handle_quality(record: Incoming) -> list[Outgoing]:
        router.handle_quality(decode(record, events_pb2.QualityEvent))
        return []

    runtime.start_background(router.release_deferred, 1.0, "release-deferred")
    return by_topic({Topics.PREDICTIONS: per_record(handle_prediction, runtime.name),
                     Topics.QUALITY_EVENTS: per_record(handle_quality, runtime.name)})


class RouterServicer(services_pb2_grpc.RouterServiceServicer):
    def __init__(self, router: Router) -> None:
        self.router = router

    def Explain(self, request: services_pb2.ExplainRequest, context: grpc.ServicerContext):
        decision = self.router.explain(request.project_id, request.item_id)
        if decision is None:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"no routing decision for item {request.item_id!r} of project {request.project_id!r}")
        return decision


def register(runtime: Runtime, server: grpc.Server) -> None:
    services_pb2_grpc.add_RouterServiceServicer_to_server(RouterServicer(make_router(runtime)), server)


def main() -> None:
    run_service("router", [Topics.PREDICTIONS, Topics.QUALITY_EVENTS], make_handler, register,
                collections=storage.COLLECTIONS)


if __name__ == "__main__":
    main()
