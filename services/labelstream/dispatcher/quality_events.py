"""The quality events the dispatcher emits (a worker blocked, pay below the floor, snapshots of a
worker's record), built in one place: the outbox id of an event decides whether storing it again
is a repeat, so the work that blocks and the pay review that reports must agree on how each kind
is keyed and addressed."""

from __future__ import annotations

from labelstream.common.producer import Outgoing
from labelstream.common.projects import QualityEventKind
from labelstream.common.store import item_key
from labelstream.common.telemetry import now_ms
from labelstream.common.topics import SCHEMA_VERSION, Topics
from labelstream.v1 import events_pb2


def quality_outgoing(event: events_pb2.QualityEvent) -> Outgoing:
    return Outgoing(Topics.QUALITY_EVENTS, item_key(event.project_id, event.worker_id or event.kind), event)


def quality_event_id(event: events_pb2.QualityEvent) -> str:
    """The outbox id of a quality event: a worker is blocked once per project, so that event's id
    says only who; the others are told apart by their time."""
    if event.kind == QualityEventKind.WORKER_BLOCKED:
        return f"worker_blocked|{event.project_id}|{event.worker_id}"
    return f"{event.kind}|{event.project_id}|{event.worker_id}|{event.at_ms}"


def blocked_event(project_id: str, worker_id: str, reason: str) -> events_pb2.QualityEvent:
    return events_pb2.QualityEvent(schema_version=SCHEMA_VERSION, project_id=project_id,
                                   kind=QualityEventKind.WORKER_BLOCKED, worker_id=worker_id, detail=reason,
                                   at_ms=now_ms())


def low_pay_event(project_id: str, median_rate: float, min_hourly_wage: float,
                  detail: str) -> events_pb2.QualityEvent:
    """The median worker's effective hourly rate on a project is below its minimum wage."""
    return events_pb2.QualityEvent(schema_version=SCHEMA_VERSION, project_id=project_id,
                                   kind=QualityEventKind.LOW_PAY, value=median_rate, threshold=min_hourly_wage,
                                   detail=detail, at_ms=now_ms())


def worker_snapshot_event(record: dict) -> events_pb2.QualityEvent:
    """A worker's record on a project as the others may know it (the aggregator's gold accuracies,
    the monitor's worker table and cost): sent after every answer, not through the outbox, since
    each snapshot holds the whole record and the next one makes up for one lost in a crash."""
    snapshot = events_pb2.WorkerSnapshot(
        status=record["status"], tasks_done=record["tasks_done"], gold_correct=record["gold_correct"],
        gold_wrong=record["gold_wrong"], earnings=record["earnings"], work_ms=record["work_ms"],
        blocked_reason=record.get("blocked_reason", ""),
        fraud_signals=[*record.get("fraud_signals", []), *record.get("flags", [])])
    return events_pb2.QualityEvent(schema_version=SCHEMA_VERSION, project_id=record["project_id"],
                                   worker_id=record["worker_id"], kind=QualityEventKind.WORKER_QUALITY,
                                   worker=snapshot, at_ms=now_ms())
