"""MongoDB state: collections, the indexes that make every write idempotent, and projects.

Every document that a consumed message creates has an _id derived from the message's key
(item, task, (task, worker)), so replaying a message after a crash writes nothing new.
Documents are append-only or updated with $set/$inc only: the local MongoDB-protocol server
does not implement $push/$addToSet correctly (shared/STACK.md).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pymongo
from google.protobuf import json_format
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

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

    def ensure_indexes(self, collections: Collections) -> None:
        """Create the indexes of the collections a service owns (its `storage.COLLECTIONS`)."""
        for collection, indexes in collections.items():
            for index in indexes:
                self.db[collection].create_index(index.keys, unique=index.unique)

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
