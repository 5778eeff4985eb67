"""The task pool in the store: tasks with open slots, per-(task, worker) assignments with
leases, and an outbox of answers.

Concurrency without transactions: every claim is a compare-and-set on one document
(`open_slots` of a task, `status` of an assignment) and every (task, worker) pair has a
unique key, so concurrent dispatchers never hand one slot out twice and no worker
answers a task twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from labelstream.common.kafka import SCHEMA_VERSION
from labelstream.common.store import Store, vote_key
from labelstream.common.telemetry import now_ms, traceparent
from labelstream.v1 import events_pb2

CANDIDATES_PER_LEASE = 50


class PoolError(Exception):
    """A refused request; `code` names the gRPC status it maps to."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Lease:
    task_id: str
    project_id: str
    text: str
    labels: list[str]
    expires_at_ms: int


class TaskPool:
    def __init__(self, store: Store, lease_seconds: int) -> None:
        self.tasks = store.db.tasks
        self.assignments = store.db.assignments
        self.responses = store.db.responses
        self.lease_ms = lease_seconds * 1000

    def add(self, task: events_pb2.HumanTask) -> None:
        """Create the task, or raise its overlap when the aggregator asks for more votes."""
        self.tasks.update_one({"_id": task.task_id}, {"$setOnInsert": {
            "project_id": task.project_id, "item_id": task.item_id, "text": task.text,
            "labels": list(task.labels), "overlap": task.overlap, "open_slots": task.overlap,
            "priority": task.priority, "status": "open", "created_ms": now_ms(),
            "ingested_at_ms": task.ingested_at_ms, "traceparent": traceparent(),
            # never shown to workers: only copied onto their responses for the aggregator
            "model_label": task.model_label if task.model_votes else "",
        }}, upsert=True)
        while True:
            doc = self.tasks.find_one({"_id": task.task_id})
            if doc is None or doc["overlap"] >= task.overlap:
                return
            extra = task.overlap - doc["overlap"]
            if self.tasks.update_one({"_id": task.task_id, "overlap": doc["overlap"]},
                                     {"$set": {"overlap": task.overlap}, "$inc": {"open_slots": extra}}
                                     ).modified_count:
                return

    def lease(self, worker_id: str, project_id: str = "") -> Lease | None:
        query: dict = {"status": "open", "open_slots": {"$gt": 0}}
        if project_id:
            query["project_id"] = project_id
        candidates = list(self.tasks.find(query).sort(
            [("priority", DESCENDING), ("created_ms", ASCENDING)]).limit(CANDIDATES_PER_LEASE))
        if not candidates:
            return None
        seen = {a["task_id"] for a in self.assignments.find(
            {"worker_id": worker_id, "task_id": {"$in": [t["_id"] for t in candidates]}}, {"task_id": 1})}
        for task in candidates:
            if task["_id"] in seen:
                continue
            claimed = self.tasks.update_one({"_id": task["_id"], "open_slots": task["open_slots"]},
                                            {"$inc": {"open_slots": -1}, "$set": {"claimed_at_ms": now_ms()}}
                                            ).modified_count
            if not claimed:
                continue  # another worker took that slot first
            expires = now_ms() + self.lease_ms
            try:
                self.assignments.insert_one({
                    "_id": vote_key(task["_id"], worker_id), "task_id": task["_id"], "worker_id": worker_id,
                    "project_id": task["project_id"], "status": "leased", "leased_at_ms": now_ms(),
                    "lease_expires_ms": expires})
            except DuplicateKeyError:
                self.tasks.update_one({"_id": task["_id"]}, {"$inc": {"open_slots": 1}})
                continue
            return Lease(task["_id"], task["project_id"], task["text"], list(task["labels"]), expires)
        return None

    def answer(self, worker_id: str, task_id: str, label: str) -> tuple[events_pb2.HumanResponse, str]:
        """Record an answer; returns the response to publish and the task's trace context."""
        key = vote_key(task_id, worker_id)
        assignment = self.assignments.find_one({"_id": key})
        if assignment is None:
            raise PoolError("PERMISSION_DENIED", f"task {task_id!r} is not leased to worker {worker_id!r}")
        if assignment["status"] == "answered":
            raise PoolError("ALREADY_EXISTS", f"worker {worker_id!r} already answered task {task_id!r}")
        now = now_ms()
        if assignment["lease_expires_ms"] < now:
            raise PoolError("FAILED_PRECONDITION", "the lease on this task expired; lease a new task")
        task = self.tasks.find_one({"_id": task_id})
        if task is None:
            raise PoolError("NOT_FOUND", f"task {task_id!r} does not exist")
        if label not in task["labels"]:
            raise PoolError("INVALID_ARGUMENT", f"label {label!r} is not one of {task['labels']}")
        response = events_pb2.HumanResponse(
            schema_version=SCHEMA_VERSION, project_id=task["project_id"], item_id=task["item_id"],
            task_id=task_id, worker_id=worker_id, label=label, answered_at_ms=now,
            duration_ms=now - assignment["leased_at_ms"], ingested_at_ms=task.get("ingested_at_ms", 0),
            task_overlap=task["overlap"], model_label=task.get("model_label", ""))
        try:  # the outbox record first: once it exists, the answer will be published
            self.responses.insert_one({
                "_id": key, "task_id": task_id, "worker_id": worker_id, "payload": response.SerializeToString(),
                "traceparent": task.get("traceparent", ""), "published": False, "created_ms": now})
        except DuplicateKeyError as exc:
            raise PoolError("ALREADY_EXISTS", f"worker {worker_id!r} already answered task {task_id!r}") from exc
        answered = self.assignments.update_one(
            {"_id": key, "status": "leased"},
            {"$set": {"status": "answered", "label": label, "answered_at_ms": now}}).modified_count
        if not answered:  # the lease was reclaimed between our checks
            self.responses.delete_one({"_id": key})
            raise PoolError("FAILED_PRECONDITION", "the lease on this task expired; lease a new task")
        return response, task.get("traceparent", "")

    def mark_published(self, task_id: str, worker_id: str) -> None:
        self.responses.update_one({"_id": vote_key(task_id, worker_id)}, {"$set": {"published": True}})

    def unpublished(self, older_than_ms: int) -> list[tuple[events_pb2.HumanResponse, str]]:
        """Answers whose publish did not complete (a crash): the outbox sweep sends them again."""
        cutoff = now_ms() - older_than_ms
        out = []
        for doc in self.responses.find({"published": False, "created_ms": {"$lt": cutoff}}).limit(500):
            response = events_pb2.HumanResponse()
            response.ParseFromString(doc["payload"])
            out.append((response, doc.get("traceparent", "")))
        return out

    def repair_lost_slots(self, quiet_ms: int = 10_000, window_ms: int = 600_000) -> int:
        """Give back slots whose claim never became an assignment (the process died between the
        two writes). Only tasks claimed between `window_ms` and `quiet_ms` ago are checked, so a
        claim still in flight is never mistaken for a lost one."""
        now = now_ms()
        repaired = 0
        for task in self.tasks.find({"status": "open", "claimed_at_ms": {"$gt": now - window_ms,
                                                                          "$lt": now - quiet_ms}}).limit(500):
            free = task["overlap"] - self.assignments.count_documents({"task_id": task["_id"]})
            if free > task["open_slots"] and self.tasks.update_one(
                    {"_id": task["_id"], "open_slots": task["open_slots"], "claimed_at_ms": task["claimed_at_ms"]},
                    {"$set": {"open_slots": free}}).modified_count:
                repaired += free - task["open_slots"]
        return repaired

    def reclaim_expired(self) -> int:
        """Free the slots of leases that ran out without an answer."""
        reclaimed = 0
        for assignment in self.assignments.find(
                {"status": "leased", "lease_expires_ms": {"$lt": now_ms()}}).limit(500):
            if self.responses.find_one({"_id": assignment["_id"]}) is not None:
                self.assignments.update_one({"_id": assignment["_id"], "status": "leased"},
                                            {"$set": {"status": "answered"}})
                continue
            if self.assignments.delete_one({"_id": assignment["_id"], "status": "leased"}).deleted_count:
                self.tasks.update_one({"_id": assignment["task_id"]}, {"$inc": {"open_slots": 1}})
                reclaimed += 1
        return reclaimed

