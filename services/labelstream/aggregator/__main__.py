"""python -m labelstream.aggregator: consumes labels.auto, responses.human and quality.events;
publishes labels.final (new versions on corrections) and tasks.human (more votes)."""

from __future__ import annotations

import logging

import grpc

from labelstream.aggregator import storage
from labelstream.aggregator.aggregation import Aggregation, correction_id
from labelstream.aggregator.finalize import auto_final, finalize, load_final, with_label_set
from labelstream.common.consumer import by_topic, per_record
from labelstream.common.producer import Outgoing
from labelstream.common.projects import QualityEventKind
from labelstream.common.records import Incoming, decode
from labelstream.common.runtime import Runtime, run_service
from labelstream.common.store import item_key
from labelstream.common.telemetry import log_fields, tracer
from labelstream.common.topics import Topics
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

log = logging.getLogger("labelstream.aggregator")


def make_handler(runtime: Runtime):
    store = runtime.store
    aggregation: Aggregation = runtime.component("aggregation", lambda: Aggregation(store))

    def handle_auto(record: Incoming) -> list[Outgoing]:
        decision = decode(record, events_pb2.RouteDecision)
        with tracer().start_as_current_span("aggregator.auto", context=record.trace_context, attributes={
                "labelstream.project_id": decision.project_id, "labelstream.item_id": decision.item_id}):
            return finalize(store, with_label_set(auto_final(decision), store.get_project(decision.project_id)))

    def handle_response(record: Incoming) -> list[Outgoing]:
        response = decode(record, events_pb2.HumanResponse)
        with tracer().start_as_current_span("aggregator.vote", context=record.trace_context, attributes={
                "labelstream.project_id": response.project_id, "labelstream.item_id": response.item_id,
                "labelstream.worker_id": response.worker_id}):
            return aggregation.record_vote(response)

    def handle_quality(record: Incoming) -> list[Outgoing]:
        event = decode(record, events_pb2.QualityEvent)
        if event.kind == QualityEventKind.WORKER_QUALITY and event.worker_id:
            aggregation.note_worker(event)
            return []
        if event.kind != QualityEventKind.WORKER_BLOCKED or not event.worker_id:
            return []
        log.info("excluding a blocked worker's votes", extra=log_fields(
            project_id=event.project_id, worker_id=event.worker_id))
        return aggregation.exclude_worker(event.project_id, event.worker_id, event.detail)

    return by_topic({Topics.LABELS_AUTO: per_record(handle_auto, runtime.name),
                     Topics.RESPONSES_HUMAN: per_record(handle_response, runtime.name),
                     Topics.QUALITY_EVENTS: per_record(handle_quality, runtime.name)})


class AggregatorServicer(services_pb2_grpc.AggregatorServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def GetFinalLabel(self, request: services_pb2.GetFinalLabelRequest, context: grpc.ServicerContext):
        doc = self.runtime.store.db.final_labels.find_one({"_id": item_key(request.project_id, request.item_id)})
        if doc is None:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"item {request.item_id!r} of project {request.project_id!r} has no final label yet")
        return load_final(doc)


def register(runtime: Runtime, server: grpc.Server) -> None:
    services_pb2_grpc.add_AggregatorServiceServicer_to_server(AggregatorServicer(runtime), server)
    refits: Aggregation = runtime.component("aggregation", lambda: Aggregation(runtime.store))

    outbox = runtime.outbox()

    def refit() -> None:
        """Corrections a re-fit makes are born outside a consumer batch: they go through the
        outbox, each under its message's identity (an item's final label version, or a task's
        request for more votes)."""
        corrections = refits.refit()
        if corrections:
            outbox.publish([(correction_id(c), c) for c in corrections])

    runtime.start_background(refit, 1.0, "refit")  # EM on a project's votes takes milliseconds


def main() -> None:
    run_service("aggregator", [Topics.LABELS_AUTO, Topics.RESPONSES_HUMAN, Topics.QUALITY_EVENTS],
                make_handler, register, collections=storage.COLLECTIONS)


if __name__ == "__main__":
    main()
