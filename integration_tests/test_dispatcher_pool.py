"""The task pool against the real store: leases, expiry, one answer per worker, refusals."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from labelstream.common.settings import Settings
from labelstream.common.store import Store
from labelstream.dispatcher import storage as dispatcher_storage
from labelstream.dispatcher.pool import PoolError, TaskPool
from labelstream.v1 import events_pb2

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(scratch_mongodb_uri):
    database = f"pool_{uuid.uuid4().hex[:8]}"
    store = Store(Settings.from_env({"LABELSTREAM_MONGODB_URI": scratch_mongodb_uri,
                                     "LABELSTREAM_MONGODB_DATABASE": database}))
    store.ensure_indexes(dispatcher_storage.COLLECTIONS)
    yield TaskPool(store, lease_seconds=60)
    store.client.drop_database(database)
    store.close()


def pool_store(pool: TaskPool) -> Store:
    """Another process's store client on the same database."""
    database = pool.tasks.database
    host, port = database.client.address
    return Store(Settings.from_env({"LABELSTREAM_MONGODB_URI": f"mongodb://{host}:{port}",
                                    "LABELSTREAM_MONGODB_DATABASE": database.name}))


# Each test's tasks belong to a project of their own, so no test sees another's tasks.
P = ""


@pytest.fixture(autouse=True)
def fresh_project():
    global P
    P = f"pool-{uuid.uuid4().hex[:8]}"


def task(task_id: str, overlap: int = 2, priority: float = 0.5) -> events_pb2.HumanTask:
    return events_pb2.HumanTask(project_id=P, item_id=task_id, task_id=f"{P}:{task_id}", text=f"text {task_id}",
                                labels=["neg", "pos"], overlap=overlap, priority=priority)


def test_overlap_distinct_workers_and_priority_order(pool):
    pool.add(task("low", priority=0.1))
    pool.add(task("high", priority=0.9))
    pool.add(task("high", priority=0.9))  # a replayed message changes nothing
    first = pool.lease("w1", P)
    assert first.task_id == f"{P}:high"
    second = pool.lease("w1", P)
    assert second.task_id == f"{P}:low", "a worker never gets the same task twice"
    assert pool.lease("w1", P) is None
    assert pool.lease("w2", P).task_id == f"{P}:high"
    assert pool.lease("w3", P).task_id == f"{P}:low"
    assert pool.lease("w4", P) is None, "each task had exactly two slots"


def test_answers_are_checked(pool):
    pool.add(task("a"))
    lease = pool.lease("w1", P)
    with pytest.raises(PoolError) as refused:
        pool.answer("w2", lease.handle, "pos")
    assert refused.value.code == "PERMISSION_DENIED"
    with pytest.raises(PoolError) as refused:
        pool.answer("w1", lease.handle, "maybe")
    assert refused.value.code == "INVALID_ARGUMENT"
    response = pool.answer("w1", lease.handle, "pos").response
    assert (response.worker_id, response.label, response.item_id) == ("w1", "pos", "a")
    with pytest.raises(PoolError) as refused:
        pool.answer("w1", lease.handle, "neg")
    assert refused.value.code == "ALREADY_EXISTS"
    assert [r.worker_id for r, _ in pool.unpublished(older_than_ms=-1000)] == ["w1"]
    pool.mark_published(lease.task_id, "w1")
    assert pool.unpublished(older_than_ms=-1000) == []


def test_expired_lease_is_refused_and_its_slot_reassigned(pool):
    pool.lease_ms = 200
    pool.add(task("a", overlap=1))
    lease = pool.lease("w1", P)
    assert pool.lease("w2", P) is None
    time.sleep(0.3)
    with pytest.raises(PoolError) as refused:
        pool.answer("w1", lease.handle, "pos")
    assert refused.value.code == "FAILED_PRECONDITION"
    assert pool.reclaim_expired() == 1
    assert pool.lease("w2", P).task_id == f"{P}:a"


def test_a_named_annotator_whose_lease_expired_can_take_the_task_up_again(pool):
    """Only they may answer it (UKPConvArg1's replay: a lease call that timed out at the client
    after the store had leased it left the pair waiting for good). Anyone else still may not."""
    pool.lease_ms = 200
    named = task("a", overlap=1)
    named.annotators.extend(["w1"])
    pool.add(named)
    first = pool.lease("w1", P)
    time.sleep(0.3)
    assert pool.reclaim_expired() == 1
    assert pool.lease("w2", P) is None
    again = pool.lease("w1", P)
    assert again is not None and again.task_id == first.task_id
    pool.answer("w1", again.handle, "pos")
    assert pool.lease("w1", P) is None


def test_more_votes_raise_the_overlap(pool):
    pool.add(task("a", overlap=1))
    assert pool.lease("w1", P) is not None and pool.lease("w2", P) is None
    pool.add(events_pb2.HumanTask(project_id=P, item_id="a", task_id=f"{P}:a", overlap=2))
    assert pool.lease("w2", P).task_id == f"{P}:a"


