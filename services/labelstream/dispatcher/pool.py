"""The task pool: tasks with open slots, hidden gold items, per-(task, worker) assignments with
leases, and an outbox of answers.

What a worker holds is an opaque handle, random and alike for real and gold tasks, so
nothing a worker receives tells the two apart.

Ownership: a dispatcher process owns the tasks of the `tasks.human` partitions the consumer
group gave it (all tasks when it runs alone, `owned=None`), and keeps them in memory: the open
tasks of each project in lease order and, per task, the workers who ever held it. Choosing a
task is a walk down that list, with no store read; the store is the journal a process that
takes over a partition (after a crash or a rebalance) loads from.

What is written before a caller hears yes: a lease's assignment (insert, then the task's slot
count as `$inc`, so a crash in between costs at most one extra vote, never a lost slot), and an
answer's outbox record and its assignment (leased -> answered, a compare-and-set that also
settles a race with expiry or with another process). The leases (and answers) that a process's
request threads ask for at the same time share those commands (labelstream.common.batching).
Every (task, worker) pair has a unique key, so a worker never holds a task twice even while two
processes briefly own one partition during a rebalance.
"""

from __future__ import annotations

import bisect
import random
import secrets
import threading
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from cachetools import TTLCache
from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from labelstream.common.batching import GroupCommit
from labelstream.common.projects import parse_label_set
from labelstream.common.store import Store, insert_new, vote_key
from labelstream.common.telemetry import now_ms, traceparent
from labelstream.common.topics import SCHEMA_VERSION
from labelstream.crowd.quality import answers_no_shortcut, gold_draw_weights
from labelstream.dispatcher.display import Pick, canonical_pick, display_order, shown_responses
from labelstream.v1 import events_pb2

LEASE_ATTEMPTS = 8      # a lease whose pick turns out held in the store (another process) picks again
LOAD_PAGE = 2000        # task ids per assignment query when a partition is loaded (each a scan on
                        # the local store, an index lookup on MongoDB)
GOLD_CACHE_SECONDS = 10.0
# What an answer needs from its task, copied onto the assignment at lease time so that the
# submit does not read the task again.
ANSWER_FIELDS = ("item_id", "labels", "overlap", "model_label", "model_confidence", "model_name",
                 "model_version", "traceparent", "ingested_at_ms", "max_answers")
# What a task holds in memory (the text and labels a lease shows, the fields an answer copies).
TASK_FIELDS = {"_id": 1, "project_id": 1, "text": 1, "responses": 1, "annotators": 1, "priority": 1,
               "created_ms": 1, "partition": 1, "open_slots": 1, **dict.fromkeys(ANSWER_FIELDS, 1)}


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
    responses: list[str] = field(default_factory=list)  # a preference task's, in this worker's order


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
    gold_anti_shortcut: bool = False   # a gold item no shortcut answers right (quality.answers_no_shortcut)
    # what the worker saw, for the fraud signals (None: the labels in the project's order)
    position: int | None = None
    option_lengths: list[int] | None = None
    # A multi-label answer: its set (`label` is the set's key), and on gold, per label of the
    # project, whether the answer judged it right (in or out of the set as the gold set has it).
    label_set: list[str] | None = None
    gold_label_checks: list[bool] | None = None


@dataclass(frozen=True)
class _AnswerWrite:
    assignment: dict
    label: str
    at_ms: int
    outbox: dict | None    # the response's outbox record (real tasks); None for gold


@dataclass
class _Task:
    """An owned task in memory: its stored fields, open slots, who held it and leases running."""
    doc: dict
    open_slots: int
    holders: set[str] = field(default_factory=set)
    running: int = 0

    @property
    def id(self) -> str:
        return self.doc["_id"]

    @property
    def project_id(self) -> str:
        return self.doc["project_id"]

    @property
    def order(self) -> tuple[float, int, str]:
        """Place in lease order: higher priority first, then older first."""
        return (-self.doc.get("priority", 0.0), self.doc.get("created_ms", 0), self.id)


