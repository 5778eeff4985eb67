"""The task pool in the store: tasks with open slots, hidden gold items, per-(task, worker)
assignments with leases, and an outbox of answers.

What a worker holds is an opaque handle, random and alike for real and gold tasks, so
nothing a worker receives tells the two apart.

Concurrency without transactions: every claim is a compare-and-set on one document
(`open_slots` of a task, `status` of an assignment) and every (task, worker) pair has a
unique key, so concurrent dispatchers never hand one slot out twice and no worker
answers a task twice.

Throughput: the leases (and the answers) that a process's request threads ask for at the same
time go to the store together (labelstream.common.batching): one claim of a slot on each of
their tasks and one insert of their assignments; one insert of the answers' outbox records and
one update of their assignments. What a worker held is remembered by the process (a worker new
to it is looked up once; the unique key catches the rest). A lone request pays no more round
trips than it did alone.
"""

from __future__ import annotations

import bisect
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from labelstream.common.batching import GroupCommit
from labelstream.common.kafka import SCHEMA_VERSION
from labelstream.common.store import Store, insert_new, vote_key
from labelstream.common.telemetry import now_ms, traceparent
from labelstream.v1 import events_pb2

CANDIDATES_PER_LEASE = 200
LEASE_ROUNDS = 8   # rounds of one lease batch (each finds full tasks or held ones out, or leases)
KNOWN_HELD_MAX = 2_000_000  # (worker, task) pairs a process remembers before it starts over
# The candidate list (the sorted query over all open tasks, the store's costliest command: some
# 150 ms on the local store with 30,000 tasks, and it blocks every other command meanwhile) is
# shared by the leases of this process for this long. Tasks this process adds join the lists at
# once, in order; the claim itself still checks open_slots, so a stale list costs at most this
# much delay before a task another process added (or reopened) is offered; a list that yields
# nothing is read again at once, so it never makes a worker go without a task.
CANDIDATE_CACHE_SECONDS = 5.0
GOLD_CACHE_SECONDS = 10.0
LEASE_ORDER = [("priority", DESCENDING), ("created_ms", ASCENDING)]
REPAIR_PAGE = 500
# A task with no open slot is "full", so the lease query (on status) passes over it; every
# write that gives a slot back sets it "open" again in the same update.
SLOT_BACK = {"$inc": {"open_slots": 1}, "$set": {"status": "open"}}
# What an answer needs from its task, copied onto the assignment at lease time so that the
# submit does not read the task again.
ANSWER_FIELDS = ("item_id", "labels", "overlap", "model_label", "model_confidence", "model_name",
                 "model_version", "traceparent", "ingested_at_ms")


