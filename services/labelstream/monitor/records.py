"""The monitor's record of what it consumes: one idempotent document per event (its _id makes a
replay a no-op), its copy of the workers' records, and the verified-label events it derives."""

from __future__ import annotations

from collections.abc import Callable

from pymongo import UpdateOne

from labelstream.common.producer import Outgoing
from labelstream.common.projects import QualityEventKind, is_multi_label, label_set_key
from labelstream.common.records import Incoming, decode
from labelstream.common.store import item_key, vote_key, worker_key, worker_snapshot_write
from labelstream.common.telemetry import now_ms, trace_headers
from labelstream.common.topics import Topics
from labelstream.crowd.multilabel import model_set
from labelstream.v1 import events_pb2

SOURCES = {events_pb2.LABEL_SOURCE_AUTO: "auto", events_pb2.LABEL_SOURCE_HUMAN: "human"}


def event_record(record: Incoming,
                 project: Callable[[str], events_pb2.ProjectSpec | None] = lambda _project_id: None) -> dict:
    """The monitor's idempotent record of one event; its _id makes a replay a no-op. `project`
    looks a project up (a multi-label prediction's answer is the model's set, not its top label)."""
    if record.topic == Topics.ITEMS_ACCEPTED:
        item = decode(record, events_pb2.Item)
        return {"_id": f"accepted|{item_key(item.project_id, item.item_id)}", "kind": "item_accepted",
                "project_id": item.project_id, "item_id": item.item_id, "gold_label": item.gold_label,
                "at_ms": item.ingested_at_ms}
    if record.topic == Topics.ITEMS_DLQ:
        letter = decode(record, events_pb2.DeadLetter)
        return {"_id": f"dlq|{record.partition}|{record.offset}", "kind": "dead_letter",
                "project_id": letter.project_id, "item_id": letter.item_id, "reason": letter.reason,
                "at_ms": letter.at_ms}
    if record.topic == Topics.PREDICTIONS:
        p = decode(record, events_pb2.Prediction)
        top = max(range(len(p.probabilities)), key=p.probabilities.__getitem__, default=None)
        label = p.labels[top] if top is not None and top < len(p.labels) else ""
        confidence = float(p.probabilities[top]) if top is not None else 0.0
        spec = project(p.project_id) if p.probabilities else None
        if spec is not None and is_multi_label(spec) and len(p.probabilities) == len(spec.labels):
            # the model's set, as final labels carry it; its certainty is that of its least sure label
            label = label_set_key(model_set(p.probabilities, spec))
            confidence = min(max(q, 1 - q) for q in p.probabilities)
        return {"_id": f"prediction|{item_key(p.project_id, p.item_id)}", "kind": "prediction",
                "project_id": p.project_id, "item_id": p.item_id, "at_ms": p.predicted_at_ms,
                # the model's answer, for its accuracy against people and the reliability chart
                "label": label, "confidence": confidence}
    if record.topic == Topics.LABELS_AUTO:
        d = decode(record, events_pb2.RouteDecision)
        return {"_id": f"auto|{item_key(d.project_id, d.item_id)}", "kind": "auto_label",
                "project_id": d.project_id, "item_id": d.item_id, "at_ms": d.ingested_at_ms}
    if record.topic == Topics.TASKS_HUMAN:
        t = decode(record, events_pb2.HumanTask)
        return {"_id": f"task|{t.task_id}", "kind": "human_task", "project_id": t.project_id,
                "item_id": t.item_id, "text": t.text, "at_ms": t.ingested_at_ms,
                **({"responses": [r.text for r in t.responses]} if t.responses else {})}
    if record.topic == Topics.RESPONSES_HUMAN:
        r = decode(record, events_pb2.HumanResponse)
        return {"_id": f"response|{vote_key(r.task_id, r.worker_id)}", "kind": "human_response",
                "project_id": r.project_id, "item_id": r.item_id, "worker_id": r.worker_id, "label": r.label,
                "duration_ms": r.duration_ms, "pay": r.pay, "at_ms": r.answered_at_ms}
    f = decode(record, events_pb2.FinalLabel)
    return {"_id": f"final|{item_key(f.project_id, f.item_id)}|{f.version}", "kind": "final_label",
            "project_id": f.project_id, "item_id": f.item_id, "label": f.label,
            "source": SOURCES.get(f.source, "unknown"), "version": f.version,
            "ingested_at_ms": f.ingested_at_ms, "finalized_at_ms": f.finalized_at_ms, "at_ms": f.finalized_at_ms}


def gold_record(event: events_pb2.QualityEvent) -> dict:
    """An item that became hidden gold (the monitor's own mining, heard back on quality.events), so
    that mining never offers it again."""
    return {"_id": f"gold|{item_key(event.project_id, event.item_id)}", "kind": "gold_mined",
            "project_id": event.project_id, "item_id": event.item_id, "label": event.label, "at_ms": event.at_ms}


def verified_label_event(record: Incoming, final: dict) -> Outgoing:
    """People settled an item's label: the router recalibrates on these."""
    event = events_pb2.QualityEvent(
        schema_version=events_pb2.SCHEMA_VERSION_1, project_id=final["project_id"], item_id=final["item_id"],
        kind=QualityEventKind.VERIFIED_LABEL, label=final["label"], at_ms=now_ms())
    return Outgoing(Topics.QUALITY_EVENTS, item_key(final["project_id"], final["item_id"]), event,
                    trace_headers(record.trace_context))


def worker_writes(event: events_pb2.QualityEvent) -> list[UpdateOne]:
    """The monitor's copy of the workers' records: snapshots, and blocks (an admin's block comes
    with no snapshot). Every other quality event is the monitor's own or not about workers."""
    if not event.worker_id:
        return []
    if event.kind == QualityEventKind.WORKER_QUALITY:
        return [worker_snapshot_write(event)]
    if event.kind == QualityEventKind.WORKER_BLOCKED:
        return [UpdateOne({"_id": worker_key(event.project_id, event.worker_id)}, {"$set": {
            "project_id": event.project_id, "worker_id": event.worker_id, "status": "blocked",
            "blocked_reason": event.detail}}, upsert=True)]
    return []
