"""Rate limits, breaks and fair pay on the real store (a store server of the test's own)."""

from __future__ import annotations

import uuid

import pytest

from labelstream.common.outbox import Outbox
from labelstream.common.settings import Settings
from labelstream.common.store import Store
from labelstream.common.telemetry import now_ms
from labelstream.dispatcher import storage as dispatcher_storage
from labelstream.dispatcher.pool import PoolError, TaskPool
from labelstream.dispatcher.workbench import Workbench
from labelstream.dispatcher.worker_records import quality_key
from labelstream.v1 import events_pb2

pytestmark = pytest.mark.integration


@pytest.fixture
def store(scratch_mongodb_uri):
    store = Store(Settings.from_env({"LABELSTREAM_MONGODB_URI": scratch_mongodb_uri}))
    store.ensure_indexes(dispatcher_storage.COLLECTIONS)
    yield store
    store.close()


def project(bench: Workbench, policy: events_pb2.WorkerPolicy, pay: float = 0.05) -> str:
    """A project whose tasks are in this workbench's pool (as in the dispatcher process that owns them)."""
    project_id = f"welfare-{uuid.uuid4().hex[:8]}"
    bench.store.put_project(events_pb2.ProjectSpec(project_id=project_id, labels=["neg", "pos"], overlap=1,
                                                   max_overlap=1, pay_per_answer=pay, workers=policy))
    for item in ("a", "b", "c"):
        bench.pool.add(events_pb2.HumanTask(project_id=project_id, item_id=item, text=f"text {item}",
                                                     task_id=f"{project_id}:{item}", labels=["neg", "pos"], overlap=5))
    return project_id


def test_a_worker_over_the_rate_limit_is_told_to_slow_down(store):
    bench = Workbench(store, TaskPool(store, 60), requests_per_minute=6)  # a burst of 1
    token = bench.accounts.create_worker(f"fast-{uuid.uuid4().hex[:6]}")
    bench.accounts.authenticate(token)
    with pytest.raises(PoolError) as refused:
        bench.accounts.authenticate(token)
    assert refused.value.code == "RESOURCE_EXHAUSTED" and "slow down" in str(refused.value)


def test_long_work_gets_a_reminder_then_a_required_break(store):
    bench = Workbench(store, TaskPool(store, 60), requests_per_minute=600)
    project_id = project(bench, events_pb2.WorkerPolicy(max_continuous_minutes=60, break_minutes=10))
    worker = f"steady-{uuid.uuid4().hex[:6]}"
    record = bench.records.get(project_id, worker)
    now = now_ms()
    store.db.worker_quality.update_one({"_id": record["_id"]}, {"$set": {
        "session_start_ms": now - 50 * 60_000, "last_active_ms": now - 1000}})
    _, _, reminder = bench.lease(worker, project_id)
    assert "break is due in 10 minutes" in reminder
    store.db.worker_quality.update_one({"_id": record["_id"]}, {"$set": {"session_start_ms": now - 61 * 60_000}})
    with pytest.raises(PoolError) as refused:
        bench.lease(worker, project_id)
    assert refused.value.code == "RESOURCE_EXHAUSTED" and "10-minute break" in str(refused.value)
    store.db.worker_quality.update_one({"_id": record["_id"]}, {"$set": {"last_active_ms": now - 11 * 60_000}})
    assert bench.lease(worker, project_id)[2] == "", "after a break the clock starts again"


@pytest.mark.parametrize("pay_policy", ["raise", "alert"])
def test_pay_rises_to_the_minimum_wage_or_the_project_is_alerted(store, pay_policy):
    outbox = Outbox(store, None, f"welfare_{pay_policy}")
    bench = Workbench(store, TaskPool(store, 60), requests_per_minute=600, outbox=outbox)
    project_id = project(bench, events_pb2.WorkerPolicy(min_hourly_wage=15.0, pay_policy=pay_policy), pay=0.05)
    for i, seconds in enumerate((30, 30, 20)):  # 0.05 an answer at 30 s is 6.00 an hour
        record = bench.records.get(project_id, f"w{i}")
        store.db.worker_quality.update_one({"_id": record["_id"]}, {"$set": {
            "tasks_done": 10, "work_ms": 10 * seconds * 1000, "earnings": 0.5}})
    (event,) = [e.message for e in bench.review_pay() if e.message.project_id == project_id]
    assert event.kind == "low_pay" and event.value == pytest.approx(6.0) and event.threshold == 15.0
    (stored,) = [d for d in outbox.collection.find({}) if d["_id"].startswith(f"low_pay|{project_id}|")]
    assert stored["published"] is False, "the event is in the outbox before anyone publishes it"
    expected = 0.125 if pay_policy == "raise" else 0.05
    elsewhere = Workbench(store, TaskPool(store, 60), 600)  # another process: no cached pay
    assert elsewhere.pay_rates.per_answer(project_id) == pytest.approx(expected)
    if pay_policy == "raise":
        assert [e for e in bench.review_pay() if e.message.project_id == project_id] == [], "at the new pay it is fair"
    assert store.db.worker_quality.find_one({"_id": quality_key(project_id, "w0")})["tasks_done"] == 10


def test_every_answer_sends_the_worker_s_record_as_a_snapshot(store):
    bench = Workbench(store, TaskPool(store, 60), requests_per_minute=600)
    project_id = project(bench, events_pb2.WorkerPolicy(), pay=0.05)
    worker = f"snap-{uuid.uuid4().hex[:6]}"
    for _ in range(2):
        lease, _, _ = bench.lease(worker, project_id)
        outcome = bench.answer(worker, lease.handle, "pos")
    (snapshot,) = [e.message for e in outcome.quality_events if e.message.kind == "worker_quality"]
    assert outcome.response is not None and outcome.response.pay == pytest.approx(0.05)
    assert (snapshot.project_id, snapshot.worker_id) == (project_id, worker)
    record = store.db.worker_quality.find_one({"_id": quality_key(project_id, worker)})  # written by now
    assert snapshot.worker.tasks_done == record["tasks_done"] == 2
    assert snapshot.worker.earnings == pytest.approx(record["earnings"]) == pytest.approx(0.10)
    assert snapshot.worker.work_ms == record["work_ms"] and snapshot.worker.status == record["status"]