class PoolError(Exception):
    """A refused request; `code` names the gRPC status it maps to."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Lease:
    handle: str          # what the worker sees as the task id
    task_id: str         # internal: the task, or "gold|<project>:<item>"
    project_id: str
    text: str
    labels: list[str]
    expires_at_ms: int
    gold: bool = False
    pay: float = 0.0     # per answer, as shown to the worker with the task


@dataclass(frozen=True)
class Answered:
    """A recorded answer: a response to publish (real tasks) or a gold check."""
    project_id: str
    labels: list[str]
    label: str
    duration_ms: int
    pay: float
    response: events_pb2.HumanResponse | None = None
    traceparent: str = ""
    gold_correct: bool | None = None


@dataclass(frozen=True)
class _LeaseRequest:
    worker_id: str
    key: tuple[str, tuple[str, ...]]   # (project, excluded projects): the candidate list it draws on
    query: dict
    pay: float


@dataclass(frozen=True)
class _AnswerWrite:
    assignment: dict
    label: str
    at_ms: int
    outbox: dict | None    # the response's outbox record (real tasks); None for gold


@dataclass(frozen=True)
class _Candidates:
    """Open tasks in lease order, as read at `read_at` (monotonic) and kept up since."""
    read_at: float
    ids: list[str]
    order: list[tuple[float, int]]   # each id's place in LEASE_ORDER, ascending


def _lease_order(priority: float, created_ms: int) -> tuple[float, int]:
    return (-priority, created_ms)


def new_handle() -> str:
    return "t-" + secrets.token_hex(12)


def gold_task_id(project_id: str, item_id: str) -> str:
    return f"gold|{project_id}:{item_id}"


class TaskPool:
    def __init__(self, store: Store, lease_seconds: int) -> None:
        self.tasks = store.db.tasks
        self.assignments = store.db.assignments
        self.responses = store.db.responses
        self.gold = store.db.gold
        self.lease_ms = lease_seconds * 1000
        self._gold_cache: dict[str, tuple[float, list[dict]]] = {}
        self._rng = random.Random()
        # upper end of the claims the last repair pass checked; None until the first pass
        self._repaired_to_ms: int | None = None
        # (project, excluded projects) -> the shared candidate list
        self._candidates: dict[tuple[str, tuple[str, ...]], _Candidates] = {}
        # assignments this process leased, by handle, while their lease runs: an answer needs no
        # read of its own (any other is read from the store)
        self._issued: dict[str, dict] = {}
        self._issued_lock = threading.Lock()
        # worker -> tasks they hold or held (leased, answered, skipped...), as this process knows
        self._known_held: dict[str, set[str]] = {}
        self._known_lock = threading.Lock()
        self._known_pairs = 0
        self._lease_batches = GroupCommit("dispatcher_lease", self._lease_batch)
        self._answer_batches = GroupCommit("dispatcher_answer", self._answer_batch)

    def add(self, task: events_pb2.HumanTask) -> None:
        """Create the task, or raise its overlap when the aggregator asks for more votes."""
        self.add_many([task])

    def add_many(self, tasks: Sequence[events_pb2.HumanTask], traceparents: Sequence[str] | None = None) -> None:
        """add() for a batch of tasks (a consumed batch of tasks.human): one insert for the new
        ones; those that exist already (a replayed message, or more votes asked for) have their
        overlap raised. `traceparents` are the tasks' trace contexts (default: the current span's)."""
        if not tasks:
            return
        current = traceparent()
        docs = [self._task_doc(task, traceparents[i] if traceparents else current) for i, task in enumerate(tasks)]
        existing = insert_new(self.tasks, docs)
        self._offer_new([d for i, d in enumerate(docs) if i not in existing])
        if existing:
            wanted: dict[str, int] = {}
            for position in sorted(existing):
                task = tasks[position]
                wanted[task.task_id] = max(wanted.get(task.task_id, 0), task.overlap)
            stored = {d["_id"]: d["overlap"] for d in self.tasks.find({"_id": {"$in": sorted(wanted)}},
                                                                       {"overlap": 1})}
            for task_id, overlap in wanted.items():
                if task_id in stored and stored[task_id] < overlap:
                    self._raise_overlap(task_id, overlap, stored[task_id])

    @staticmethod
    def _task_doc(task: events_pb2.HumanTask, parent: str) -> dict:
        return {
            "_id": task.task_id, "project_id": task.project_id, "item_id": task.item_id, "text": task.text,
            "labels": list(task.labels), "overlap": task.overlap, "open_slots": task.overlap,
            "priority": task.priority, "status": "open", "created_ms": now_ms(),
            "ingested_at_ms": task.ingested_at_ms, "traceparent": parent,
            # never shown to workers: only copied onto their responses for the aggregator
            "model_label": task.model_label if task.model_votes else "",
            "model_confidence": task.model_confidence if task.model_votes else 0.0,
            "model_name": task.model_name if task.model_votes else "",
            "model_version": task.model_version if task.model_votes else "",
        }

    def _raise_overlap(self, task_id: str, overlap: int, stored: int) -> None:
        """Compare-and-set on overlap, so two raises at once add their slots once."""
        while stored < overlap:
            if self.tasks.update_one({"_id": task_id, "overlap": stored},
                                     {"$set": {"overlap": overlap, "status": "open"},
                                      "$inc": {"open_slots": overlap - stored}}).modified_count:
                return
            doc = self.tasks.find_one({"_id": task_id}, {"overlap": 1})
            if doc is None:
                return
            stored = doc["overlap"]

    def lease(self, worker_id: str, project_id: str = "", pay: float = 0.0,
              exclude_projects: frozenset[str] = frozenset()) -> Lease | None:
        """Lease the highest-priority open task this worker has never held."""
        query: dict = {"status": "open", "open_slots": {"$gt": 0}}
        if project_id:
            query["project_id"] = project_id
        elif exclude_projects:
            query["project_id"] = {"$nin": sorted(exclude_projects)}
        key = (project_id, tuple(sorted(exclude_projects)) if not project_id else ())
        return self._lease_batches.submit(_LeaseRequest(worker_id, key, query, pay))

    def _lease_batch(self, requests: Sequence[_LeaseRequest]) -> list[Lease | None]:
        results: list[Lease | None] = [None] * len(requests)
        groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.key, []).append(index)
        for key, indexes in groups.items():
            for index, lease in self._lease_group(key, requests[indexes[0]].query,
                                                  [(i, requests[i]) for i in indexes]).items():
                results[index] = lease
        return results

    def _candidate_ids(self, key: tuple[str, tuple[str, ...]], query: dict, fresh: bool) -> tuple[list[str], bool]:
        """The shared candidate list, read again when asked or stale; returns it and whether it was read now."""
        cached = self._candidates.get(key)
        if not fresh and cached and cached.ids and time.monotonic() - cached.read_at < CANDIDATE_CACHE_SECONDS:
            return cached.ids, False
        read_at = time.monotonic()
        # ids and order only: the claim returns the task documents a lease needs
        docs = self.tasks.find(query, {"_id": 1, "priority": 1, "created_ms": 1}).sort(LEASE_ORDER).limit(
            CANDIDATES_PER_LEASE)
        ids, order = [], []
        for doc in docs:
            ids.append(doc["_id"])
            order.append(_lease_order(doc.get("priority", 0.0), doc.get("created_ms", 0)))
        if len(self._candidates) > 1000:  # keys vary with workers' blocked projects: keep it bounded
            self._candidates.clear()
        self._candidates[key] = _Candidates(read_at, ids, order)
        return ids, True

    def _offer_new(self, docs: list[dict]) -> None:
        """Tasks just added join the candidate lists they belong to, in lease order (unlocked,
        like _drop_candidate: one lost to a concurrent read is found by the next read)."""
        for key, cached in list(self._candidates.items()):
            project, excluded = key
            fitting = [d for d in docs if (d["project_id"] == project if project else d["project_id"] not in excluded)]
            if not fitting:
                continue
            ids, order = list(cached.ids), list(cached.order)
            for doc in fitting:
                rank = _lease_order(doc["priority"], doc["created_ms"])
                at = bisect.bisect_right(order, rank)
                if at < CANDIDATES_PER_LEASE:
                    ids.insert(at, doc["_id"])
                    order.insert(at, rank)
            self._candidates[key] = _Candidates(cached.read_at, ids[:CANDIDATES_PER_LEASE],
                                                order[:CANDIDATES_PER_LEASE])

    def _lease_group(self, key: tuple[str, tuple[str, ...]], query: dict,
                     waiting: list[tuple[int, _LeaseRequest]]) -> dict[int, Lease]:
        """Leases for requests that draw on one candidate list, in rounds: each round gives every
        waiting worker the best candidate they never held and no other worker of the round took,
        claims one slot on each of those tasks at once, and writes the assignments at once. A
        worker whose candidates (read afresh) all were theirs once gets nothing."""
        leased: dict[int, Lease] = {}
        fresh = False
        for _ in range(LEASE_ROUNDS):
            if not waiting:
                break
            ids, read_now = self._candidate_ids(key, query, fresh)
            held = self._held_among(sorted({r.worker_id for _, r in waiting}), ids)
            picks: dict[str, tuple[int, _LeaseRequest]] = {}
            crowded: list[tuple[int, _LeaseRequest]] = []    # has an unheld candidate another took this round
            exhausted: list[tuple[int, _LeaseRequest]] = []  # held every candidate
            for index, request in waiting:
                unheld = [t for t in ids if (request.worker_id, t) not in held]
                choice = next((t for t in unheld if t not in picks), None)
                if choice is not None:
                    picks[choice] = (index, request)
                else:
                    (crowded if unheld else exhausted).append((index, request))
            # a list read just now that has nothing for a worker is final: nothing for them
            waiting = crowded + ([] if read_now else exhausted)
            fresh = not read_now and bool(exhausted)
            if not picks:
                continue
            claimed = self._claim_slots(key, list(picks))
            granted = [(picks[t][0], picks[t][1], task) for t, task in claimed.items()]
            leased.update(self._assign_many(granted))
            waiting += [picks[t] for t in picks if t not in claimed]        # full meanwhile: try the next
            waiting += [(i, r) for i, r, _ in granted if i not in leased]   # held it after all: try the next
            fresh = fresh or not claimed  # every pick was full: the list is stale
        return leased

    def _claim_slots(self, key: tuple[str, tuple[str, ...]], task_ids: list[str]) -> dict[str, dict]:
        """Take one open slot of each task, at once; returns the task documents (after the claim)
        of the tasks whose slot this call took. Tasks left without a slot are marked full."""
        now = now_ms()
        if len(task_ids) == 1:
            task = self.tasks.find_one_and_update(
                {"_id": task_ids[0], "open_slots": {"$gt": 0}},
                {"$inc": {"open_slots": -1}, "$set": {"claimed_at_ms": now}}, return_document=ReturnDocument.AFTER)
            claimed = {task["_id"]: task} if task is not None else {}
        else:
            # the claim token tells this claim's tasks from those another process claimed meanwhile
            # (if one overwrites it first, that slot is found lost and given back by repair_lost_slots)
            token = secrets.token_hex(8)
            self.tasks.update_many({"_id": {"$in": task_ids}, "open_slots": {"$gt": 0}},
                                   {"$inc": {"open_slots": -1}, "$set": {"claimed_at_ms": now, "claim": token}})
            claimed = {t["_id"]: t for t in self.tasks.find({"_id": {"$in": task_ids}, "claim": token})}
        full = [t for t, task in claimed.items() if task["open_slots"] <= 0]
        if full:
            # conditional: a slot given back meanwhile (which sets "open") wins
            self.tasks.update_many({"_id": {"$in": full}, "open_slots": {"$lte": 0}, "status": "open"},
                                   {"$set": {"status": "full"}})
        for task_id in task_ids:
            if task_id not in claimed or task_id in full:
                self._drop_candidate(key, task_id)
        return claimed

    def _held_among(self, workers: list[str], task_ids: list[str]) -> set[tuple[str, str]]:
        """(worker, task) pairs among these that exist as assignments, as far as this process
        knows: what it leased and what inserts told it. A worker new to this process is looked up
        once, for the candidates of the moment (what else they held comes out on insert)."""
        with self._known_lock:
            unknown = [w for w in workers if w not in self._known_held]
        if unknown and task_ids:
            found = self.assignments.find({"_id": {"$in": [vote_key(t, w) for w in unknown for t in task_ids]}},
                                          {"worker_id": 1, "task_id": 1})
            with self._known_lock:
                for worker in unknown:
                    self._known_held.setdefault(worker, set())
                for doc in found:
                    self._known_held[doc["worker_id"]].add(doc["task_id"])
                    self._known_pairs += 1
        candidates = set(task_ids)
        with self._known_lock:
            return {(w, t) for w in workers for t in self._known_held.get(w, set()) & candidates}

    def _remember_held(self, worker_id: str, task_id: str) -> None:
        with self._known_lock:
            if self._known_pairs >= KNOWN_HELD_MAX:
                # bounded; what is forgotten is looked up or found on insert again
                self._known_held.clear()
                self._known_pairs = 0
            tasks = self._known_held.setdefault(worker_id, set())
            if task_id not in tasks:
                tasks.add(task_id)
                self._known_pairs += 1

    def _assign_many(self, granted: list[tuple[int, _LeaseRequest, dict]]) -> dict[int, Lease]:
        """Write the assignments of claimed slots at once; a slot whose worker turns out to hold
        that task already goes back."""
        if not granted:
            return {}
        expires = now_ms() + self.lease_ms
        docs = [self._assignment_doc(request.worker_id, task["_id"], task["project_id"], request.pay, expires,
                                     answer_fields={k: task[k] for k in ANSWER_FIELDS if k in task})
                for _, request, task in granted]
        existing = insert_new(self.assignments, docs)
        leased: dict[int, Lease] = {}
        for position, ((index, request, task), doc) in enumerate(zip(granted, docs, strict=True)):
            if position in existing and not self._take_up_expired(doc):
                self._remember_held(request.worker_id, task["_id"])
                self.tasks.update_one({"_id": task["_id"]}, SLOT_BACK)
                continue
            self._remember_held(request.worker_id, task["_id"])
            leased[index] = self._issue(doc, task["text"], task["labels"])
        return leased

    def _drop_candidate(self, key: tuple[str, tuple[str, ...]], task_id: str) -> None:
        """A full task leaves the shared list, so later leases do not send it to the store again.
        (Unlocked: a drop lost to a concurrent refresh only costs a claim that finds no slot.)"""
        cached = self._candidates.get(key)
        if cached and task_id in cached.ids:
            at = cached.ids.index(task_id)
            self._candidates[key] = _Candidates(cached.read_at, cached.ids[:at] + cached.ids[at + 1:],
                                                cached.order[:at] + cached.order[at + 1:])

    def _assignment_doc(self, worker_id: str, task_id: str, project_id: str, pay: float, expires: int,
                        gold: bool = False, answer_fields: dict | None = None) -> dict:
        doc = {"_id": vote_key(task_id, worker_id), "task_id": task_id, "worker_id": worker_id,
               "project_id": project_id, "status": "leased", "leased_at_ms": now_ms(),
               "lease_expires_ms": expires, "handle": new_handle(), "gold": gold, "pay": pay}
        if answer_fields:
            # kept under one key, never sent to the worker (model_label stays hidden)
            doc["task"] = answer_fields
        return doc

    def _issue(self, doc: dict, text: str, labels: list[str]) -> Lease:
        with self._issued_lock:
            self._issued[doc["handle"]] = doc
        return Lease(doc["handle"], doc["task_id"], doc["project_id"], text, list(labels), doc["lease_expires_ms"],
                     doc["gold"], doc["pay"])

    def _assign(self, worker_id: str, task_id: str, project_id: str, text: str, labels: list[str],
                pay: float, gold: bool = False) -> Lease | None:
        doc = self._assignment_doc(worker_id, task_id, project_id, pay, now_ms() + self.lease_ms, gold)
        if insert_new(self.assignments, [doc]) and not self._take_up_expired(doc):
            return None
        return self._issue(doc, text, labels)

    def _take_up_expired(self, doc: dict) -> bool:
        """A lease of this worker's on this task that expired unanswered may be taken up again."""
        return bool(self.assignments.replace_one({"_id": doc["_id"], "status": "expired"}, doc).modified_count)

    # Gold ---------------------------------------------------------------------------------
    def add_gold(self, project_id: str, items: list[dict]) -> tuple[int, int]:
        """Add gold items ({item_id, text, label, labels, weight}); returns (added, total)."""
        added = 0
        for item in items:
            try:
                self.gold.insert_one({"_id": f"{project_id}:{item['item_id']}", "project_id": project_id,
                                      **item, "weight": item.get("weight") or 1.0, "added_ms": now_ms()})
                added += 1
            except DuplicateKeyError:
                continue
        self._gold_cache.pop(project_id, None)
        return added, self.gold.count_documents({"project_id": project_id})

    def gold_items(self, project_id: str) -> list[dict]:
        cached = self._gold_cache.get(project_id)
        if cached and time.monotonic() - cached[0] < GOLD_CACHE_SECONDS:
            return cached[1]
        items = list(self.gold.find({"project_id": project_id}))
        self._gold_cache[project_id] = (time.monotonic(), items)
        return items

    def lease_gold(self, worker_id: str, project_id: str, pay: float = 0.0) -> Lease | None:
        """A gold item this worker has not answered, drawn by weight (anti-shortcut items weigh more)."""
        items = self.gold_items(project_id)
        if not items:
            return None
        seen = {a["task_id"] for a in self.assignments.find(
            {"worker_id": worker_id, "project_id": project_id, "gold": True}, {"task_id": 1})}
        fresh = [g for g in items if gold_task_id(project_id, g["item_id"]) not in seen]
        while fresh:
            item = self._rng.choices(fresh, weights=[g["weight"] for g in fresh])[0]
            lease = self._assign(worker_id, gold_task_id(project_id, item["item_id"]), project_id, item["text"],
                                 item["labels"], pay, gold=True)
            if lease is not None:
                return lease
            fresh.remove(item)
        return None

    # Answers ------------------------------------------------------------------------------
    def _held(self, worker_id: str, handle: str) -> dict:
        with self._issued_lock:
            assignment = self._issued.get(handle)
        if assignment is None:
            assignment = self.assignments.find_one({"handle": handle})
        if assignment is None or assignment["worker_id"] != worker_id:
            # the same refusal whether or not the handle exists: no probing other workers' tasks
            raise PoolError("PERMISSION_DENIED", f"task {handle!r} is not leased to you")
        if assignment["status"] == "answered":
            raise PoolError("ALREADY_EXISTS", f"you already answered task {handle!r}")
        if assignment["status"] == "expired" or assignment["lease_expires_ms"] < now_ms():
            raise PoolError("FAILED_PRECONDITION", "the lease on this task expired; lease a new task")
        if assignment["status"] != "leased":
            raise PoolError("FAILED_PRECONDITION", f"task {handle!r} is no longer yours ({assignment['status']})")
        return assignment

    def _ended(self, assignment: dict, status: str) -> None:
        """This process's copy of a lease follows its end (answered, skipped, revoked, expired)."""
        handle = assignment["handle"]
        with self._issued_lock:
            if status == "answered" and handle in self._issued:
                # kept (answered) until its lease would have run out, so a second answer hears so
                # without a read
                self._issued[handle] = {**self._issued[handle], "status": "answered"}
            else:
                self._issued.pop(handle, None)

    def answer(self, worker_id: str, handle: str, label: str) -> Answered:
        assignment = self._held(worker_id, handle)
        if assignment.get("gold"):
            return self._answer_gold(assignment, label)
        task_id = assignment["task_id"]
        now = now_ms()
        # the lease copied what the answer needs; assignments leased before that was done read the task
        task = assignment.get("task") or self.tasks.find_one({"_id": task_id})
        if task is None:
            raise PoolError("NOT_FOUND", f"task {handle!r} does not exist any more")
        if label not in task["labels"]:
            raise PoolError("INVALID_ARGUMENT", f"label {label!r} is not one of {task['labels']}")
        response = events_pb2.HumanResponse(
            schema_version=SCHEMA_VERSION, project_id=assignment["project_id"], item_id=task["item_id"],
            task_id=task_id, worker_id=worker_id, label=label, answered_at_ms=now,
            duration_ms=now - assignment["leased_at_ms"], ingested_at_ms=task.get("ingested_at_ms", 0),
            task_overlap=task["overlap"], model_label=task.get("model_label", ""),
            model_confidence=task.get("model_confidence", 0.0), model_name=task.get("model_name", ""),
            model_version=task.get("model_version", ""))
        outbox = {"_id": assignment["_id"], "task_id": task_id, "worker_id": worker_id,
                  "payload": response.SerializeToString(), "traceparent": task.get("traceparent", ""),
                  "published": False, "created_ms": now}
        self._answer_batches.submit(_AnswerWrite(assignment, label, now, outbox))
        return Answered(assignment["project_id"], list(task["labels"]), label, response.duration_ms,
                        assignment.get("pay", 0.0), response, task.get("traceparent", ""))

    def _gold_item(self, project_id: str, task_id: str) -> dict | None:
        gold_id = task_id.removeprefix("gold|")
        cached = next((g for g in self.gold_items(project_id) if g["_id"] == gold_id), None)
        return cached or self.gold.find_one({"_id": gold_id})

    def _answer_gold(self, assignment: dict, label: str) -> Answered:
        item = self._gold_item(assignment["project_id"], assignment["task_id"])
        if item is None:
            raise PoolError("NOT_FOUND", f"task {assignment['handle']!r} does not exist any more")
        if label not in item["labels"]:
            raise PoolError("INVALID_ARGUMENT", f"label {label!r} is not one of {item['labels']}")
        now = now_ms()
        self._answer_batches.submit(_AnswerWrite(assignment, label, now, None))
        return Answered(assignment["project_id"], list(item["labels"]), label, now - assignment["leased_at_ms"],
                        assignment.get("pay", 0.0), gold_correct=label == item["label"])

    def _answer_batch(self, writes: Sequence[_AnswerWrite]) -> list[bool | PoolError]:
        """Record answers at once: the outbox records of real tasks first (once one exists, the
        answer will be published), then each assignment, from leased to answered."""
        results: list[bool | PoolError] = [True] * len(writes)
        keys_in_batch: set[str] = set()
        for i, write in enumerate(writes):
            if write.assignment["_id"] in keys_in_batch:  # the same answer twice at once
                results[i] = self._already(write)
            keys_in_batch.add(write.assignment["_id"])
        real = [i for i, w in enumerate(writes) if w.outbox is not None and results[i] is True]
        if real:
            for position in insert_new(self.responses, [writes[i].outbox for i in real]):
                results[real[position]] = self._already(writes[real[position]])
        marking = [i for i in range(len(writes)) if results[i] is True]
        if not marking:
            return results
        token = secrets.token_hex(8)
        marked = self.assignments.bulk_write([UpdateOne(
            {"_id": writes[i].assignment["_id"], "status": "leased"},
            {"$set": {"status": "answered", "label": writes[i].label, "answered_at_ms": writes[i].at_ms,
                      "answer": token}}) for i in marking], ordered=False).modified_count
        if marked < len(marking):
            # some lease ended between the check and this write (expired and reclaimed, revoked, or
            # answered by a concurrent call): those answers are refused, and their outbox records go
            done = {d["_id"] for d in self.assignments.find(
                {"_id": {"$in": [writes[i].assignment["_id"] for i in marking]}, "answer": token}, {"_id": 1})}
            for i in marking:
                write = writes[i]
                if write.assignment["_id"] in done:
                    continue
                if write.outbox is None:
                    results[i] = self._already(write)
                else:
                    self.responses.delete_one({"_id": write.assignment["_id"]})
                    results[i] = PoolError("FAILED_PRECONDITION", "the lease on this task expired; lease a new task")
        for i in marking:
            if results[i] is True:
                self._ended(writes[i].assignment, "answered")
        return results

    @staticmethod
    def _already(write: _AnswerWrite) -> PoolError:
        return PoolError("ALREADY_EXISTS", f"you already answered task {write.assignment['handle']!r}")

    def skip(self, worker_id: str, handle: str) -> None:
        """Give the task back; the assignment stays (as skipped) so this worker never gets it again."""
        self._give_back(self._held(worker_id, handle), "skipped")

    def _give_back(self, assignment: dict, status: str) -> bool:
        """End a lease that was not answered (kept, as `status`, so this worker never gets the task
        again) and return its slot; False when the lease had already ended."""
        ended = self.assignments.update_one({"_id": assignment["_id"], "status": "leased"},
                                            {"$set": {"status": status}}).modified_count
        self._ended(assignment, status)
        if ended and not assignment.get("gold"):
            self.tasks.update_one({"_id": assignment["task_id"]}, SLOT_BACK)
        return bool(ended)

    def release_worker(self, project_id: str, worker_id: str) -> int:
        """A blocked worker's open leases go back to the pool."""
        released = 0
        for assignment in self.assignments.find({"project_id": project_id, "worker_id": worker_id,
                                                 "status": "leased"}):
            released += self._give_back(assignment, "revoked")
        return released

    def mark_published(self, task_id: str, worker_id: str) -> None:
        self.responses.update_one({"_id": vote_key(task_id, worker_id)}, {"$set": {"published": True}})

    def mark_published_many(self, keys: list[tuple[str, str]]) -> None:
        """mark_published for a batch of (task_id, worker_id): one store round-trip."""
        if keys:
            self.responses.update_many({"_id": {"$in": [vote_key(t, w) for t, w in keys]}},
                                       {"$set": {"published": True}})

    def unpublished(self, older_than_ms: int) -> list[tuple[events_pb2.HumanResponse, str]]:
        """Answers whose publish did not complete (a crash): the outbox sweep sends them again."""
        cutoff = now_ms() - older_than_ms
        out = []
        for doc in self.responses.find({"published": False, "created_ms": {"$lt": cutoff}}).limit(500):
            response = events_pb2.HumanResponse()
            response.ParseFromString(doc["payload"])
            out.append((response, doc.get("traceparent", "")))
        return out

    def repair_lost_slots(self, quiet_ms: int = 10_000, window_ms: int = 30_000,
                          catch_up_ms: int = 600_000) -> int:
        """Give back slots whose claim never became an assignment (the process died between the
        two writes). Each pass checks the tasks claimed between `quiet_ms` and `quiet_ms +
        window_ms` ago, so a claim still in flight is never mistaken for a lost one while recent
        claims are rechecked a few times. The window reaches back to where the previous pass
        stopped if passes were delayed, and the first pass of a process back `catch_up_ms`, so
        that claims lost while no dispatcher ran are found too."""
        now = now_ms()
        upper = now - quiet_ms
        lower = upper - window_ms
        lower = min(lower, now - catch_up_ms if self._repaired_to_ms is None else self._repaired_to_ms)
        repaired = 0
        checked: set[str] = set()
        while True:
            # status is not in the query: a lost slot may be exactly what made a task "full"
            page = list(self.tasks.find({"claimed_at_ms": {"$gte": lower, "$lt": upper}},
                                        {"overlap": 1, "open_slots": 1, "claimed_at_ms": 1}
                                        ).sort("claimed_at_ms", ASCENDING).limit(REPAIR_PAGE))
            fresh = [t for t in page if t["_id"] not in checked]
            if not fresh:
                break
            repaired += self._repair(fresh)
            checked.update(t["_id"] for t in fresh)
            if len(page) < REPAIR_PAGE:
                break
            lower = page[-1]["claimed_at_ms"]  # $gte: ties at the boundary come again, and are skipped
        self._repaired_to_ms = upper
        return repaired

    def _repair(self, tasks: list[dict]) -> int:
        # one query for the whole page, counted here (not one count per task: each is a scan)
        holding = Counter(a["task_id"] for a in self.assignments.find(
            {"task_id": {"$in": [t["_id"] for t in tasks]}, "status": {"$in": ["leased", "answered"]}},
            {"task_id": 1}))
        repaired = 0
        for task in tasks:
            free = task["overlap"] - holding[task["_id"]]
            # compare-and-set on open_slots and claimed_at_ms: a claim or a slot given back since
            # the reads above makes this update miss, and the next pass looks again
            if free > task["open_slots"] and self.tasks.update_one(
                    {"_id": task["_id"], "open_slots": task["open_slots"], "claimed_at_ms": task["claimed_at_ms"]},
                    {"$set": {"open_slots": free, "status": "open"}}).modified_count:
                repaired += free - task["open_slots"]
        return repaired

    def reclaim_expired(self) -> int:
        """Free the slots of leases that ran out without an answer."""
        now = now_ms()
        with self._issued_lock:
            gone = [h for h, a in self._issued.items() if a["lease_expires_ms"] < now]
            for handle in gone:
                del self._issued[handle]
        reclaimed = 0
        for assignment in self.assignments.find(
                {"status": "leased", "lease_expires_ms": {"$lt": now}}).limit(500):
            if self.responses.find_one({"_id": assignment["_id"]}) is not None:
                self.assignments.update_one({"_id": assignment["_id"], "status": "leased"},
                                            {"$set": {"status": "answered"}})
                continue
            # kept as "expired" (not deleted) so a late answer is told its lease expired
            reclaimed += self._give_back(assignment, "expired")
        return reclaimed