class OpenTasks:
    """Open tasks per project in lease order (sorted lists; a few thousand open tasks per
    project shift in microseconds)."""

    def __init__(self) -> None:
        self._by_project: dict[str, list[tuple[float, int, str]]] = {}

    def add(self, task: _Task) -> None:
        bisect.insort(self._by_project.setdefault(task.project_id, []), task.order)

    def discard(self, task: _Task) -> None:
        keys = self._by_project.get(task.project_id)
        if not keys:
            return
        at = bisect.bisect_left(keys, task.order)
        if at < len(keys) and keys[at] == task.order:
            del keys[at]
        if not keys:
            del self._by_project[task.project_id]

    def projects(self) -> list[str]:
        return list(self._by_project)

    def in_order(self, project_id: str) -> list[tuple[float, int, str]]:
        return self._by_project.get(project_id, [])

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._by_project.values())


def new_handle() -> str:
    return "t-" + secrets.token_hex(12)


def gold_task_id(project_id: str, item_id: str) -> str:
    return f"gold|{project_id}:{item_id}"


def gold_doc(spec: events_pb2.ProjectSpec, item_id: str, text: str, label: str, responses: list[str],
             weight: float, source: str) -> dict:
    """A gold item as `add_gold` takes it; a preference item's responses in canonical order."""
    doc = {"item_id": item_id, "text": text, "label": label, "labels": list(spec.labels), "weight": weight or 1.0,
           "source": source}
    if responses:
        doc["responses"] = list(responses)
    return doc


def task_doc(task: events_pb2.HumanTask, parent: str, partition: int) -> dict:
    return {
        "_id": task.task_id, "project_id": task.project_id, "item_id": task.item_id, "text": task.text,
        "labels": list(task.labels), "overlap": task.overlap, "open_slots": task.overlap,
        "responses": [r.text for r in task.responses],
        # named annotators: only they may lease it, so it never takes more answers than they can give
        "annotators": list(task.annotators), "max_answers": len(task.annotators),
        "priority": task.priority, "status": "open", "created_ms": now_ms(), "partition": partition,
        "ingested_at_ms": task.ingested_at_ms, "traceparent": parent,
        # never shown to workers: only copied onto their responses for the aggregator
        "model_label": task.model_label if task.model_votes else "",
        "model_confidence": task.model_confidence if task.model_votes else 0.0,
        "model_name": task.model_name if task.model_votes else "",
        "model_version": task.model_version if task.model_votes else "",
    }


