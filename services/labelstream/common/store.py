"""MongoDB state: collections, the indexes that make every write idempotent, and projects.

Every document that a consumed message creates has an _id derived from the message's key
(item, task, (task, worker)), so replaying a message after a crash writes nothing new.
Documents are append-only or updated with $set/$inc only: the local MongoDB-protocol server
does not implement $push/$addToSet correctly (shared/STACK.md).
"""

from __future__ import annotations

import re
import threading
import time

import pymongo
from google.protobuf import json_format
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from labelstream.common.settings import Settings
from labelstream.v1 import events_pb2

PROJECT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")  # \Z: "$" lets a final newline by


def item_key(project_id: str, item_id: str) -> str:
    """Store key of an item; unambiguous because project ids never contain ':'."""
    return f"{project_id}:{item_id}"


def vote_key(task_id: str, worker_id: str) -> str:
    return f"{task_id}|{worker_id}"


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


class Store:
    def __init__(self, settings: Settings, app_name: str = "labelstream") -> None:
        self.client: MongoClient = MongoClient(
            settings.mongodb_uri, appname=app_name, serverSelectionTimeoutMS=10_000, tz_aware=False)
        self.db: Database = self.client[settings.mongodb_database]
        self._project_cache: dict[str, tuple[float, events_pb2.ProjectSpec | None]] = {}
        self._cache_seconds = settings.project_cache_seconds
        self._lock = threading.Lock()

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.client.admin.command("ping")
                return
            except PyMongoError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"MongoDB is not reachable: {exc}") from exc
                time.sleep(0.5)

    def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether the store answers within `timeout_s` (a health probe; never raises)."""
        try:
            with pymongo.timeout(timeout_s):  # bounds server selection too, not only the command
                self.client.admin.command("ping")
            return True
        except PyMongoError:
            return False

    def ensure_indexes(self) -> None:
        for collection, indexes in INDEXES.items():
            for keys, unique in indexes:
                self.db[collection].create_index(keys, unique=unique)

    # Projects are read by every service; a short cache keeps the store off the hot path.
    def put_project(self, spec: events_pb2.ProjectSpec) -> bool:
        doc = json_format.MessageToDict(spec, preserving_proto_field_name=True)
        result = self.db.projects.replace_one({"_id": spec.project_id}, {"_id": spec.project_id, **doc},
                                              upsert=True)
        with self._lock:
            self._project_cache.pop(spec.project_id, None)
        return result.upserted_id is not None

    def get_project(self, project_id: str) -> events_pb2.ProjectSpec | None:
        now = time.monotonic()
        with self._lock:
            cached = self._project_cache.get(project_id)
        if cached and now - cached[0] < self._cache_seconds:
            return cached[1]
        doc = self.db.projects.find_one({"_id": project_id})
        spec = None
        if doc is not None:
            doc.pop("_id")
            spec = json_format.ParseDict(doc, events_pb2.ProjectSpec(), ignore_unknown_fields=True)
            with self._lock:  # unknown projects are not cached: they may be applied any moment
                self._project_cache[project_id] = (now, spec)
        return spec

    def close(self) -> None:
        self.client.close()


_UNIQUE = True
INDEXES: dict[str, list[tuple[list[tuple[str, int]], bool]]] = {
    "projects": [],
    "items": [([("project_id", ASCENDING), ("item_id", ASCENDING)], _UNIQUE)],
    "predictions": [([("project_id", ASCENDING), ("item_id", ASCENDING)], _UNIQUE)],
    "decisions": [([("project_id", ASCENDING), ("item_id", ASCENDING)], _UNIQUE),
                  ([("project_id", ASCENDING), ("route", ASCENDING)], False)],
    "verified": [([("project_id", ASCENDING), ("model", ASCENDING)], False)],
    "routing_models": [],
    "routing_overrides": [],
    "excluded_workers": [([("project_id", ASCENDING)], False)],
    "active_alerts": [([("project", ASCENDING)], False)],
    "head_training": [([("project_id", ASCENDING)], False)],
    "head_refits": [],
    "tasks": [([("status", ASCENDING), ("priority", DESCENDING), ("created_ms", ASCENDING)], False),
              ([("project_id", ASCENDING), ("item_id", ASCENDING)], _UNIQUE)],
    "assignments": [([("task_id", ASCENDING), ("worker_id", ASCENDING)], _UNIQUE),
                    ([("handle", ASCENDING)], _UNIQUE),
                    ([("worker_id", ASCENDING), ("project_id", ASCENDING), ("gold", ASCENDING)], False),
                    ([("status", ASCENDING), ("lease_expires_ms", ASCENDING)], False)],
    "gold": [([("project_id", ASCENDING)], False)],
    "workers": [([("token_sha256", ASCENDING)], _UNIQUE)],
    "worker_quality": [([("project_id", ASCENDING)], False)],
    "pay_rates": [],
    "responses": [([("task_id", ASCENDING), ("worker_id", ASCENDING)], _UNIQUE),
                  ([("published", ASCENDING)], False)],
    "votes": [([("task_id", ASCENDING), ("worker_id", ASCENDING)], _UNIQUE)],
    "vote_requests": [],
    "final_labels": [([("project_id", ASCENDING), ("item_id", ASCENDING)], _UNIQUE)],
    "monitor_events": [([("project_id", ASCENDING), ("kind", ASCENDING)], False)],
}