def test_a_batch_of_tasks_goes_in_at_once_with_replays_and_raised_overlaps(pool):
    pool.add(task("old", overlap=1, priority=0.9))
    assert pool.lease("w1", P).task_id == f"{P}:old"
    pool.add_many([task("new", overlap=2, priority=0.5),
                   task("old", overlap=1, priority=0.9),   # replayed: changes nothing
                   task("new", overlap=2, priority=0.5),   # twice in one batch: one task
                   task("old", overlap=3, priority=0.9),   # more votes: two more slots
                   task("old", overlap=2, priority=0.9)],  # an older request for fewer: no change
                  traceparents=["00-" + "1" * 32 + "-" + "2" * 16 + "-01"] * 5)
    stored = pool.tasks.find_one({"_id": f"{P}:new"})
    assert stored["open_slots"] == 2 and stored["traceparent"].startswith("00-111")
    assert pool.tasks.find_one({"_id": f"{P}:old"})["overlap"] == 3
    leased = Counter(pool.lease(w, P).task_id for w in ("w2", "w3", "w4", "w5"))
    assert leased == {f"{P}:old": 2, f"{P}:new": 2}
    assert pool.lease("w6", P) is None


def test_a_task_added_later_is_offered_in_its_place_in_lease_order(pool):
    for name, priority in (("a", 0.9), ("b", 0.5)):
        pool.add(task(name, overlap=3, priority=priority))
    assert pool.lease("w1", P).task_id == f"{P}:a"
    pool.add_many([task("urgent", overlap=1, priority=0.95), task("later", overlap=1, priority=0.1)])
    assert pool.lease("w2", P).task_id == f"{P}:urgent", "a new task joins the open list in lease order"
    assert pool.lease("w3", P).task_id == f"{P}:a"
    assert [pool.lease("w1", P).task_id, pool.lease("w1", P).task_id] == [f"{P}:b", f"{P}:later"]


def test_a_process_that_takes_over_loads_open_tasks_running_leases_and_who_held_what(pool):
    """What one dispatcher process did is in the store for the next (after a crash, or when its
    partition moves): slots taken, leases running (answerable, expiring) and who held each task."""
    pool.add(task("a", overlap=2))
    pool.add(task("b", overlap=1, priority=0.1))
    running = pool.lease("w1", P)
    answered = pool.lease("w2", P)
    pool.answer("w2", answered.handle, "pos")
    assert running.task_id == answered.task_id == f"{P}:a"
    successor = TaskPool(pool_store(pool), lease_seconds=60, owned=())
    assert successor.lease("w3", P) is None, "a process owns no task before its partitions are given to it"
    assert successor.own({0}) >= 2
    assert successor.lease("w1", P).task_id == f"{P}:b", "w1 holds a, and a has no open slot"
    with pytest.raises(PoolError) as refused:
        successor.answer("w2", answered.handle, "neg")
    assert refused.value.code == "ALREADY_EXISTS"
    successor.answer("w1", running.handle, "neg")  # the lease the first process gave
    assert successor.lease("w4", P) is None, "every slot is taken"
    assert pool.responses.count_documents({"task_id": f"{P}:a"}) == 2


def test_a_task_of_a_partition_not_owned_is_left_to_its_owner(pool):
    owner = TaskPool(pool_store(pool), lease_seconds=60, owned={1})
    owner.add_many([task("mine", overlap=1), task("theirs", overlap=1)], partitions=[1, 2])
    assert owner.lease("w1", P).task_id == f"{P}:mine"
    assert owner.lease("w2", P) is None
    other = TaskPool(pool_store(pool), lease_seconds=60, owned=())
    other.own({2})
    assert other.lease("w2", P).task_id == f"{P}:theirs"
    owner.own({1, 2})  # a rebalance gives it partition 2 as well: that task is full now
    assert owner.lease("w3", P) is None


def test_a_lease_that_expires_while_its_task_is_full_reopens_the_task(pool):
    pool.lease_ms = 200
    pool.add(task("a", overlap=1))
    assert pool.lease("w1", P) is not None
    pool.lease_ms = 60_000
    assert pool.lease("w2", P) is None
    time.sleep(0.3)
    assert pool.reclaim_expired() == 1
    assert pool.tasks.find_one({"_id": f"{P}:a"})["open_slots"] == 1
    assert pool.lease("w2", P).task_id == f"{P}:a"
    assert pool.lease("w1", P) is None, "w1 held it once: never again"


def test_concurrent_leases_and_answers_share_store_batches_and_keep_every_rule(pool):
    """Leases and answers that arrive together go to the store together (group commit): every slot
    is leased once, no worker holds a task twice, and every answer is recorded once."""
    tasks, overlap, workers = 30, 3, 24
    for i in range(tasks):
        pool.add(task(f"c{i}", overlap=overlap, priority=i / tasks))
    lease_batches_before = pool._lease_batches.batches

    def work(worker: str) -> list[str]:
        answered = []
        while (lease := pool.lease(worker, P)) is not None:
            pool.answer(worker, lease.handle, "pos")
            answered.append(lease.task_id)
        return answered

    with ThreadPoolExecutor(workers) as executor:
        by_worker = dict(zip(range(workers), executor.map(work, [f"cw{i}" for i in range(workers)]), strict=True))
    answered = [t for tasks_of_worker in by_worker.values() for t in tasks_of_worker]
    assert len(answered) == tasks * overlap, "every slot was leased and answered exactly once"
    assert all(len(set(ts)) == len(ts) for ts in by_worker.values()), "a worker held a task twice"
    assert Counter(answered) == {f"{P}:c{i}": overlap for i in range(tasks)}
    assert pool.responses.count_documents({"task_id": {"$regex": f"^{P}:"}}) == tasks * overlap
    assert pool.tasks.count_documents({"project_id": P, "open_slots": {"$ne": 0}}) == 0
    leases = pool._lease_batches.batches - lease_batches_before
    assert leases <= (tasks * overlap + workers) // 2, f"leases rarely shared a store batch ({leases} batches)"
