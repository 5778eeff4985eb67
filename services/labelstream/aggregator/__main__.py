"""python -m labelstream.aggregator: consumes labels.auto and responses.human, publishes labels.final."""

from __future__ import annotations

import contextlib

import grpc
from pymongo.errors import DuplicateKeyError

from labelstream.aggregator.finalize import auto_final, finalize, human_final, load_final
from labelstream.aggregator.voting import majority_vote
from labelstream.common.kafka import (
    SCHEMA_VERSION,
    Incoming,
    InvalidMessage,
    Outgoing,
    Topics,
    by_topic,
    decode,
    per_record,
)
from labelstream.common.runtime import Runtime, run_service
from labelstream.common.store import item_key, vote_key
from labelstream.common.telemetry import tracer
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc


def make_handler(runtime: Runtime):
    store = runtime.store

    def handle_auto(record: Incoming) -> list[Outgoing]:
        decision = decode(record, events_pb2.RouteDecision)
        with tracer().start_as_current_span("aggregator.auto", context=record.trace_context, attributes={
                "labelstream.project_id": decision.project_id, "labelstream.item_id": decision.item_id}):
            return finalize(store, auto_final(decision))

    def handle_response(record: Incoming) -> list[Outgoing]:
        response = decode(record, events_pb2.HumanResponse)
        with tracer().start_as_current_span("aggregator.vote", context=record.trace_context, attributes={
                "labelstream.project_id": response.project_id, "labelstream.item_id": response.item_id,
                "labelstream.worker_id": response.worker_id}):
            spec = store.get_project(response.project_id)
            if spec is None:
                raise InvalidMessage("unknown_project", f"project {response.project_id!r} does not exist",
                                     response.project_id, response.item_id)
            with contextlib.suppress(DuplicateKeyError):  # a replayed vote
                store.db.votes.insert_one({
                    "_id": vote_key(response.task_id, response.worker_id), "task_id": response.task_id,
                    "worker_id": response.worker_id, "project_id": response.project_id,
                    "item_id": response.item_id, "label": response.label, "at_ms": response.answered_at_ms})
            key = item_key(response.project_id, response.item_id)
            existing = store.db.final_labels.find_one({"_id": key})
            if existing is not None:
                return finalize(store, load_final(existing))  # re-publishes only if never acknowledged
            votes = list(store.db.votes.find({"task_id": response.task_id}).sort("_id", 1))
            labels = [v["label"] for v in votes]
            model_votes = 1 if response.model_label else 0
            if model_votes:
                labels.append(response.model_label)
            state = store.db.vote_requests.find_one({"_id": response.task_id}) or {}
            required = max((response.task_overlap or spec.overlap) + model_votes, state.get("votes_needed", 0))
            outcome = majority_vote(labels, list(spec.labels), required, max(spec.max_overlap, spec.overlap))
            if outcome.label is not None:
                return finalize(store, human_final(response, outcome.label, outcome.share,
                                                   [v["worker_id"] for v in votes], with_model=bool(model_votes)))
            if outcome.votes_needed > required:
                store.db.vote_requests.update_one({"_id": response.task_id},
                                                  {"$set": {"votes_needed": outcome.votes_needed}}, upsert=True)
                more = events_pb2.HumanTask(
                    schema_version=SCHEMA_VERSION, project_id=response.project_id, item_id=response.item_id,
                    task_id=response.task_id, overlap=outcome.votes_needed - model_votes)
                return [Outgoing(Topics.TASKS_HUMAN, key, more)]
            return []

    return by_topic({Topics.LABELS_AUTO: per_record(handle_auto, runtime.name),
                Topics.RESPONSES_HUMAN: per_record(handle_response, runtime.name)})


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


def main() -> None:
    run_service("aggregator", [Topics.LABELS_AUTO, Topics.RESPONSES_HUMAN], make_handler, register)


if __name__ == "__main__":
    main()
