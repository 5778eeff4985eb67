"""MongoDB state: collections, the indexes that make every write idempotent, and projects.

Every document that a consumed message creates has an _id derived from the message's key
(item, task, (task, worker)), so replaying a message after a crash writes nothing new.
Documents are append-only or updated with $set/$inc only: the local MongoDB-protocol server
does not implement $push/$addToSet correctly (shared/STACK.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pymongo
from cachetools import TTLCache
from google.protobuf import json_format
from pymongo import MongoClient, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from labelstream.common.failures import until_reachable
from labelstream.common.settings import Settings
from labelstream.v1 import events_pb2


@dataclass(frozen=True)
class Index:
    keys: list[tuple[str, int]]
    unique: bool = False


# The collections a service owns (it alone writes them), with their indexes: each service declares
# its own in <service>/storage.py and creates only those.
Collections = dict[str, list[Index]]


def item_key(project_id: str, item_id: str) -> str:
    """Store key of an item; unambiguous because project ids never contain ':'."""
    return f"{project_id}:{item_id}"


def vote_key(task_id: str, worker_id: str) -> str:
    return f"{task_id}|{worker_id}"


def worker_key(project_id: str, worker_id: str) -> str:
    """The _id of a copy of a worker's record on a project (the dispatcher's own records use the same form)."""
    return f"{project_id}|{worker_id}"


def worker_snapshot_write(event: events_pb2.QualityEvent) -> UpdateOne:
    """Keep a `worker_quality` snapshot (quality.events) as the reader's own copy of the worker's
    record, `_id` "<project>|<worker>" with the dispatcher's field names. Counters only grow, so
    `$max` keeps the newest of snapshots that two dispatcher replicas publish out of order, and a
    replayed old one changes nothing."""
    snapshot = event.worker
    return UpdateOne({"_id": worker_key(event.project_id, event.worker_id)}, {
        "$max": {"tasks_done": snapshot.tasks_done, "gold_correct": snapshot.gold_correct,
                 "gold_wrong": snapshot.gold_wrong, "earnings": snapshot.earnings, "work_ms": snapshot.work_ms,
                 "at_ms": event.at_ms},
        "$set": {"project_id": event.project_id, "worker_id": event.worker_id, "status": snapshot.status,
                 "blocked_reason": snapshot.blocked_reason, "fraud_signals": list(snapshot.fraud_signals)}},
        upsert=True)


def insert_once(collection: Collection, doc: dict) -> tuple[dict, bool]:
    """Insert `doc` unless a document with its _id exists; return the stored one and whether
    this call inserted it. (Plain insert + read: find_one_and_update with $setOnInsert and
    upsert stores only the _id on the local MongoDB-protocol server.)"""
    try:
        collection.insert_one(doc)
        return doc, True
    except DuplicateKeyError:
        stored = collection.find_one({"_id": doc["_id"]})
        if stored is None:  # deleted in between: nothing else writes these, so retry once
            collection.insert_one(doc)
            return doc, True
        return stored, False


def insert_new(collection: Collection, docs: list[dict]) -> set[int]:
    """Insert `docs` in one unordered command; return the positions of those whose _id (or other
    unique key) existed already. Any other write error is raised."""
    try:
        collection.insert_many(docs, ordered=False)
    except BulkWriteError as error:
        errors = error.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        return {e["index"] for e in errors}
    return set()


PROJECT_CACHE_SIZE = 4096


class Store:
    def __init__(self, settings: Settings, app_name: str = "labelstream") -> None:
        self.client: MongoClient = MongoClient(
            settings.mongodb_uri, appname=app_name, serverSelectionTimeoutMS=10_000, tz_aware=False)
        self.db: Database = self.client[settings.mongodb_database]
        # Projects are read by every service on every record; a short cache keeps the store off
        # the hot path (a changed project is seen within the TTL).
        self._projects: TTLCache[str, events_pb2.ProjectSpec] = TTLCache(
            maxsize=PROJECT_CACHE_SIZE, ttl=settings.project_cache_seconds)
        self._lock = threading.Lock()

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        try:
            until_reachable(timeout_s, PyMongoError)(self.client.admin.command, "ping")
        except PyMongoError as exc:
            raise RuntimeError(f"MongoDB is not reachable after {timeout_s:.0f}s: {exc}; check "
                               "LABELSTREAM_MONGODB_URI and that the store is up") from exc

    def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether the store answers within `timeout_s` (a health probe; never raises)."""
        try:
            with pymongo.timeout(timeout_s):  # bounds server selection too, not only the command
                self.client.admin.command("ping")
            return True
        except PyMongoError:
            return False

    def ensure_indexes(self, collections: Collections) -> None:
        """Create the indexes of the collections a service owns (its `storage.COLLECTIONS`)."""
        for collection, indexes in collections.items():
            for index in indexes:
                self.db[collection].create_index(index.keys, unique=index.unique)

    def put_project(self, spec: events_pb2.ProjectSpec) -> bool:
        doc = json_format.MessageToDict(spec, preserving_proto_field_name=True)
        result = self.db.projects.replace_one({"_id": spec.project_id}, {"_id": spec.project_id, **doc},
                                              upsert=True)
        with self._lock:
            self._projects.pop(spec.project_id, None)
        return result.upserted_id is not None

    def get_project(self, project_id: str) -> events_pb2.ProjectSpec | None:
        with self._lock:
            cached = self._projects.get(project_id)
        if cached is not None:
            return cached
        doc = self.db.projects.find_one({"_id": project_id})
        spec = None
        if doc is not None:
            doc.pop("_id")
            spec = json_format.ParseDict(doc, events_pb2.ProjectSpec(), ignore_unknown_fields=True)
            with self._lock:  # unknown projects are not cached: they may be applied any moment
                self._projects[project_id] = spec
        return spec

    def project_ids(self, where: dict | None = None) -> list[str]:
        """The applied projects' ids, optionally of those whose stored spec matches `where`. With
        get_project, the one read of a collection another service (ingest) owns: every service
        needs the project contract, and both go through here so that a move to an API or a
        compacted topic changes one class."""
        return sorted(doc["_id"] for doc in self.db.projects.find(where or {}, {"_id": 1}))

    def close(self) -> None:
        self.client.close()
