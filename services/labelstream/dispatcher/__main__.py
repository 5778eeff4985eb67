"""python -m labelstream.dispatcher: consumes tasks.human and quality.events, serves
DispatcherService to workers and admins, and the annotator web page."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc

from labelstream.common.auth import caller
from labelstream.common.consumer import by_topic, per_record
from labelstream.common.producer import Outgoing
from labelstream.common.projects import (
    QualityEventKind,
    is_multi_label,
    is_preference,
    label_set_key,
    label_set_problem,
    parse_label_set,
)
from labelstream.common.records import Incoming, decode
from labelstream.common.runtime import Runtime, run_service
from labelstream.common.telemetry import traceparent, tracer
from labelstream.common.topics import Topics
from labelstream.common.web import serving
from labelstream.dispatcher import storage
from labelstream.dispatcher.display import task_fields
from labelstream.dispatcher.pool import PoolError, TaskPool, gold_doc
from labelstream.dispatcher.publishing import OUTBOX_GRACE_MS, Publisher, response_outgoing
from labelstream.dispatcher.web import AnnotatorWeb
from labelstream.dispatcher.workbench import Workbench
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

# Alerts from the monitor that put a worker under closer watch (more gold).
SUSPECT_KINDS = {QualityEventKind.LOW_WORKER_ACCURACY}


def reaper_interval_s(lease_seconds: int) -> float:
    """Expired leases are reclaimed within a twelfth of the lease time (at most 5 s, at least 1 s)."""
    return max(1.0, min(5.0, lease_seconds / 12))


def make_workbench(runtime: Runtime) -> Workbench:
    def build() -> Workbench:
        gather_s = runtime.settings.store_gather_ms / 1000
        # owns nothing until the consumer group assigns it tasks.human partitions
        pool = TaskPool(runtime.store, runtime.settings.lease_seconds, owned=(), gather_s=gather_s)
        runtime.on_assigned = lambda owned: pool.own(owned.get(Topics.TASKS_HUMAN, set()))
        return Workbench(runtime.store, pool, runtime.settings.worker_requests_per_minute, gather_s=gather_s,
                         outbox=runtime.outbox(), tokens=runtime.tokens)
    return runtime.component("workbench", build)


def make_handler(runtime: Runtime):
    workbench = make_workbench(runtime)

    def handle_tasks(records: Sequence[Incoming]) -> list[Outgoing]:
        """A consumed batch of tasks goes into the pool with one insert (one per task would be a
        store command per task: on the local store, a third of a core at 500 answers/s)."""
        tasks: list[events_pb2.HumanTask] = []
        parents: list[str] = []
        partitions: list[int] = []

        def enqueue(record: Incoming) -> list[Outgoing]:
            task = decode(record, events_pb2.HumanTask)
            with tracer().start_as_current_span("dispatcher.enqueue", context=record.trace_context, attributes={
                    "labelstream.project_id": task.project_id, "labelstream.task_id": task.task_id}):
                parents.append(traceparent())
            tasks.append(task)
            partitions.append(record.partition)
            return []

        dead_letters = per_record(enqueue, runtime.name)(records)
        workbench.pool.add_many(tasks, parents, partitions)
        return dead_letters

    def handle_quality(record: Incoming) -> list[Outgoing]:
        event = decode(record, events_pb2.QualityEvent)
        if event.kind in SUSPECT_KINDS and event.worker_id:
            workbench.records.mark_suspect(event.project_id, event.worker_id, event.kind)
        if event.kind == QualityEventKind.WORKER_BLOCKED and event.worker_id:
            workbench.apply_block(event.project_id, event.worker_id, event.detail)
        if event.kind == QualityEventKind.GOLD_MINED:
            workbench.add_mined_gold(event)
        return []

    return by_topic({Topics.TASKS_HUMAN: handle_tasks,
                     Topics.QUALITY_EVENTS: per_record(handle_quality, runtime.name)})


def refusing(context: grpc.ServicerContext, call: Callable):
    try:
        return call()
    except PoolError as error:
        context.abort(getattr(grpc.StatusCode, error.code), str(error))


def leased_task(workbench: Workbench, worker_id: str, project_id: str) -> services_pb2.LeasedTask:
    lease, spec, reminder = workbench.lease(worker_id, project_id)
    return services_pb2.LeasedTask(
        task_id=lease.handle, project_id=lease.project_id, text=lease.text, labels=lease.labels,
        instructions=spec.instructions, lease_expires_at_ms=lease.expires_at_ms,
        content_warning=spec.content_warning, break_reminder=reminder, pay=lease.pay, responses=lease.responses,
        **task_fields(spec))


class DispatcherServicer(services_pb2_grpc.DispatcherServiceServicer):
    def __init__(self, workbench: Workbench, publisher: Publisher) -> None:
        self.workbench = workbench
        self.publisher = publisher

    # Who may call what is the interceptor's (labelstream.common.auth.RULES): the worker calls get
    # a worker, the admin calls an admin or the project's owner. Here: which worker, and their rate.
    def _worker(self, context: grpc.ServicerContext) -> str:
        return refusing(context, lambda: self.workbench.accounts.admit(caller().name))

    def LeaseTask(self, request: services_pb2.LeaseTaskRequest, context: grpc.ServicerContext):
        worker_id = self._worker(context)
        if not context.is_active():
            # the caller gave up (deadline or cancel) while this waited for a thread: a lease now
            # would hold a slot nobody answers until it expires
            context.abort(grpc.StatusCode.CANCELLED, "the call ended before a task was leased")
        return refusing(context, lambda: leased_task(self.workbench, worker_id, request.project_id))

    def SubmitAnswer(self, request: services_pb2.SubmitAnswerRequest, context: grpc.ServicerContext):
        worker_id = self._worker(context)
        if not request.task_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "task_id is required")
        outcome = refusing(context, lambda: self.workbench.answer(worker_id, request.task_id, request.label))
        self.publisher.submit(outcome)
        return services_pb2.SubmitAnswerResponse(accepted=True)

    def SkipTask(self, request: services_pb2.SkipTaskRequest, context: grpc.ServicerContext):
        worker_id = self._worker(context)
        refusing(context, lambda: self.workbench.skip(worker_id, request.task_id))
        return services_pb2.SkipTaskResponse()

    def GetMyStats(self, request: services_pb2.GetMyStatsRequest, context: grpc.ServicerContext):
        worker_id = self._worker(context)
        stats = self.workbench.records.my_stats(worker_id, request.project_id)
        if not stats:
            return services_pb2.WorkerStats(worker_id=worker_id, project_id=request.project_id, status="new")
        return stats[0]

    def CreateWorker(self, request: services_pb2.CreateWorkerRequest, context: grpc.ServicerContext):
        accounts = self.workbench.accounts
        token = refusing(context, lambda: accounts.create_worker(request.worker_id, request.rotate_token))
        return services_pb2.CreateWorkerResponse(worker_id=request.worker_id, token=token)

    def AddGold(self, request: services_pb2.AddGoldRequest, context: grpc.ServicerContext):
        spec = self.workbench.store.get_project(request.project_id)
        if spec is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"project {request.project_id!r} does not exist")
        items = []
        for item in request.items:
            if is_multi_label(spec) and item.item_id and item.text:
                labels = parse_label_set(item.label)
                problem = ("not a JSON array of distinct labels",) if labels is None else \
                    label_set_problem(labels, spec)
                if problem is not None:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"gold item {item.item_id!r}: its label must be a set of the project's labels "
                                  f"(a JSON array): {problem[-1]}")
                item.label = label_set_key(labels)
            elif not item.item_id or not item.text or item.label not in spec.labels:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"gold item {item.item_id!r} needs an item_id, a text and a label among "
                              f"{list(spec.labels)}")
            if len(item.responses) != (spec.responses_per_item if is_preference(spec) else 0):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"gold item {item.item_id!r} has {len(item.responses)} responses; project "
                              f"{spec.project_id!r} ({spec.task}) compares {spec.responses_per_item}")
            items.append(gold_doc(spec, item.item_id, item.text, item.label, [r.text for r in item.responses],
                                  item.weight, "admin"))
        added, total = self.workbench.pool.add_gold(request.project_id, items)
        return services_pb2.AddGoldResponse(added=added, total=total)

    def GetWorker(self, request: services_pb2.GetWorkerRequest, context: grpc.ServicerContext):
        return refusing(context, lambda: self.workbench.records.worker_stats(request.project_id, request.worker_id))

    def ListWorkers(self, request: services_pb2.ListWorkersRequest, context: grpc.ServicerContext):
        return services_pb2.ListWorkersResponse(workers=self.workbench.records.list_workers(request.project_id))

    def BlockWorker(self, request: services_pb2.BlockWorkerRequest, context: grpc.ServicerContext):
        for event in self.workbench.block(request.project_id, request.worker_id,
                                          request.reason or "blocked by an admin"):
            self.publisher.pending.put(event)
        return self.workbench.records.worker_stats(request.project_id, request.worker_id)


def register(runtime: Runtime, server: grpc.Server) -> None:
    workbench = make_workbench(runtime)
    publisher = Publisher(runtime, workbench.pool)
    services_pb2_grpc.add_DispatcherServiceServicer_to_server(DispatcherServicer(workbench, publisher), server)

    def sweep_outbox() -> None:
        pending = workbench.pool.unpublished(OUTBOX_GRACE_MS)
        if pending:
            published: list[tuple[str, str]] = []
            runtime.producer.publish([response_outgoing(r, parent, published) for r, parent in pending])
            workbench.pool.mark_published_many(published)

    def review_pay() -> None:
        events = workbench.review_pay()
        if events:
            runtime.producer.publish(events)

    runtime.start_background(publisher.drain, 0.01, "publisher")
    # The sweeps scan growing collections (tens of ms each on the local store, which answers one
    # command at a time): often enough to matter, rarely enough to leave the store to the requests.
    runtime.start_background(workbench.pool.reclaim_expired, reaper_interval_s(runtime.settings.lease_seconds),
                             "lease-reaper")
    runtime.start_background(sweep_outbox, 5.0, "outbox-sweep")
    runtime.start_background(review_pay, 30.0, "pay-review")
    if runtime.settings.http_port:
        runtime.serve_page(AnnotatorWeb(workbench, publisher.submit, runtime.settings.http_port,
                                        runtime.settings.grpc_bind_host, serving=serving(runtime)))


def main() -> None:
    run_service("dispatcher", [Topics.TASKS_HUMAN, Topics.QUALITY_EVENTS], make_handler, register,
                collections=storage.COLLECTIONS)


if __name__ == "__main__":
    main()
