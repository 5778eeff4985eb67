"""Pay per answer, and the fair-pay review that keeps it above a project's minimum wage.

A project sets its pay per answer; a review that finds the median worker earning less than the
project's minimum hourly wage reports it (a `low_pay` event) and, where the project says so,
raises the pay, which then lives in the `pay_rates` collection and overrides the project's.
Pay is read on every lease, so it is cached briefly; the caller stores a review's events before
it applies the raise (see Workbench.review_pay)."""

from __future__ import annotations

import statistics
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from cachetools import TTLCache

from labelstream.common.projects import PayPolicy
from labelstream.common.store import Store
from labelstream.common.telemetry import now_ms
from labelstream.crowd import quality
from labelstream.dispatcher.quality_events import low_pay_event
from labelstream.dispatcher.worker_records import WorkerRecords, worker_policy
from labelstream.v1 import events_pb2

PAY_CACHE_SECONDS = 5.0  # pay is read on every lease; it changes only on a pay review
PAY_CACHE_SIZE = 4096    # projects


@dataclass(frozen=True)
class PayFinding:
    """A project whose median worker earns below its minimum wage: the `low_pay` event, and the
    pay per answer to raise to (None where the project only wants the alert)."""
    project_id: str
    event: events_pb2.QualityEvent
    raise_to: float | None


class PayRates:
    def __init__(self, store: Store, records: WorkerRecords) -> None:
        self.store = store
        self.records = records
        self.pay_rates = store.db.pay_rates
        self._cache: TTLCache[str, float] = TTLCache(maxsize=PAY_CACHE_SIZE, ttl=PAY_CACHE_SECONDS)
        self._lock = threading.Lock()

    def per_answer(self, project_id: str) -> float:
        """What an answer on this project pays now: a raise, else the project's own pay."""
        with self._lock:
            cached = self._cache.get(project_id)
        if cached is not None:
            return cached
        doc = self.pay_rates.find_one({"_id": project_id})
        if doc is not None:
            pay = doc["pay_per_answer"]
        else:
            spec = self.store.get_project(project_id)
            pay = spec.pay_per_answer if spec else 0.0
        with self._lock:
            self._cache[project_id] = pay
        return pay

    def set_rate(self, project_id: str, pay_per_answer: float) -> None:
        """A raise: stored for every dispatcher, and paid by this process at once."""
        self.pay_rates.update_one({"_id": project_id}, {"$set": {"pay_per_answer": pay_per_answer,
                                                                 "raised_at_ms": now_ms()}}, upsert=True)
        with self._lock:
            self._cache.pop(project_id, None)

    def review(self, min_tasks: int = 5) -> Iterator[PayFinding]:
        """Fair pay: per project with a minimum wage, compare the median worker's effective hourly
        rate (over the workers with at least `min_tasks` answers) with it. Lazily, one project at
        a time, so that the caller acts on each finding before the next project is reviewed."""
        for project_id in self.store.project_ids({"workers.min_hourly_wage": {"$gt": 0}}):
            policy = worker_policy(self.store, project_id)
            current = self.per_answer(project_id)
            # each worker's measured time per task, priced at today's pay (so a raise counts at once)
            rates = [current * 3_600_000 * r["tasks_done"] / r["work_ms"]
                     for r in self.records.experienced(project_id, min_tasks) if r["work_ms"] > 0]
            if not rates:
                continue
            median = statistics.median(rates)
            raised = quality.adjusted_pay(current, median, policy)
            if raised is None:
                continue
            detail = (f"median effective hourly rate {median:.2f} is below the minimum wage "
                      f"{policy.min_hourly_wage:.2f}")
            raise_to = raised if policy.pay_policy == PayPolicy.RAISE else None
            if raise_to is not None:
                detail += f"; pay per answer raised from {current:.4f} to {raised:.4f}"
            yield PayFinding(project_id, low_pay_event(project_id, median, policy.min_hourly_wage, detail), raise_to)
