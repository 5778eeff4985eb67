"""The work a worker does, behind one façade that both the gRPC API and the annotator web page
call: leasing (qualification and hidden gold, blocks, breaks), answering and skipping, accounting
an answer (pay, time, gold accuracy, blocking), admin blocks, mined gold and the pay review.

Who is calling (accounts), the per-project worker records and their stats, pay, and the quality
events are parts of their own, held here as attributes (`accounts`, `records`, `pay_rates`):
callers that need only a part (sign-in, stats) use it directly. What this class adds is the
order of effects across them: a quality event is stored in the outbox before the block or raise
it reports takes effect. Every refusal is a PoolError naming its gRPC status.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from labelstream.common.auth import TokenDirectory
from labelstream.common.failpoints import failpoint
from labelstream.common.outbox import Outbox
from labelstream.common.producer import Outgoing
from labelstream.common.projects import (
    is_multi_label,
    is_preference,
    label_set_key,
    label_set_problem,
    parse_label_set,
)
from labelstream.common.store import Store
from labelstream.common.telemetry import now_ms
from labelstream.crowd import quality
from labelstream.dispatcher.accounts import Accounts
from labelstream.dispatcher.pay import PayRates
from labelstream.dispatcher.pool import Answered, Lease, PoolError, TaskPool, gold_doc
from labelstream.dispatcher.quality_events import (
    blocked_event,
    quality_event_id,
    quality_outgoing,
    worker_snapshot_event,
)
from labelstream.dispatcher.worker_records import WorkerRecords, worker_policy
from labelstream.v1 import events_pb2

SESSION_GAP_MS = 5 * 60_000  # a pause this long ends a stretch of continuous work
STATS_REFRESH_TASKS = 10     # the worker's own gold accuracy is refreshed this rarely, so that a
                             # change right after an answer never tells them that task was gold


@dataclass
class Outcome:
    """What an answer changed, for the caller to publish: the response, and quality events (a
    block, in the outbox already; the worker's new snapshot)."""
    response: events_pb2.HumanResponse | None = None
    traceparent: str = ""
    quality_events: list[Outgoing] = field(default_factory=list)


class Workbench:
    def __init__(self, store: Store, pool: TaskPool, requests_per_minute: int, seed: int | None = None,
                 gather_s: float = 0.0, outbox: Outbox | None = None, tokens: TokenDirectory | None = None) -> None:
        """Quality events (a worker blocked, pay below the floor) are stored in `outbox` before
        they take effect; without one (tests of other rules) they are only returned. `tokens`: the
        process's token directory (labelstream.common.auth), shared with its gRPC interceptor."""
        self.store = store
        self.pool = pool
        self.outbox = outbox
        self.accounts = Accounts(store, requests_per_minute, tokens)
        self.records = WorkerRecords(store, gather_s=gather_s)
        self.pay_rates = PayRates(store, self.records)
        self.rng = random.Random(seed)

    # Work ---------------------------------------------------------------------------------
    def lease(self, worker_id: str, project_id: str = "") -> tuple[Lease, events_pb2.ProjectSpec, str]:
        """The next task for this worker, its project, and a break reminder (or "")."""
        if project_id:
            spec = self.store.get_project(project_id)
            if spec is None:
                raise PoolError("NOT_FOUND", f"project {project_id!r} does not exist")
            return self._lease_in(worker_id, spec)
        project = self.pool.open_project(exclude=self.records.blocked_projects(worker_id))
        spec = self.store.get_project(project) if project else None
        if spec is None:
            raise PoolError("NOT_FOUND", "no task is available for you right now; try again shortly")
        return self._lease_in(worker_id, spec)

    def _lease_in(self, worker_id: str, spec: events_pb2.ProjectSpec) -> tuple[Lease, events_pb2.ProjectSpec, str]:
        project_id = spec.project_id
        policy = quality.effective_policy(spec)
        record = self.records.get(project_id, worker_id)
        if record["status"] == quality.BLOCKED:
            raise PoolError("PERMISSION_DENIED", f"you can no longer work on project {project_id!r}: "
                                                 f"{record['blocked_reason']}")
        if record["status"] == quality.QUALIFYING and len(self.pool.gold_items(project_id)) < \
                policy.qualification_tasks:
            raise PoolError("NOT_FOUND", f"project {project_id!r} is not admitting new workers yet: it has too "
                                         "few gold tasks for qualification; try again later")
        reminder = self._check_break(record, policy)
        pay = self.pay_rates.per_answer(project_id)
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
        self.records.mark_active(record["_id"], start, now)
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
        spec = self.store.get_project(self.pool.held_project(worker_id, handle))
        label_set = None
        if spec is not None and is_multi_label(spec):
            label_set = answer_set(label, spec)
            label = label_set_key(label_set)
        answered = self.pool.answer(worker_id, handle, label, label_set)
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
        policy = worker_policy(self.store, project_id)
        record = self.records.get(project_id, worker_id)
        facts = quality.AnswerFacts(answered.label, answered.labels, answered.duration_ms, answered.position,
                                    answered.option_lengths, answered.label_set)
        update = quality.record_answer(record, facts, answered.pay, policy)
        fields = dict(update.fields)
        if (record["tasks_done"] + 1) % STATS_REFRESH_TASKS == 0:
            fields.update(shown_gold_correct=record["gold_correct"], shown_gold_wrong=record["gold_wrong"])
        events: list[Outgoing] = []
        blocked = False
        if answered.gold_correct is not None:
            gold = self._gold_update(record, answered, policy)
            if record["status"] == quality.QUALIFYING and gold["status"] != quality.QUALIFYING:
                fields.update(shown_gold_correct=gold["gold_correct"], shown_gold_wrong=gold["gold_wrong"])
            fields.update(gold)
            blocked = gold["status"] == quality.BLOCKED and record["status"] != quality.BLOCKED
            if blocked:  # the event is stored before the block takes effect
                events = self._durable([blocked_event(project_id, worker_id, gold["blocked_reason"])])
        self.records.write(record["_id"], {"$set": fields, "$inc": update.increments})
        if blocked:
            self.pool.release_worker(project_id, worker_id)
            failpoint("dispatcher.block_stored")
        after = {**update.applied_to(record), **fields}
        return [*events, quality_outgoing(worker_snapshot_event(after))]

    @staticmethod
    def _gold_update(record: dict, answered: Answered, policy: events_pb2.WorkerPolicy) -> dict:
        """The gold fields after a gold answer. A multi-label gold item is judged per label: each
        label is one gold outcome, so a worker who misses one label of seven is 6/7 right on it,
        not wrong (their gold accuracy is then a per-label accuracy, which is what the per-label
        aggregation weighs; qualification_tasks and min_gold_to_block count label judgements)."""
        checks = answered.gold_label_checks
        if checks is None:
            return quality.record_gold(record, bool(answered.gold_correct), policy, answered.gold_anti_shortcut)
        fields: dict = {}
        for correct in checks:
            fields = quality.record_gold({**record, **fields}, correct, policy)
        return fields

    def block(self, project_id: str, worker_id: str, reason: str) -> list[Outgoing]:
        """An admin's block: the event is stored first, then the worker's record, then their
        open leases go back; the aggregator excludes their answers on the event."""
        record = self.records.get(project_id, worker_id)
        events = self._durable([blocked_event(project_id, worker_id, reason)])
        self.records.set_blocked(record["_id"], reason)
        self.pool.release_worker(project_id, worker_id)
        failpoint("dispatcher.block_stored")
        return events

    def apply_block(self, project_id: str, worker_id: str, reason: str) -> bool:
        """A `worker_blocked` event heard on quality.events: make sure the block holds here too
        (a crash after the event was stored and before the record was written leaves only the
        event). Whether this changed anything."""
        record = self.records.get(project_id, worker_id)
        if record["status"] == quality.BLOCKED:
            return False
        self.records.set_blocked(record["_id"], reason)
        self.pool.release_worker(project_id, worker_id)
        return True

    def add_mined_gold(self, event: events_pb2.QualityEvent) -> bool:
        """A gold_mined event from the monitor: the item joins the project's hidden gold (once)."""
        spec = self.store.get_project(event.project_id)
        if spec is None or not event.text.strip():
            return False
        if is_multi_label(spec):
            labels = parse_label_set(event.label)
            if labels is None or label_set_problem(labels, spec) is not None:
                return False
        elif event.label not in spec.labels:
            return False
        if is_preference(spec) and len(event.responses) != spec.responses_per_item:
            return False
        added, _ = self.pool.add_gold(event.project_id, [gold_doc(
            spec, event.item_id, event.text, event.label, [r.text for r in event.responses], event.value, "mined")])
        return added == 1

    def review_pay(self, min_tasks: int = 5) -> list[Outgoing]:
        """Fair pay (see PayRates.review): each project's `low_pay` event is stored in the outbox
        before its raise, and returned for the caller to publish."""
        events: list[Outgoing] = []
        for finding in self.pay_rates.review(min_tasks):
            events += self._durable([finding.event])
            if finding.raise_to is not None:
                self.pay_rates.set_rate(finding.project_id, finding.raise_to)
        return events


def answer_set(label: str, spec: events_pb2.ProjectSpec) -> list[str]:
    """A multi-label answer (a JSON array of label names, in any order) as its sorted set, or a
    PoolError INVALID_ARGUMENT saying what is wrong with it."""
    labels = parse_label_set(label)
    if labels is None:
        raise PoolError("INVALID_ARGUMENT", f"project {spec.project_id!r} is multi_label: answer with a JSON array "
                                            f"of distinct labels, e.g. {label_set_key(spec.labels[:2])}")
    problem = label_set_problem(labels, spec)
    if problem is not None:
        raise PoolError("INVALID_ARGUMENT", problem[1])
    return labels
