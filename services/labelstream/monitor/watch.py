"""The quality gauges of a project over a recent window, and the alerts they raise as quality
events (the same conditions as the chart's Prometheus rules, labelstream.monitor.alerts)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

from pymongo.database import Database

from labelstream.common.topics import SCHEMA_VERSION
from labelstream.crowd.quality import gold_accuracy
from labelstream.monitor.alerts import Breach, MetricKey, evaluate
from labelstream.monitor.stats import agreement_alpha, latest_finals
from labelstream.v1 import events_pb2

WINDOW_MS = 3_600_000
MIN_SPAN_MS = 60_000            # a young project's throughput is over at least a minute
MIN_RESPONSES = 20              # before agreement or time per task means anything
MIN_GOLD_ANSWERS = 5            # before a worker's gold accuracy is exported
MIN_MODEL_CHECKS = 20           # final human labels before model accuracy is exported


def project_metrics(db: Database, project_id: str, now_ms: int) -> dict[MetricKey, float]:
    since = now_ms - WINDOW_MS
    metrics: dict[MetricKey, float] = {}
    responses = list(db.monitor_events.find(
        {"project_id": project_id, "kind": "human_response", "at_ms": {"$gte": since}},
        {"item_id": 1, "worker_id": 1, "label": 1, "duration_ms": 1}))
    if len(responses) >= MIN_RESPONSES:
        metrics[MetricKey("agreement_alpha", project_id)] = agreement_alpha(
            [(r["item_id"], r["worker_id"], r["label"]) for r in responses])
        metrics[MetricKey("time_per_task_seconds", project_id)] = statistics.median(
            r.get("duration_ms", 0) for r in responses) / 1000
    for record in db.worker_snapshots.find({"project_id": project_id, "status": {"$ne": "blocked"}}):
        answered = record["gold_correct"] + record["gold_wrong"]
        if answered >= MIN_GOLD_ANSWERS:
            metrics[MetricKey("worker_accuracy", project_id, record["worker_id"])] = gold_accuracy(record)
    finals = latest_finals(db.monitor_events.find(
        {"project_id": project_id, "kind": "final_label", "at_ms": {"$gte": since}}))
    human = [f for f in finals.values() if f["source"] == "human"]
    if len(human) >= MIN_MODEL_CHECKS:
        model_labels = {p["item_id"]: p.get("label") for p in db.monitor_events.find(
            {"project_id": project_id, "kind": "prediction", "item_id": {"$in": [f["item_id"] for f in human]}},
            {"item_id": 1, "label": 1})}
        judged = [f for f in human if model_labels.get(f["item_id"])]
        if len(judged) >= MIN_MODEL_CHECKS:
            metrics[MetricKey("model_accuracy", project_id)] = \
                sum(model_labels[f["item_id"]] == f["label"] for f in judged) / len(judged)
    if finals:
        first = min(f["at_ms"] for f in finals.values())
        metrics[MetricKey("throughput_per_s", project_id)] = len(finals) / (max(MIN_SPAN_MS, now_ms - first) / 1000)
    # Items sent to people that have no final label yet: the dispatcher's open tasks, as the
    # monitor sees them on tasks.human and labels.final.
    waiting = set(db.monitor_events.distinct("item_id", {"project_id": project_id, "kind": "human_task"}))
    waiting -= set(db.monitor_events.distinct("item_id", {"project_id": project_id, "kind": "final_label"}))
    metrics[MetricKey("backlog_tasks", project_id)] = float(len(waiting))
    return metrics


def alert_key(breach: Breach) -> str:
    return f"{breach.kind}|{breach.project}|{breach.worker}"


def new_breaches(db: Database, metrics: dict[MetricKey, float], now_ms: int,
                 store_events: Callable[[list[events_pb2.QualityEvent]], None] = lambda _events: None,
                 ) -> list[events_pb2.QualityEvent]:
    """Quality events for breaches that were not already active; resolved ones are cleared.
    `store_events` makes the new events durable (the service's outbox) before they are marked
    active, so a crash in between never loses an alert."""
    breaches = evaluate(metrics)
    projects = {key.project for key in metrics}
    active = {doc["_id"] for doc in db.active_alerts.find({"project": {"$in": sorted(projects)}})}
    current = {alert_key(b): b for b in breaches}
    for resolved in active - set(current):
        db.active_alerts.delete_one({"_id": resolved})
    fresh = {key: breach for key, breach in current.items() if key not in active}
    events = [events_pb2.QualityEvent(
        schema_version=SCHEMA_VERSION, project_id=breach.project, kind=breach.kind, worker_id=breach.worker,
        value=breach.value if not math.isnan(breach.value) else 0.0, threshold=breach.threshold,
        detail=breach.summary, at_ms=now_ms) for breach in fresh.values()]
    if events:
        store_events(events)
    for key, breach in fresh.items():
        db.active_alerts.replace_one({"_id": key}, {"_id": key, "project": breach.project, "since_ms": now_ms},
                                     upsert=True)
    return events
