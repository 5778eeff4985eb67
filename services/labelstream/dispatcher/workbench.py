"""What workers and admins can do, behind one façade that both the gRPC API and the
annotator web page call: authentication, rate limits, qualification and hidden gold, blocking,
anti-fraud signals, breaks and pay. Every refusal is a PoolError naming its gRPC status.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import secrets
import statistics
import threading
import time
from dataclasses import dataclass, field

from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from labelstream.common.batching import GroupCommit
from labelstream.common.failpoints import failpoint
from labelstream.common.inputs import unsafe_character
from labelstream.common.kafka import SCHEMA_VERSION, Outgoing, Topics
from labelstream.common.outbox import Outbox
from labelstream.common.projects import QualityEventKind
from labelstream.common.store import Store, insert_new, item_key
from labelstream.common.telemetry import now_ms
from labelstream.crowd import quality
from labelstream.dispatcher.pool import Answered, Lease, PoolError, TaskPool
from labelstream.v1 import events_pb2, services_pb2

TOKEN_CACHE_SECONDS = 30.0
PAY_CACHE_SECONDS = 5.0      # pay is read on every lease; it changes only on a pay review
SESSION_GAP_MS = 5 * 60_000  # a pause this long ends a stretch of continuous work
STATS_REFRESH_TASKS = 10     # the worker's own gold accuracy is refreshed this rarely, so that a
                             # change right after an answer never tells them that task was gold


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def quality_key(project_id: str, worker_id: str) -> str:
    return f"{project_id}|{worker_id}"


class RateLimiter:
    """Token bucket per worker (per process)."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(max(1, per_minute // 6))  # bursts of up to ten seconds' worth
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def allow(self, worker_id: str) -> bool:
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(worker_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < 1:
                self.buckets[worker_id] = (tokens, now)
                return False
            self.buckets[worker_id] = (tokens - 1, now)
            return True


def quality_outgoing(event: events_pb2.QualityEvent) -> Outgoing:
    return Outgoing(Topics.QUALITY_EVENTS, item_key(event.project_id, event.worker_id or event.kind), event)


def quality_event_id(event: events_pb2.QualityEvent) -> str:
    """The outbox id of a quality event: a worker is blocked once per project, so that event's id
    says only who; the others are told apart by their time."""
    if event.kind == QualityEventKind.WORKER_BLOCKED:
        return f"worker_blocked|{event.project_id}|{event.worker_id}"
    return f"{event.kind}|{event.project_id}|{event.worker_id}|{event.at_ms}"


def blocked_event(project_id: str, worker_id: str, reason: str) -> events_pb2.QualityEvent:
    return events_pb2.QualityEvent(schema_version=SCHEMA_VERSION, project_id=project_id,
                                   kind=QualityEventKind.WORKER_BLOCKED, worker_id=worker_id, detail=reason,
                                   at_ms=now_ms())


@dataclass
class Outcome:
    """What an answer changed, for the caller to publish (its quality events are in the outbox
    already)."""
    response: events_pb2.HumanResponse | None = None
    traceparent: str = ""
    quality_events: list[Outgoing] = field(default_factory=list)


class Workbench:
    def __init__(self, store: Store, pool: TaskPool, admin_token: str, requests_per_minute: int,
                 seed: int | None = None, gather_s: float = 0.0, outbox: Outbox | None = None) -> None:
        """Quality events (a worker blocked, pay below the floor) are stored in `outbox` before
        they take effect; without one (tests of other rules) they are only returned."""
        self.store = store
        self.pool = pool
        self.outbox = outbox
        self.db = store.db
        self.admin_token_hash = hash_token(admin_token) if admin_token else ""
        self.limiter = RateLimiter(requests_per_minute)
        self.rng = random.Random(seed)
        self._tokens: dict[str, tuple[float, str]] = {}
        self._pay: dict[str, tuple[float, float]] = {}
        # the worker records that concurrent requests read, and the updates they write, go to the
        # store together (one round trip each way per batch)
        self._record_reads = GroupCommit("dispatcher_record_read", self._read_records, gather_s=gather_s)
        self._record_writes = GroupCommit("dispatcher_record_write", self._write_records, gather_s=gather_s)

    # Identity -----------------------------------------------------------------------------
    def authenticate(self, token: str) -> str:
        """The worker a token belongs to; UNAUTHENTICATED when missing or unknown."""
        if not token:
            raise PoolError("UNAUTHENTICATED", "sign in: send 'authorization: Bearer <your worker token>'")
        digest = hash_token(token)
        cached = self._tokens.get(digest)
        if cached and time.monotonic() - cached[0] < TOKEN_CACHE_SECONDS:
            worker_id = cached[1]
        else:
            doc = self.db.workers.find_one({"token_sha256": digest}, {"_id": 1})
            if doc is None:
                raise PoolError("UNAUTHENTICATED", "this token is not valid (it may have been rotated); "
                                                   "ask your project admin for a new one")
            worker_id = doc["_id"]
            self._tokens[digest] = (time.monotonic(), worker_id)
        if not self.limiter.allow(worker_id):
            raise PoolError("RESOURCE_EXHAUSTED", "too many requests; slow down and retry in a few seconds")
        return worker_id

    def require_admin(self, token: str) -> None:
        if not self.admin_token_hash:
            raise PoolError("PERMISSION_DENIED", "admin calls are disabled: set LABELSTREAM_ADMIN_TOKEN "
                                                 "on the dispatcher")
        if not token:
            raise PoolError("UNAUTHENTICATED", "admin calls need 'authorization: Bearer <admin token>'")
        if not hmac.compare_digest(hash_token(token), self.admin_token_hash):
            raise PoolError("PERMISSION_DENIED", "this call needs the admin token")

    def create_worker(self, worker_id: str, rotate: bool = False) -> str:
        if not worker_id or len(worker_id) > 128 or any(c in worker_id for c in "|: \t\n"):
            raise PoolError("INVALID_ARGUMENT", "worker_id must be 1-128 characters without '|', ':' or spaces")
        if (unsafe := unsafe_character(worker_id, identifier=True)) is not None:
            raise PoolError("INVALID_ARGUMENT", f"worker_id contains {unsafe}: use printable characters only")
        token = "lsw_" + secrets.token_urlsafe(24)
        doc = {"_id": worker_id, "token_sha256": hash_token(token), "created_ms": now_ms()}
        try:
            self.db.workers.insert_one(doc)
        except DuplicateKeyError as exc:
            if not rotate:
                raise PoolError("ALREADY_EXISTS", f"worker {worker_id!r} exists; pass rotate_token to issue "
                                                  "a new token") from exc
            self.db.workers.update_one({"_id": worker_id}, {"$set": {"token_sha256": doc["token_sha256"]}})
            self._tokens.clear()
        return token

    # Per-project worker records -----------------------------------------------------------
    def policy(self, project_id: str) -> events_pb2.WorkerPolicy:
        return quality.effective_policy(self.store.get_project(project_id))

    def record(self, project_id: str, worker_id: str) -> dict:
        """This worker's record on this project (created on first use)."""
        return self._record_reads.submit((project_id, worker_id))

    def _read_records(self, wanted: list[tuple[str, str]]) -> list[dict]:
        keys = sorted({quality_key(p, w) for p, w in wanted})
        found = {d["_id"]: d for d in self.db.worker_quality.find({"_id": {"$in": keys}})}
        fresh = [{"_id": quality_key(p, w), **quality.new_record(p, w, self.policy(p)), "session_start_ms": 0,
                  "last_active_ms": 0, "shown_gold_correct": 0, "shown_gold_wrong": 0}
                 for p, w in dict.fromkeys(wanted) if quality_key(p, w) not in found]
        if fresh:
            existing = insert_new(self.db.worker_quality, fresh)  # created meanwhile by another process
            found.update((d["_id"], d) for i, d in enumerate(fresh) if i not in existing)
            if existing:
                found.update((d["_id"], d) for d in self.db.worker_quality.find(
                    {"_id": {"$in": sorted(fresh[i]["_id"] for i in existing)}}))
        return [dict(found[quality_key(p, w)]) for p, w in wanted]

    def _write_records(self, updates: list[tuple[str, dict]]) -> list[bool]:
        self.db.worker_quality.bulk_write([UpdateOne({"_id": key}, update) for key, update in updates], ordered=False)
        return [True] * len(updates)

    def pay(self, project_id: str) -> float:
        cached = self._pay.get(project_id)
        if cached and time.monotonic() - cached[0] < PAY_CACHE_SECONDS:
            return cached[1]
        doc = self.db.pay_rates.find_one({"_id": project_id})
        if doc is not None:
            pay = doc["pay_per_answer"]
        else:
            spec = self.store.get_project(project_id)
            pay = spec.pay_per_answer if spec else 0.0
        self._pay[project_id] = (time.monotonic(), pay)
        return pay

    def blocked_projects(self, worker_id: str) -> frozenset[str]:
        return frozenset(d["project_id"] for d in self.db.worker_quality.find(
            {"worker_id": worker_id, "status": quality.BLOCKED}, {"project_id": 1}))

    # Work ---------------------------------------------------------------------------------
    def lease(self, worker_id: str, project_id: str = "") -> tuple[Lease, events_pb2.ProjectSpec, str]:
        """The next task for this worker, its project, and a break reminder (or "")."""
        if project_id:
            spec = self.store.get_project(project_id)
            if spec is None:
                raise PoolError("NOT_FOUND", f"project {project_id!r} does not exist")
            return self._lease_in(worker_id, spec)
        project = self.pool.open_project(exclude=self.blocked_projects(worker_id))
        spec = self.store.get_project(project) if project else None
        if spec is None:
            raise PoolError("NOT_FOUND", "no task is available for you right now; try again shortly")
        return self._lease_in(worker_id, spec)

    def _lease_in(self, worker_id: str, spec: events_pb2.ProjectSpec) -> tuple[Lease, events_pb2.ProjectSpec, str]:
        project_id = spec.project_id
        policy = quality.effective_policy(spec)
        record = self.record(project_id, worker_id)
        if record["status"] == quality.BLOCKED:
            raise PoolError("PERMISSION_DENIED", f"you can no longer work on project {project_id!r}: "
                                                 f"{record['blocked_reason']}")
        if record["status"] == quality.QUALIFYING and len(self.pool.gold_items(project_id)) < \
                policy.qualification_tasks:
            raise PoolError("NOT_FOUND", f"project {project_id!r} is not admitting new workers yet: it has too "
                                         "few gold tasks for qualification; try again later")
        reminder = self._check_break(record, policy)
        pay = self.pay(project_id)
        lease = None
        if quality.wants_gold(record, policy, self.rng):
            lease = self.pool.lease_gold(worker_id, project_id, pay)
            if lease is None and record["status"] == quality.QUALIFYING:
                raise PoolError("NOT_FOUND", f"project {project_id!r} has no qualification tasks for you yet; "
                                             "try again later")
        if lease is None:
            lease = self.pool.lease(worker_id, project_id, pay)
        if lease is None:
            raise PoolError("NOT_FOUND", "no task is available for you right now; try again shortly")
        return lease, spec, reminder

    def _check_break(self, record: dict, policy: events_pb2.WorkerPolicy) -> str:
        if policy.max_continuous_minutes <= 0:
            return ""  # no break rule: the session clock is not needed, so no write per lease
        now = now_ms()
        start = record["session_start_ms"]
        if not start or now - record["last_active_ms"] > max(SESSION_GAP_MS, policy.break_minutes * 60_000):
            start = now
        self.db.worker_quality.update_one({"_id": record["_id"]},
                                          {"$set": {"session_start_ms": start, "last_active_ms": now}})
        worked_min = (now - start) / 60_000
        if worked_min >= policy.max_continuous_minutes:
            raise PoolError("RESOURCE_EXHAUSTED",
                            f"you have worked {worked_min:.0f} minutes without a break; take a "
                            f"{policy.break_minutes:.0f}-minute break, then continue")
        if worked_min >= 0.8 * policy.max_continuous_minutes:
            left = policy.max_continuous_minutes - worked_min
            return f"You have worked {worked_min:.0f} minutes; a break is due in {left:.0f} minutes."
        return ""

    def answer(self, worker_id: str, handle: str, label: str) -> Outcome:
        answered = self.pool.answer(worker_id, handle, label)
        outcome = Outcome(answered.response, answered.traceparent)
        outcome.quality_events = self._account(worker_id, answered)
        return outcome

    def skip(self, worker_id: str, handle: str) -> None:
        self.pool.skip(worker_id, handle)

    def _durable(self, events: list[events_pb2.QualityEvent]) -> list[Outgoing]:
        """Store events in the outbox (an event stored before is not returned again)."""
        outgoing = [(quality_event_id(e), quality_outgoing(e)) for e in events]
        if self.outbox is None:
            return [out for _, out in outgoing]
        return self.outbox.put(outgoing)

    def _account(self, worker_id: str, answered: Answered) -> list[Outgoing]:
        """Pay, time, fraud signals and (for gold) accuracy and blocking."""
        project_id = answered.project_id
        policy = self.policy(project_id)
        record = self.record(project_id, worker_id)
        update = quality.record_answer(record, quality.AnswerFacts(answered.label, answered.labels,
                                                                   answered.duration_ms), answered.pay, policy)
        fields = dict(update.fields)
        if (record["tasks_done"] + 1) % STATS_REFRESH_TASKS == 0:
            fields.update(shown_gold_correct=record["gold_correct"], shown_gold_wrong=record["gold_wrong"])
        events: list[Outgoing] = []
        blocked = False
        if answered.gold_correct is not None:
            gold = quality.record_gold(record, answered.gold_correct, policy)
            if record["status"] == quality.QUALIFYING and gold["status"] != quality.QUALIFYING:
                fields.update(shown_gold_correct=gold["gold_correct"], shown_gold_wrong=gold["gold_wrong"])
            fields.update(gold)
            blocked = gold["status"] == quality.BLOCKED and record["status"] != quality.BLOCKED
            if blocked:  # the event is stored before the block takes effect
                events = self._durable([blocked_event(project_id, worker_id, gold["blocked_reason"])])
        self._record_writes.submit((record["_id"], {"$set": fields, "$inc": update.increments}))
        if blocked:
            self.pool.release_worker(project_id, worker_id)
            failpoint("dispatcher.block_stored")
        return events

    def block(self, project_id: str, worker_id: str, reason: str) -> list[Outgoing]:
        """An admin's block: the event is stored first, then the worker's record, then their
        open leases go back; the aggregator excludes their answers on the event."""
        record = self.record(project_id, worker_id)
        events = self._durable([blocked_event(project_id, worker_id, reason)])
        self.db.worker_quality.update_one({"_id": record["_id"]},
                                          {"$set": {"status": quality.BLOCKED, "blocked_reason": reason}})
        self.pool.release_worker(project_id, worker_id)
        failpoint("dispatcher.block_stored")
        return events

    def apply_block(self, project_id: str, worker_id: str, reason: str) -> bool:
        """A `worker_blocked` event heard on quality.events: make sure the block holds here too
        (a crash after the event was stored and before the record was written leaves only the
        event). Whether this changed anything."""
        record = self.record(project_id, worker_id)
        if record["status"] == quality.BLOCKED:
            return False
        self.db.worker_quality.update_one({"_id": record["_id"]},
                                          {"$set": {"status": quality.BLOCKED, "blocked_reason": reason}})
        self.pool.release_worker(project_id, worker_id)
        return True

    def add_mined_gold(self, event: events_pb2.QualityEvent) -> bool:
        """A gold_mined event from the monitor: the item joins the project's hidden gold (once)."""
        spec = self.store.get_project(event.project_id)
        if spec is None or event.label not in spec.labels or not event.text.strip():
            return False
        added, _ = self.pool.add_gold(event.project_id, [{
            "item_id": event.item_id, "text": event.text, "label": event.label, "labels": list(spec.labels),
            "weight": event.value or 1.0, "source": "mined"}])
        return added == 1

    def mark_suspect(self, project_id: str, worker_id: str, signal: str) -> None:
        """An outside signal (the monitor's alert): more gold for this worker."""
        record = self.record(project_id, worker_id)
        flags = record.get("flags", [])
        if signal not in flags:
            self.db.worker_quality.update_one({"_id": record["_id"]}, {"$set": {"flags": [*flags, signal]}})

    # Stats and pay ------------------------------------------------------------------------
    def stats(self, record: dict, admin: bool) -> services_pb2.WorkerStats:
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
            out.gold_rate = quality.gold_rate(record, self.policy(record["project_id"]))
        return out

    def my_stats(self, worker_id: str, project_id: str = "") -> list[services_pb2.WorkerStats]:
        query: dict = {"worker_id": worker_id}
        if project_id:
            query["project_id"] = project_id
        return [self.stats(doc, admin=False) for doc in self.db.worker_quality.find(query).sort("project_id", 1)]

    def worker_stats(self, project_id: str, worker_id: str) -> services_pb2.WorkerStats:
        doc = self.db.worker_quality.find_one({"_id": quality_key(project_id, worker_id)})
        if doc is None:
            raise PoolError("NOT_FOUND", f"worker {worker_id!r} has not worked on project {project_id!r}")
        return self.stats(doc, admin=True)

    def list_workers(self, project_id: str) -> list[services_pb2.WorkerStats]:
        return [self.stats(doc, admin=True)
                for doc in self.db.worker_quality.find({"project_id": project_id}).sort("worker_id", 1)]

    def review_pay(self, min_tasks: int = 5) -> list[Outgoing]:
        """Fair pay: per project with a minimum wage, compare the median worker's effective hourly
        rate with it and raise pay per answer ("raise") or report it ("alert"). The `low_pay`
        events, stored in the outbox before the raise, for the caller to publish."""
        events: list[Outgoing] = []
        for spec_doc in self.db.projects.find({"workers.min_hourly_wage": {"$gt": 0}}, {"_id": 1}):
            project_id = spec_doc["_id"]
            policy = self.policy(project_id)
            current = self.pay(project_id)
            # each worker's measured time per task, priced at today's pay (so a raise counts at once)
            rates = [current * 3_600_000 * r["tasks_done"] / r["work_ms"] for r in self.db.worker_quality.find(
                {"project_id": project_id, "tasks_done": {"$gte": min_tasks}}) if r["work_ms"] > 0]
            if not rates:
                continue
            median = statistics.median(rates)
            raised = quality.adjusted_pay(current, median, policy)
            if raised is None:
                continue
            detail = (f"median effective hourly rate {median:.2f} is below the minimum wage "
                      f"{policy.min_hourly_wage:.2f}")
            if policy.pay_policy == "raise":
                detail += f"; pay per answer raised from {current:.4f} to {raised:.4f}"
            events += self._durable([events_pb2.QualityEvent(
                schema_version=SCHEMA_VERSION, project_id=project_id, kind=QualityEventKind.LOW_PAY, value=median,
                threshold=policy.min_hourly_wage, detail=detail, at_ms=now_ms())])
            if policy.pay_policy == "raise":
                self.db.pay_rates.update_one({"_id": project_id}, {"$set": {"pay_per_answer": raised,
                                                                              "raised_at_ms": now_ms()}},
                                             upsert=True)
                self._pay.pop(project_id, None)  # this process pays the new rate at once
        return events
