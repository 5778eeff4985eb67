"""A worker's record on each project they work on (the `worker_quality` collection): status
(qualifying, active, blocked), gold accuracy, time, earnings and fraud signals, and the views of
it that workers and admins see. Every lease and every answer reads a record and every answer
writes one, so the reads and writes of concurrent requests go to the store in batches; the rules
that decide what is written are the crowd library's (labelstream.crowd.quality)."""

from __future__ import annotations

import math
from collections.abc import Iterator

from pymongo import UpdateOne

from labelstream.common.batching import GroupCommit
from labelstream.common.store import Store, insert_new
from labelstream.crowd import quality
from labelstream.dispatcher.pool import PoolError
from labelstream.v1 import events_pb2, services_pb2


def quality_key(project_id: str, worker_id: str) -> str:
    return f"{project_id}|{worker_id}"


def worker_policy(store: Store, project_id: str) -> events_pb2.WorkerPolicy:
    """The project's rules for its workers (the defaults where it sets none)."""
    return quality.effective_policy(store.get_project(project_id))


class WorkerRecords:
    def __init__(self, store: Store, gather_s: float = 0.0) -> None:
        self.store = store
        self.worker_quality = store.db.worker_quality
        # the worker records that concurrent requests read, and the updates they write, go to the
        # store together (one round trip each way per batch)
        self._reads = GroupCommit("dispatcher_record_read", self._read_many, gather_s=gather_s)
        self._writes = GroupCommit("dispatcher_record_write", self._write_many, gather_s=gather_s)

    # Reading and writing ------------------------------------------------------------------
    def get(self, project_id: str, worker_id: str) -> dict:
        """This worker's record on this project (created on first use)."""
        return self._reads.submit((project_id, worker_id))

    def write(self, record_id: str, update: dict) -> None:
        """An update to one record, batched with the other requests' (an answer's accounting)."""
        self._writes.submit((record_id, update))

    def _read_many(self, wanted: list[tuple[str, str]]) -> list[dict]:
        keys = sorted({quality_key(p, w) for p, w in wanted})
        found = {d["_id"]: d for d in self.worker_quality.find({"_id": {"$in": keys}})}
        fresh = [{"_id": quality_key(p, w), **quality.new_record(p, w, worker_policy(self.store, p)),
                  "session_start_ms": 0, "last_active_ms": 0, "shown_gold_correct": 0, "shown_gold_wrong": 0}
                 for p, w in dict.fromkeys(wanted) if quality_key(p, w) not in found]
        if fresh:
            existing = insert_new(self.worker_quality, fresh)  # created meanwhile by another process
            found.update((d["_id"], d) for i, d in enumerate(fresh) if i not in existing)
            if existing:
                found.update((d["_id"], d) for d in self.worker_quality.find(
                    {"_id": {"$in": sorted(fresh[i]["_id"] for i in existing)}}))
        return [dict(found[quality_key(p, w)]) for p, w in wanted]

    def _write_many(self, updates: list[tuple[str, dict]]) -> list[bool]:
        self.worker_quality.bulk_write([UpdateOne({"_id": key}, update) for key, update in updates], ordered=False)
        return [True] * len(updates)

    def mark_active(self, record_id: str, session_start_ms: int, now: int) -> None:
        """The session clock that the break rule reads: when this stretch of work began, and now."""
        self.worker_quality.update_one({"_id": record_id},
                                       {"$set": {"session_start_ms": session_start_ms, "last_active_ms": now}})

    def set_blocked(self, record_id: str, reason: str) -> None:
        self.worker_quality.update_one({"_id": record_id},
                                       {"$set": {"status": quality.BLOCKED, "blocked_reason": reason}})

    def blocked_projects(self, worker_id: str) -> frozenset[str]:
        return frozenset(d["project_id"] for d in self.worker_quality.find(
            {"worker_id": worker_id, "status": quality.BLOCKED}, {"project_id": 1}))

    def mark_suspect(self, project_id: str, worker_id: str, signal: str) -> None:
        """An outside signal (the monitor's alert): more gold for this worker."""
        record = self.get(project_id, worker_id)
        flags = record.get("flags", [])
        if signal not in flags:
            self.worker_quality.update_one({"_id": record["_id"]}, {"$set": {"flags": [*flags, signal]}})

    def experienced(self, project_id: str, min_tasks: int) -> Iterator[dict]:
        """The records of the project's workers who answered at least `min_tasks` tasks."""
        return self.worker_quality.find({"project_id": project_id, "tasks_done": {"$gte": min_tasks}})

    # Stats --------------------------------------------------------------------------------
    def stats(self, record: dict, admin: bool) -> services_pb2.WorkerStats:
        """A record as its worker sees it (gold accuracy as of the last refresh, none while
        qualifying) or as an admin does (all of it)."""
        if admin:
            accuracy = quality.gold_accuracy(record)
        elif record["status"] == quality.QUALIFYING:
            accuracy = math.nan
        else:
            shown = {"gold_correct": record["shown_gold_correct"], "gold_wrong": record["shown_gold_wrong"]}
            accuracy = quality.gold_accuracy(shown)
        out = services_pb2.WorkerStats(
            worker_id=record["worker_id"], project_id=record["project_id"], status=record["status"],
            tasks_done=record["tasks_done"], gold_accuracy=accuracy, earnings=round(record["earnings"], 4),
            hourly_rate=quality.hourly_rate(record),
            median_seconds_per_task=record["work_ms"] / 1000 / record["tasks_done"] if record["tasks_done"] else 0,
            blocked_reason=record["blocked_reason"])
        if admin:
            out.gold_answered = record["gold_correct"] + record["gold_wrong"]
            out.fraud_signals.extend([*record["fraud_signals"], *record.get("flags", [])])
            out.gold_rate = quality.gold_rate(record, worker_policy(self.store, record["project_id"]))
        return out

    def my_stats(self, worker_id: str, project_id: str = "") -> list[services_pb2.WorkerStats]:
        query: dict = {"worker_id": worker_id}
        if project_id:
            query["project_id"] = project_id
        return [self.stats(doc, admin=False) for doc in self.worker_quality.find(query).sort("project_id", 1)]

    def worker_stats(self, project_id: str, worker_id: str) -> services_pb2.WorkerStats:
        doc = self.worker_quality.find_one({"_id": quality_key(project_id, worker_id)})
        if doc is None:
            raise PoolError("NOT_FOUND", f"worker {worker_id!r} has not worked on project {project_id!r}")
        return self.stats(doc, admin=True)

    def list_workers(self, project_id: str) -> list[services_pb2.WorkerStats]:
        return [self.stats(doc, admin=True)
                for doc in self.worker_quality.find({"project_id": project_id}).sort("worker_id", 1)]
