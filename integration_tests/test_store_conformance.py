"""What the services need from MongoDB, checked against the configured server.

Runs against LABELSTREAM_TEST_MONGODB_URI when set (e.g. a real MongoDB), else against the local
stack's MongoDB-protocol server, so a store can be vetted before labelstream relies on it.
"""

from __future__ import annotations

import os
import threading
import uuid

import pytest
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from labelstream.aggregator import storage as aggregator_storage
from labelstream.common.settings import Settings
from labelstream.common.store import Store, insert_once
from labelstream.dispatcher import storage as dispatcher_storage
from labelstream.inference import storage as inference_storage
from labelstream.ingest import storage as ingest_storage
from labelstream.monitor import storage as monitor_storage
from labelstream.router import storage as router_storage

pytestmark = pytest.mark.integration
# every service's collections: the store must hold each service's indexes
ALL_COLLECTIONS = {name: indexes for module in (ingest_storage, inference_storage, router_storage, dispatcher_storage,
                                                aggregator_storage, monitor_storage)
                   for name, indexes in module.COLLECTIONS.items()}


@pytest.fixture
def store(scratch_mongodb_uri):
    uri = os.environ.get("LABELSTREAM_TEST_MONGODB_URI", scratch_mongodb_uri)
    database = f"conformance_{uuid.uuid4().hex[:8]}"
    store = Store(Settings.from_env({"LABELSTREAM_MONGODB_URI": uri, "LABELSTREAM_MONGODB_DATABASE": database}))
    store.ensure_indexes(ALL_COLLECTIONS)
    yield store
    store.client.drop_database(database)
    store.close()


def test_compound_unique_index_rejects_a_second_vote(store):
    store.db.votes.insert_one({"_id": "a", "task_id": "t", "worker_id": "w"})
    with pytest.raises(DuplicateKeyError):
        store.db.votes.insert_one({"_id": "b", "task_id": "t", "worker_id": "w"})


def test_insert_once_keeps_the_first_document(store):
    first, inserted = insert_once(store.db.final_labels, {"_id": "p:1", "project_id": "p", "item_id": "1",
                                                          "label": "pos"})
    again, inserted_again = insert_once(store.db.final_labels, {"_id": "p:1", "project_id": "p", "item_id": "1",
                                                                "label": "neg"})
    assert (inserted, inserted_again) == (True, False)
    assert again["label"] == "pos" and store.db.final_labels.count_documents({}) == 1


def test_set_on_insert_upsert_writes_once(store):
    for value in (1, 2):
        store.db.tasks.update_one({"_id": "t"}, {"$setOnInsert": {"project_id": "p", "item_id": "i", "v": value}},
                                  upsert=True)
    assert store.db.tasks.find_one({"_id": "t"})["v"] == 1


def test_unordered_bulk_upserts_and_duplicate_inserts(store):
    store.db.predictions.bulk_write([UpdateOne({"_id": f"p:{i}"}, {"$setOnInsert": {
        "project_id": "p", "item_id": str(i)}}, upsert=True) for i in range(5)], ordered=False)
    assert store.db.predictions.count_documents({"project_id": "p"}) == 5
    with pytest.raises(BulkWriteError) as error:
        store.db.items.insert_many([{"_id": "x", "project_id": "p", "item_id": "x"},
                                    {"_id": "x", "project_id": "p", "item_id": "x"},
                                    {"_id": "y", "project_id": "p", "item_id": "y"}], ordered=False)
    assert error.value.details["nInserted"] == 2


def test_compare_and_set_claims_each_slot_once_under_concurrency(store):
    store.db.tasks.insert_one({"_id": "t", "project_id": "p", "item_id": "i", "open_slots": 3})
    claims: list[int] = []

    def claim() -> None:
        for _ in range(20):
            doc = store.db.tasks.find_one({"_id": "t"})
            if doc["open_slots"] <= 0:
                return
            if store.db.tasks.update_one({"_id": "t", "open_slots": doc["open_slots"]},
                                         {"$inc": {"open_slots": -1}}).modified_count:
                claims.append(1)
                return

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claims) == 3 and store.db.tasks.find_one({"_id": "t"})["open_slots"] == 0


def test_sorted_limited_query_on_nested_and_ranged_fields(store):
    store.db.tasks.insert_many([{"_id": str(i), "project_id": "p", "item_id": str(i), "status": "open",
                                 "open_slots": i % 3, "priority": i / 10, "created_ms": i} for i in range(10)])
    found = list(store.db.tasks.find({"status": "open", "open_slots": {"$gt": 0}}).sort(
        [("priority", -1), ("created_ms", 1)]).limit(3))
    assert [d["_id"] for d in found] == ["8", "7", "5"]


def test_update_many_by_id_list(store):
    store.db.predictions.insert_many([{"_id": f"p:{i}", "project_id": "p", "item_id": str(i), "published": False}
                                      for i in range(6)])
    result = store.db.predictions.update_many({"_id": {"$in": ["p:1", "p:3", "p:5"]}},
                                              {"$set": {"published": True}})
    assert result.modified_count == 3
    assert sorted(d["_id"] for d in store.db.predictions.find({"published": True})) == ["p:1", "p:3", "p:5"]


def test_batched_claim_marks_what_it_took(store):
    """The dispatcher's batched lease claims a slot on many tasks in one update and reads back, by
    the claim's token, which of them it took."""
    tasks = store.db.conformance_tasks
    tasks.insert_many([{"_id": f"t{i}", "open_slots": 1 + i % 2} for i in range(4)])
    first = tasks.update_many({"_id": {"$in": ["t0", "t1", "t2"]}, "open_slots": {"$gt": 0}},
                              {"$inc": {"open_slots": -1}, "$set": {"claim": "A"}})
    second = tasks.update_many({"_id": {"$in": ["t0", "t1", "t2"]}, "open_slots": {"$gt": 0}},
                               {"$inc": {"open_slots": -1}, "$set": {"claim": "B"}})
    assert (first.modified_count, second.modified_count) == (3, 1)
    assert {d["_id"]: d["open_slots"] for d in tasks.find({"claim": "A"})} == {"t0": 0, "t2": 0}
    assert [d["_id"] for d in tasks.find({"claim": "B"})] == ["t1"]


def test_unordered_insert_many_names_each_duplicate_and_bulk_updates_count_matches(store):
    """Batched inserts learn which documents existed; batched compare-and-set updates how many matched."""
    docs = store.db.conformance_docs
    docs.insert_many([{"_id": "a", "s": "leased"}, {"_id": "b", "s": "leased"}])
    with pytest.raises(BulkWriteError) as failed:
        docs.insert_many([{"_id": "x"}, {"_id": "a"}, {"_id": "y"}, {"_id": "b"}], ordered=False)
    assert failed.value.details["nInserted"] == 2
    assert [(e["index"], e["code"]) for e in failed.value.details["writeErrors"]] == [(1, 11000), (3, 11000)]
    result = docs.bulk_write([UpdateOne({"_id": "a", "s": "leased"}, {"$set": {"s": "answered", "t": "T"}}),
                              UpdateOne({"_id": "b", "s": "gone"}, {"$set": {"s": "answered", "t": "T"}})],
                             ordered=False)
    assert result.modified_count == 1
    assert [d["_id"] for d in docs.find({"t": "T"})] == ["a"]
