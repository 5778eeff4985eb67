"""Workers' records reach the aggregator and the monitor as snapshots on quality.events: each keeps
its own copy (worker_skills, worker_snapshots) instead of reading the dispatcher's worker_quality."""

from __future__ import annotations

import pytest

from integration_tests.conftest import eventually, make_project
from labelstream.common.producer import EventProducer, Outgoing
from labelstream.common.projects import QualityEventKind
from labelstream.common.settings import Settings
from labelstream.common.store import item_key
from labelstream.common.topics import Topics
from labelstream.v1 import events_pb2

pytestmark = pytest.mark.integration
PROJECT = "worker-snapshots"


def snapshot(worker: str, tasks: int, correct: int, wrong: int, status: str = "active") -> Outgoing:
    event = events_pb2.QualityEvent(
        schema_version=events_pb2.SCHEMA_VERSION_1, project_id=PROJECT, worker_id=worker,
        kind=QualityEventKind.WORKER_QUALITY, at_ms=tasks, worker=events_pb2.WorkerSnapshot(
            status=status, tasks_done=tasks, gold_correct=correct, gold_wrong=wrong, earnings=0.05 * tasks,
            work_ms=2000 * tasks, fraud_signals=["too_fast"] if wrong > correct else []))
    return Outgoing(Topics.QUALITY_EVENTS, item_key(PROJECT, worker), event)


def blocked(worker: str) -> Outgoing:
    event = events_pb2.QualityEvent(schema_version=events_pb2.SCHEMA_VERSION_1, project_id=PROJECT,
                                    worker_id=worker, kind=QualityEventKind.WORKER_BLOCKED,
                                    detail="blocked by an admin", at_ms=99)
    return Outgoing(Topics.QUALITY_EVENTS, item_key(PROJECT, worker), event)


def test_snapshots_keep_the_newest_record_in_the_aggregator_and_the_monitor(state, db):
    make_project(state, PROJECT)
    producer = EventProducer(Settings.from_env({"LABELSTREAM_KAFKA_BOOTSTRAP": state.kafka_bootstrap}), "dispatcher")
    try:
        # an older snapshot after a newer one (two dispatcher replicas): the counters keep the newest
        producer.publish([snapshot("ann", 10, 4, 1), snapshot("ann", 12, 5, 1), snapshot("ann", 11, 4, 1),
                          snapshot("bob", 6, 1, 3), blocked("bob")])
    finally:
        producer.close()
    key = f"{PROJECT}|ann"
    monitor_copy = eventually(lambda: (doc := db.worker_snapshots.find_one({"_id": key})) and
                              doc["tasks_done"] == 12 and doc, timeout_s=60)
    assert monitor_copy, "the monitor did not keep the snapshot"
    assert (monitor_copy["gold_correct"], monitor_copy["gold_wrong"], monitor_copy["earnings"],
            monitor_copy["work_ms"]) == (5, 1, pytest.approx(0.6), 24_000)
    aggregator_copy = eventually(lambda: (doc := db.worker_skills.find_one({"_id": key})) and
                                 doc["tasks_done"] == 12 and doc, timeout_s=60)
    assert aggregator_copy and (aggregator_copy["gold_correct"], aggregator_copy["gold_wrong"]) == (5, 1)
    bob = eventually(lambda: (doc := db.worker_snapshots.find_one({"_id": f"{PROJECT}|bob"})) and
                     doc["status"] == "blocked" and doc, timeout_s=60)
    assert bob, "an admin's block (no snapshot) did not reach the monitor's copy"
    assert bob["blocked_reason"] == "blocked by an admin" and bob["fraud_signals"] == ["too_fast"]
    assert db.worker_quality.find_one({"_id": key}) is None, "only the dispatcher writes its own records"
