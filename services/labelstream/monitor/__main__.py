"""python -m labelstream.monitor: consumes every stream (of quality.events, the workers' snapshots and
blocks), serves MonitorService and metrics."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import grpc
from prometheus_client import Gauge
from pymongo import UpdateOne

from labelstream.common.dead_letters import InvalidMessage
from labelstream.common.producer import Outgoing
from labelstream.common.projects import QualityEventKind
from labelstream.common.records import Incoming, dead_letter, decode
from labelstream.common.runtime import Runtime, run_service
from labelstream.common.store import item_key
from labelstream.common.telemetry import MESSAGES, log_fields, now_ms
from labelstream.common.topics import Topics
from labelstream.common.web import serving
from labelstream.monitor import storage
from labelstream.monitor.dashboard_web import DashboardWeb
from labelstream.monitor.mining import mine_project
from labelstream.monitor.records import event_record, gold_record, verified_label_event, worker_writes
from labelstream.monitor.stats import compute_stats
from labelstream.monitor.watch import new_breaches, project_metrics
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

QUALITY_GAUGES = {metric: Gauge(f"labelstream_{metric}", help_text, ["project", "worker"] if metric ==
                                 "worker_accuracy" else ["project"])
                  for metric, help_text in (
                      ("agreement_alpha", "Krippendorff's alpha of human answers over the last hour"),
                      ("worker_accuracy", "A worker's accuracy on hidden gold (Beta posterior mean)"),
                      ("model_accuracy", "The model's label against final human labels over the last hour"),
                      ("throughput_per_s", "Final labels per second over the last hour"),
                      ("backlog_tasks", "Items sent to people that have no final label yet"),
                      ("time_per_task_seconds", "Median seconds a worker spends on a task, last hour"))}
PROJECT_GAUGES = {
    "human_fraction": Gauge("labelstream_human_fraction", "Share of final labels that came from people",
                            ["project"]),
    "accuracy": Gauge("labelstream_final_accuracy", "Accuracy of final labels against gold", ["project"]),
    "final_labels": Gauge("labelstream_final_labels", "Items with a final label", ["project"]),
    "latency_p95_ms": Gauge("labelstream_latency_p95_ms", "p95 ingest-to-final-label latency", ["project"]),
}
log = logging.getLogger("labelstream.monitor")
def make_handler(runtime: Runtime):
    events = runtime.store.db.monitor_events

    def handle(records: Sequence[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        writes = []
        workers = []
        for record in records:
            try:
                if record.topic == Topics.QUALITY_EVENTS:
                    event = decode(record, events_pb2.QualityEvent)
                    workers += worker_writes(event)
                    MESSAGES.labels(runtime.name, record.topic, "ok").inc()
                    if event.kind != QualityEventKind.GOLD_MINED:
                        continue
                    doc = gold_record(event)
                else:
                    doc = event_record(record, runtime.store.get_project)
            except InvalidMessage as error:
                MESSAGES.labels(runtime.name, record.topic, "dead_lettered").inc()
                log.warning("undecodable event", extra=log_fields(topic=record.topic, reason=error.reason))
                if record.topic != Topics.ITEMS_DLQ:  # never dead-letter the dead-letter topic into itself
                    out.append(dead_letter(record, error, runtime.name))
                continue
            MESSAGES.labels(runtime.name, record.topic, "ok").inc()
            writes.append(UpdateOne({"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True))
            if doc["kind"] == "final_label" and doc["source"] == "human":
                out.append(verified_label_event(record, doc))
        if writes:
            events.bulk_write(writes, ordered=False)
        if workers:  # in order: a worker's later snapshot wins over an earlier one of the same batch
            runtime.store.db.worker_snapshots.bulk_write(workers, ordered=True)
        return out

    return handle


class MonitorServicer(services_pb2_grpc.MonitorServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def GetProjectStats(self, request: services_pb2.GetProjectStatsRequest, context: grpc.ServicerContext):
        if self.runtime.store.get_project(request.project_id) is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"project {request.project_id!r} does not exist")
        return project_stats(self.runtime, request.project_id)


def project_stats(runtime: Runtime, project_id: str) -> services_pb2.ProjectStats:
    stats = compute_stats(project_id, runtime.store.db.monitor_events.find({"project_id": project_id}))
    for name, gauge in PROJECT_GAUGES.items():
        value = stats.overall.accuracy if name == "accuracy" else getattr(stats, name)
        if not math.isnan(value):
            gauge.labels(project_id).set(value)
    return stats


def alert_event_id(event: events_pb2.QualityEvent) -> str:
    return f"{event.kind}|{event.project_id}|{event.worker_id}|{event.at_ms}"


def register(runtime: Runtime, server: grpc.Server) -> None:
    services_pb2_grpc.add_MonitorServiceServicer_to_server(MonitorServicer(runtime), server)

    def refresh_gauges() -> None:
        for project_id in runtime.store.project_ids():
            project_stats(runtime, project_id)

    outbox = runtime.outbox()

    def watch_quality() -> None:
        """Quality gauges for Prometheus, and the same alert conditions as quality events (stored
        in the outbox before they count as raised)."""
        stored: list[Outgoing] = []

        def store_alerts(events: list[events_pb2.QualityEvent]) -> None:
            for event in events:
                log.warning("quality alert", extra=log_fields(project_id=event.project_id, kind=event.kind,
                                                               worker_id=event.worker_id, detail=event.detail))
            stored.extend(outbox.put([(alert_event_id(e), Outgoing(
                Topics.QUALITY_EVENTS, item_key(e.project_id, e.kind), e)) for e in events]))

        for project_id in runtime.store.project_ids():
            metrics = project_metrics(runtime.store.db, project_id, now_ms())
            for key, value in metrics.items():
                gauge = QUALITY_GAUGES[key.metric]
                labels = (key.project, key.worker) if key.metric == "worker_accuracy" else (key.project,)
                gauge.labels(*labels).set(value)
            new_breaches(runtime.store.db, metrics, now_ms(), store_alerts)
        if stored:
            runtime.producer.publish(stored)

    def mine_gold() -> None:
        """Items trusted workers agree on become hidden gold: the gold is the dispatcher's, so the
        monitor tells it with a gold_mined event (through its outbox) instead of writing it."""
        found = []
        for project_id in runtime.store.project_ids():
            spec = runtime.store.get_project(project_id)
            if spec is None:
                continue
            for candidate in mine_project(runtime.store.db, spec.project_id, list(spec.labels)):
                event = events_pb2.QualityEvent(
                    schema_version=events_pb2.SCHEMA_VERSION_1, project_id=spec.project_id,
                    item_id=candidate.item_id, kind=QualityEventKind.GOLD_MINED, label=candidate.label,
                    text=candidate.text, value=candidate.weight, at_ms=now_ms(),
                    responses=[events_pb2.Response(text=r) for r in candidate.responses])
                found.append((f"gold_mined|{spec.project_id}|{candidate.item_id}",
                              Outgoing(Topics.QUALITY_EVENTS, item_key(spec.project_id, candidate.item_id), event)))
        if found:
            outbox.publish(found)

    runtime.start_background(refresh_gauges, 10.0, "gauges")
    runtime.start_background(mine_gold, 30.0, "gold-mining")
    runtime.start_background(watch_quality, float(runtime.settings.quality_watch_seconds),
                             "quality-watch")
    if runtime.settings.http_port:
        if runtime.tokens is None:
            raise RuntimeError("the dashboard needs the runtime's TokenDirectory (run_service makes it)")
        # the gRPC interceptor's own directory: one set of tokens, one cache, for both doors
        runtime.serve_page(DashboardWeb(runtime.store, runtime.settings.http_port, runtime.settings.grpc_bind_host,
                                        serving=serving(runtime), tokens=runtime.tokens))


def main() -> None:
    run_service("monitor", [Topics.ITEMS_ACCEPTED, Topics.ITEMS_DLQ, Topics.PREDICTIONS, Topics.LABELS_AUTO,
                            Topics.TASKS_HUMAN, Topics.RESPONSES_HUMAN, Topics.LABELS_FINAL, Topics.QUALITY_EVENTS],
                make_handler, register, collections=storage.COLLECTIONS)


if __name__ == "__main__":
    main()
