"""python -m labelstream.dispatcher: consumes tasks.human, serves DispatcherService to workers."""

from __future__ import annotations

import grpc

from labelstream.common.kafka import Incoming, Outgoing, Topics, decode, per_record
from labelstream.common.runtime import Runtime, run_service
from labelstream.common.store import item_key
from labelstream.common.telemetry import context_from_traceparent, trace_headers, tracer
from labelstream.dispatcher.pool import PoolError, TaskPool
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

OUTBOX_GRACE_MS = 5000


def make_handler(runtime: Runtime):
    pool = TaskPool(runtime.store, runtime.settings.lease_seconds)

    def handle(record: Incoming) -> list[Outgoing]:
        task = decode(record, events_pb2.HumanTask)
        with tracer().start_as_current_span("dispatcher.enqueue", context=record.trace_context, attributes={
                "labelstream.project_id": task.project_id, "labelstream.task_id": task.task_id}):
            pool.add(task)
        return []

    return per_record(handle, runtime.name)


def response_outgoing(pool: TaskPool, response: events_pb2.HumanResponse, parent: str) -> Outgoing:
    with tracer().start_as_current_span("dispatcher.answer", context=context_from_traceparent(parent),
                                        attributes={"labelstream.task_id": response.task_id,
                                                    "labelstream.worker_id": response.worker_id}):
        headers = trace_headers()
    return Outgoing(Topics.RESPONSES_HUMAN, item_key(response.project_id, response.item_id), response, headers,
                    on_published=lambda: pool.mark_published(response.task_id, response.worker_id))


class DispatcherServicer(services_pb2_grpc.DispatcherServiceServicer):
    def __init__(self, runtime: Runtime, pool: TaskPool) -> None:
        self.runtime = runtime
        self.pool = pool

    def LeaseTask(self, request: services_pb2.LeaseTaskRequest, context: grpc.ServicerContext):
        if not request.worker_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "worker_id is required")
        lease = self.pool.lease(request.worker_id, request.project_id)
        if lease is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "no task is available for this worker right now")
        spec = self.runtime.store.get_project(lease.project_id)
        return services_pb2.LeasedTask(
            task_id=lease.task_id, project_id=lease.project_id, text=lease.text, labels=lease.labels,
            instructions=spec.instructions if spec else "", lease_expires_at_ms=lease.expires_at_ms)

    def SubmitAnswer(self, request: services_pb2.SubmitAnswerRequest, context: grpc.ServicerContext):
        if not request.worker_id or not request.task_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "worker_id and task_id are required")
        try:
            response, parent = self.pool.answer(request.worker_id, request.task_id, request.label)
        except PoolError as error:
            context.abort(getattr(grpc.StatusCode, error.code), str(error))
        # If this publish fails, the outbox sweep sends the stored answer later.
        self.runtime.producer.publish([response_outgoing(self.pool, response, parent)])
        return services_pb2.SubmitAnswerResponse(accepted=True)


def register(runtime: Runtime, server: grpc.Server) -> None:
    pool = TaskPool(runtime.store, runtime.settings.lease_seconds)
    services_pb2_grpc.add_DispatcherServiceServicer_to_server(DispatcherServicer(runtime, pool), server)

    def sweep_outbox() -> None:
        pending = pool.unpublished(OUTBOX_GRACE_MS)
        if pending:
            runtime.producer.publish([response_outgoing(pool, r, parent) for r, parent in pending])

    runtime.start_background(pool.reclaim_expired, 1.0, "lease-reaper")
    runtime.start_background(pool.repair_lost_slots, 5.0, "slot-repair")
    runtime.start_background(sweep_outbox, 2.0, "outbox-sweep")


def main() -> None:
    run_service("dispatcher", [Topics.TASKS_HUMAN], make_handler, register)


if __name__ == "__main__":
    main()