class TaskPool:
    def __init__(self, store: Store, lease_seconds: int, owned: Collection[int] | None = None,
                 gather_s: float = 0.0) -> None:
        """`owned`: the tasks.human partitions this process owns (None: every task, as when one
        process runs alone); `own()` changes them. `gather_s`: see GroupCommit."""
        self.tasks = store.db.tasks
        self.assignments = store.db.assignments
        self.responses = store.db.responses
        self.gold = store.db.gold
        self.lease_ms = lease_seconds * 1000
        self._rng = random.Random()
        self._lock = threading.RLock()
        self._owned: set[int] | None = None if owned is None else set(owned)
        self._tasks: dict[str, _Task] = {}
        self._open = OpenTasks()
        # leases this process issued or loaded, by handle, until they end (answered ones are kept
        # until their lease would have run out, so a second answer hears so without a read)
        self._leases: dict[str, dict] = {}
        # worker -> gold tasks they held, per project (read from the store once per worker)
        self._gold_held: dict[tuple[str, str], set[str]] = {}
        self._gold_cache: TTLCache[str, list[dict]] = TTLCache(maxsize=4096, ttl=GOLD_CACHE_SECONDS)
        self._lease_batches = GroupCommit("dispatcher_lease", self._lease_batch, gather_s=gather_s)
        self._answer_batches = GroupCommit("dispatcher_answer", self._answer_batch, gather_s=gather_s)

    # Ownership ----------------------------------------------------------------------------
    def _owns(self, partition: int) -> bool:
        return self._owned is None or partition in self._owned

    def own(self, partitions: Collection[int] | None) -> int:
        """Own these partitions (None: all): tasks of partitions no longer owned leave memory,
        those of newly owned ones are loaded from the store. Returns how many tasks were loaded."""
        with self._lock:
            before = self._owned
            self._owned = None if partitions is None else set(partitions)
            if self._owned is not None:
                for task in [t for t in self._tasks.values() if not self._owns(t.doc.get("partition", 0))]:
                    self._forget(task)
                for handle, lease in list(self._leases.items()):
                    if not lease.get("gold") and lease["task_id"] not in self._tasks:
                        del self._leases[handle]  # an answer to it is checked against the store
            gained = None if self._owned is None else self._owned - (before or set())
        return self.load(gained)

    def load(self, partitions: Collection[int] | None = None) -> int:
        """Load the open tasks of these partitions (None: of every owned partition), the running
        leases on owned tasks, and who held each, from the store."""
        if partitions is not None and not partitions:
            return 0
        wanted = (lambda p: self._owns(p)) if partitions is None else (lambda p: p in partitions and self._owns(p))
        docs = {d["_id"]: d for d in self.tasks.find({"status": "open"}, TASK_FIELDS)
                if wanted(d.get("partition", 0))}
        running = [a for a in self.assignments.find({"status": "leased"})
                   if a.get("gold") or a["task_id"] in docs or a["task_id"] not in self._tasks]
        missing = sorted({a["task_id"] for a in running if not a.get("gold") and a["task_id"] not in docs})
        for page in _pages(missing, LOAD_PAGE):
            docs.update((d["_id"], d) for d in self.tasks.find({"_id": {"$in": page}}, TASK_FIELDS)
                        if wanted(d.get("partition", 0)))
        holders: dict[str, set[str]] = {}
        for page in _pages(sorted(docs), LOAD_PAGE):
            for a in self.assignments.find({"task_id": {"$in": page}}, {"task_id": 1, "worker_id": 1}):
                holders.setdefault(a["task_id"], set()).add(a["worker_id"])
        with self._lock:
            loaded = 0
            for task_id, doc in docs.items():
                if task_id in self._tasks:
                    continue
                task = _Task(doc, max(0, doc.get("open_slots", 0)), holders.get(task_id, set()))
                self._tasks[task_id] = task
                if task.open_slots > 0:
                    self._open.add(task)
                loaded += 1
            for assignment in running:
                task = self._tasks.get(assignment["task_id"])
                if assignment["handle"] in self._leases or (task is None and not assignment.get("gold")):
                    continue
                self._leases[assignment["handle"]] = assignment
                if task is not None:
                    task.running += 1
                    task.holders.add(assignment["worker_id"])
        return loaded

    def _forget(self, task: _Task) -> None:
        self._open.discard(task)
        self._tasks.pop(task.id, None)

    def open_tasks(self, project_id: str = "") -> int:
        with self._lock:
            return len(self._open.in_order(project_id)) if project_id else len(self._open)

    def open_project(self, exclude: Collection[str] = ()) -> str | None:
        """A project with an open task (the best head first), or None."""
        with self._lock:
            heads = [(self._open.in_order(p)[0], p) for p in self._open.projects() if p not in exclude]
        return min(heads)[1] if heads else None

    # Tasks --------------------------------------------------------------------------------
    def add(self, task: events_pb2.HumanTask) -> None:
        """Create the task, or raise its overlap when the aggregator asks for more votes."""
        self.add_many([task])

    def add_many(self, tasks: Sequence[events_pb2.HumanTask], traceparents: Sequence[str] | None = None,
                 partitions: Sequence[int] | None = None) -> None:
        """add() for a batch of tasks (a consumed batch of tasks.human): one insert for the new
        ones; those that exist already (a replayed message, or more votes asked for) have their
        overlap raised. `traceparents` are the tasks' trace contexts (default: the current span's),
        `partitions` the tasks.human partitions they came from (default 0)."""
        if not tasks:
            return
        current = traceparent()
        docs = [task_doc(task, traceparents[i] if traceparents else current, partitions[i] if partitions else 0)
                for i, task in enumerate(tasks)]
        existing = insert_new(self.tasks, docs)
        with self._lock:
            for position, doc in enumerate(docs):
                if position not in existing and doc["_id"] not in self._tasks and self._owns(doc["partition"]):
                    task = _Task({k: doc[k] for k in TASK_FIELDS}, doc["overlap"])
                    self._tasks[task.id] = task
                    self._open.add(task)
        if existing:
            wanted: dict[str, int] = {}
            for position in sorted(existing):
                task = tasks[position]
                wanted[task.task_id] = max(wanted.get(task.task_id, 0), task.overlap)
            stored = {d["_id"]: d for d in self.tasks.find({"_id": {"$in": sorted(wanted)}}, TASK_FIELDS)}
            for task_id, overlap in wanted.items():
                if task_id in stored and stored[task_id]["overlap"] < overlap:
                    self._raise_overlap(stored[task_id], overlap)

    def _raise_overlap(self, doc: dict, overlap: int) -> None:
        """Compare-and-set on overlap, so two raises at once add their slots once. A task with
        named annotators never asks for more answers than they can give."""
        if doc.get("max_answers"):
            overlap = min(overlap, doc["max_answers"])
        while doc["overlap"] < overlap:
            added = overlap - doc["overlap"]
            if self.tasks.update_one({"_id": doc["_id"], "overlap": doc["overlap"]},
                                     {"$set": {"overlap": overlap, "status": "open"},
                                      "$inc": {"open_slots": added}}).modified_count:
                self._reopen(doc, added, overlap)
                return
            fresh = self.tasks.find_one({"_id": doc["_id"]}, TASK_FIELDS)
            if fresh is None:
                return
            doc = fresh

    def _reopen(self, doc: dict, added: int, overlap: int) -> None:
        """Slots added to a task: an owned task that left memory (it was full) comes back."""
        if not self._owns(doc.get("partition", 0)):
            return
        with self._lock:
            known = doc["_id"] in self._tasks
        holders = set() if known else {a["worker_id"] for a in self.assignments.find({"task_id": doc["_id"]},
                                                                                      {"worker_id": 1})}
        with self._lock:
            task = self._tasks.setdefault(doc["_id"], _Task(doc, 0, holders))
            task.doc["overlap"] = overlap
            self._slot_back(task, added)

    def _slot_back(self, task: _Task, slots: int = 1) -> None:
        """Under the lock: slots of this task are open again."""
        if not self._owns(task.doc.get("partition", 0)):
            return
        if task.open_slots <= 0 < slots:
            task.open_slots = slots
            self._open.add(task)
        else:
            task.open_slots += slots
        self._tasks.setdefault(task.id, task)

    # Leases -------------------------------------------------------------------------------
    def lease(self, worker_id: str, project_id: str = "", pay: float = 0.0,
              exclude_projects: frozenset[str] = frozenset()) -> Lease | None:
        """Lease the highest-priority open task this worker has never held."""
        for _ in range(LEASE_ATTEMPTS):
            with self._lock:
                task = self._pick(worker_id, project_id, exclude_projects)
                if task is None:
                    return None
                task.holders.add(worker_id)
                task.open_slots -= 1
                task.running += 1
                if task.open_slots == 0:
                    self._open.discard(task)
                doc = self._assignment_doc(worker_id, task.id, task.project_id, pay,
                                           answer_fields={k: task.doc[k] for k in ANSWER_FIELDS if k in task.doc},
                                           responses=task.doc.get("responses"))
                full = task.open_slots == 0
            try:
                written = self._lease_batches.submit((doc, full))
            except Exception:
                with self._lock:  # never leased: the worker may get this task later
                    task.holders.discard(worker_id)
                    self._end_running(task, give_back=True)
                raise
            if written:
                return self._issue(doc, task.doc["text"], task.doc["labels"], task.doc.get("responses"))
            with self._lock:  # the store says this worker held it (another process leased it to them)
                self._end_running(task, give_back=True)
        return None

    def _pick(self, worker_id: str, project_id: str, exclude: frozenset[str]) -> _Task | None:
        """Under the lock: the first open task in lease order that this worker never held."""
        best: tuple[tuple[float, int, str], _Task] | None = None
        projects = [project_id] if project_id else [p for p in self._open.projects() if p not in exclude]
        for project in projects:
            for order in self._open.in_order(project):
                task = self._tasks[order[2]]
                annotators = task.doc.get("annotators")
                if worker_id not in task.holders and (not annotators or worker_id in annotators):
                    if best is None or order < best[0]:
                        best = (order, task)
                    break
        return best[1] if best else None

    def _end_running(self, task: _Task, give_back: bool) -> None:
        """Under the lock: one running lease on this task ended; its slot is open again or not."""
        task.running = max(0, task.running - 1)
        if give_back:
            self._slot_back(task)
        elif task.open_slots <= 0 and task.running == 0:
            self._forget(task)  # every slot answered: nothing more to do with it here

    def _lease_batch(self, writes: Sequence[tuple[dict, bool]]) -> list[bool]:
        """Write the assignments of leases at once, then take their slots in the tasks' counts
        (insert first: a crash in between leaves a slot too many, never one lost). A worker who
        turns out to hold the task already (an assignment that expired may be taken up again)
        gets False."""
        docs = [doc for doc, _ in writes]
        existing = insert_new(self.assignments, docs)
        written = [i not in existing or self._take_up_expired(docs[i]) for i in range(len(docs))]
        slots = [UpdateOne({"_id": doc["task_id"]}, {"$inc": {"open_slots": -1}})
                 for (doc, _), ok in zip(writes, written, strict=True) if ok and not doc["gold"]]
        # conditional, and after the count (ordered): a slot given back meanwhile keeps it open
        slots += [UpdateOne({"_id": doc["task_id"], "open_slots": {"$lte": 0}}, {"$set": {"status": "full"}})
                  for (doc, full), ok in zip(writes, written, strict=True) if ok and full and not doc["gold"]]
        if slots:
            self.tasks.bulk_write(slots, ordered=True)
        return written

    def _assignment_doc(self, worker_id: str, task_id: str, project_id: str, pay: float,
                        gold: bool = False, answer_fields: dict | None = None,
                        responses: list[str] | None = None) -> dict:
        now = now_ms()
        doc = {"_id": vote_key(task_id, worker_id), "task_id": task_id, "worker_id": worker_id,
               "project_id": project_id, "status": "leased", "leased_at_ms": now,
               "lease_expires_ms": now + self.lease_ms, "handle": new_handle(), "gold": gold, "pay": pay}
        if responses:  # a preference task: this worker's order, kept to map the answer back
            order = display_order(worker_id, task_id, len(responses))
            doc["display_order"] = order
            doc["shown_lengths"] = [len(text) for text in shown_responses(responses, order)]
        if answer_fields:
            # kept under one key, never sent to the worker (model_label stays hidden)
            doc["task"] = answer_fields
        return doc

    def _issue(self, doc: dict, text: str, labels: list[str], responses: list[str] | None = None) -> Lease:
        with self._lock:
            self._leases[doc["handle"]] = doc
        shown = shown_responses(responses, doc["display_order"]) if responses else []
        return Lease(doc["handle"], doc["task_id"], doc["project_id"], text, list(labels), doc["lease_expires_ms"],
                     doc["gold"], doc["pay"], shown)

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
        with self._lock:
            self._gold_cache.pop(project_id, None)
        return added, self.gold.count_documents({"project_id": project_id})

    def gold_items(self, project_id: str) -> list[dict]:
        with self._lock:
            cached = self._gold_cache.get(project_id)
        if cached is not None:
            return cached
        items = list(self.gold.find({"project_id": project_id}))
        with self._lock:
            self._gold_cache[project_id] = items
        return items

    def _gold_seen(self, worker_id: str, project_id: str) -> set[str]:
        key = (worker_id, project_id)
        with self._lock:
            seen = self._gold_held.get(key)
        if seen is None:
            found = {a["task_id"] for a in self.assignments.find(
                {"worker_id": worker_id, "project_id": project_id, "gold": True}, {"task_id": 1})}
            with self._lock:
                seen = self._gold_held.setdefault(key, found)
        return seen

    def lease_gold(self, worker_id: str, project_id: str, pay: float = 0.0) -> Lease | None:
        """A gold item this worker has not answered, drawn by weight, balanced so that items no
        shortcut answers take at least half the draws (quality.gold_draw_weights)."""
        items = self.gold_items(project_id)
        if not items:
            return None
        seen = self._gold_seen(worker_id, project_id)
        with self._lock:
            fresh = [g for g in items if gold_task_id(project_id, g["item_id"]) not in seen]
        while fresh:
            item = self._rng.choices(fresh, weights=gold_draw_weights(fresh))[0]
            task_id = gold_task_id(project_id, item["item_id"])
            with self._lock:
                seen.add(task_id)
            doc = self._assignment_doc(worker_id, task_id, project_id, pay, gold=True,
                                       responses=item.get("responses"))
            if self._lease_batches.submit((doc, False)):
                return self._issue(doc, item["text"], item["labels"], item.get("responses"))
            fresh.remove(item)
        return None

    # Answers ------------------------------------------------------------------------------
    def _held(self, worker_id: str, handle: str) -> dict:
        with self._lock:
            assignment = self._leases.get(handle)
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
        """A lease ended (answered, skipped, revoked, expired): its task's count follows."""
        handle = assignment["handle"]
        with self._lock:
            if status == "answered" and handle in self._leases:
                self._leases[handle] = {**self._leases[handle], "status": "answered"}
            else:
                self._leases.pop(handle, None)
            task = None if assignment.get("gold") else self._tasks.get(assignment["task_id"])
            if task is not None:
                if status == "expired" and task.doc.get("annotators"):
                    # Only the named annotators may answer it: one whose lease ran out (say, the
                    # lease call timed out at the client after the store had leased it) must be
                    # able to take it up again, or the task waits forever (the UKPConvArg1 stack
                    # replay stalled with 871 such leases). The store allows it (_take_up_expired).
                    task.holders.discard(assignment["worker_id"])
                self._end_running(task, give_back=status != "answered")

    def held_project(self, worker_id: str, handle: str) -> str:
        """The project of a task leased to this worker (refusals as for an answer)."""
        return self._held(worker_id, handle)["project_id"]

    def answer(self, worker_id: str, handle: str, label: str, label_set: list[str] | None = None) -> Answered:
        """`label_set`: a multi-label answer's set, checked against the project by the caller
        (labelstream.common.projects.label_set_problem); `label` is then its key."""
        assignment = self._held(worker_id, handle)
        if assignment.get("gold"):
            return self._answer_gold(assignment, label, label_set)
        task_id = assignment["task_id"]
        now = now_ms()
        # the lease copied what the answer needs; assignments leased before that was done read the task
        task = assignment.get("task") or self.tasks.find_one({"_id": task_id})
        if task is None:
            raise PoolError("NOT_FOUND", f"task {handle!r} does not exist any more")
        if label_set is None and label not in task["labels"]:
            raise PoolError("INVALID_ARGUMENT", f"label {label!r} is not one of {task['labels']}")
        pick = _pick_of(assignment, label)
        label = pick.label if pick else label
        response = events_pb2.HumanResponse(
            schema_version=SCHEMA_VERSION, project_id=assignment["project_id"], item_id=task["item_id"],
            task_id=task_id, worker_id=worker_id, label=label, answered_at_ms=now,
            duration_ms=now - assignment["leased_at_ms"], ingested_at_ms=task.get("ingested_at_ms", 0),
            task_overlap=task["overlap"], model_label=task.get("model_label", ""),
            model_confidence=task.get("model_confidence", 0.0), model_name=task.get("model_name", ""),
            model_version=task.get("model_version", ""), pay=assignment.get("pay", 0.0),
            max_answers=task.get("max_answers", 0))
        if pick:
            response.display_order.extend(assignment["display_order"])
            response.displayed_position = pick.position
        outbox = {"_id": assignment["_id"], "task_id": task_id, "worker_id": worker_id,
                  "payload": response.SerializeToString(), "traceparent": task.get("traceparent", ""),
                  "published": False, "created_ms": now}
        self._answer_batches.submit(_AnswerWrite(assignment, label, now, outbox))
        return Answered(assignment["project_id"], list(task["labels"]), label, response.duration_ms,
                        assignment.get("pay", 0.0), response, task.get("traceparent", ""),
                        label_set=label_set, **_seen(pick))

    def _gold_item(self, project_id: str, task_id: str) -> dict | None:
        gold_id = task_id.removeprefix("gold|")
        cached = next((g for g in self.gold_items(project_id) if g["_id"] == gold_id), None)
        return cached or self.gold.find_one({"_id": gold_id})

    def _answer_gold(self, assignment: dict, label: str, label_set: list[str] | None = None) -> Answered:
        item = self._gold_item(assignment["project_id"], assignment["task_id"])
        if item is None:
            raise PoolError("NOT_FOUND", f"task {assignment['handle']!r} does not exist any more")
        if label_set is not None:
            # gold per label: each of the project's labels is one check (in or out, as gold has it)
            gold_set = set(parse_label_set(item["label"]) or [])
            checks = [(name in label_set) == (name in gold_set) for name in item["labels"]]
            now = now_ms()
            self._answer_batches.submit(_AnswerWrite(assignment, label, now, None))
            return Answered(assignment["project_id"], list(item["labels"]), label,
                            now - assignment["leased_at_ms"], assignment.get("pay", 0.0), gold_correct=all(checks),
                            label_set=label_set, gold_label_checks=checks)
        if label not in item["labels"]:
            raise PoolError("INVALID_ARGUMENT", f"label {label!r} is not one of {item['labels']}")
        pick = _pick_of(assignment, label)
        label = pick.label if pick else label
        now = now_ms()
        self._answer_batches.submit(_AnswerWrite(assignment, label, now, None))
        return Answered(assignment["project_id"], list(item["labels"]), label, now - assignment["leased_at_ms"],
                        assignment.get("pay", 0.0), gold_correct=label == item["label"],
                        gold_anti_shortcut=answers_no_shortcut(item), **_seen(pick))

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
        if ended and not assignment.get("gold"):
            self.tasks.update_one({"_id": assignment["task_id"]},
                                  {"$inc": {"open_slots": 1}, "$set": {"status": "open"}})
        if ended:
            self._ended(assignment, status)
        else:
            self._settle(assignment)
        return bool(ended)

    def _settle(self, assignment: dict) -> None:
        """A lease this process thought running had ended in the store (another process answered
        or ended it): follow the store."""
        stored = self.assignments.find_one({"_id": assignment["_id"]}, {"status": 1})
        status = stored["status"] if stored else "expired"
        self._ended(assignment, status if status == "answered" else "gone")

    def release_worker(self, project_id: str, worker_id: str) -> int:
        """A blocked worker's open leases go back to the pool."""
        released = 0
        for assignment in self.assignments.find({"project_id": project_id, "worker_id": worker_id,
                                                 "status": "leased"}):
            with self._lock:
                assignment = self._leases.get(assignment["handle"], assignment)
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

    def reclaim_expired(self) -> int:
        """Free the slots of this process's leases that ran out without an answer (answered ones it
        kept are let go once their lease has run out)."""
        now = now_ms()
        with self._lock:
            expired = [a for a in self._leases.values() if a["lease_expires_ms"] < now]
            for assignment in expired:
                if assignment["status"] != "leased":
                    del self._leases[assignment["handle"]]
        reclaimed = 0
        for assignment in expired:
            if assignment["status"] != "leased":
                continue
            if not assignment.get("gold") and self.responses.find_one({"_id": assignment["_id"]}) is not None:
                # answered in the store (a crash between the outbox record and the assignment)
                self.assignments.update_one({"_id": assignment["_id"], "status": "leased"},
                                            {"$set": {"status": "answered"}})
                self._ended(assignment, "answered")
                continue
            # kept as "expired" (not deleted) so a late answer is told its lease expired
            reclaimed += self._give_back(assignment, "expired")
        return reclaimed


def _pages(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _pick_of(assignment: dict, shown_label: str) -> Pick | None:
    """A preference answer mapped back to the canonical response; None for other tasks."""
    if "display_order" not in assignment:
        return None
    return canonical_pick(shown_label, assignment["display_order"], assignment["shown_lengths"])


def _seen(pick: Pick | None) -> dict:
    return {"position": pick.position, "option_lengths": pick.option_lengths} if pick else {}
