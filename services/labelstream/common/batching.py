"""Group commit: requests that arrive together share one store round trip.

The local store answers one command at a time (and a real MongoDB charges a round trip per
command), so a gRPC server whose threads each send their own small command spends its time
waiting in line. A `GroupCommit` lets the first caller that finds no batch in flight run every
request queued by then as one batch, while the others wait for their result: under load the
batch grows with the queue instead of the queue growing with the load. A lone request runs at
once, unless the caller asks a leader with a short queue to gather for a moment (`gather_s`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prometheus_client import Histogram

BATCH_SIZE = Histogram("labelstream_group_commit_batch_size", "Requests carried by one group-commit batch",
                       ["batch"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
BATCH_SECONDS = Histogram("labelstream_group_commit_batch_seconds", "Time one group-commit batch took to run",
                          ["batch"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))

GATHER_BELOW = 8  # a leader finding this many requests queued runs them at once

Request = TypeVar("Request")
Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Request, Result]):
    request: Request
    # set once: when this request's batch has run (done) or when it is this request's turn to lead
    wake: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    result: Result | None = None
    error: BaseException | None = None


class GroupCommit(Generic[Request, Result]):
    """Runs `run_batch(requests) -> results` (one result per request, in order) for requests that
    callers hand in concurrently. A result that is an exception is raised in its caller alone;
    an exception from `run_batch` itself is raised in every caller of that batch.

    Each waiting caller is woken once, by its own event: when its batch has run, or when it is
    its turn to lead the next batch (a condition shared by all, notified for all, woke every
    waiter per batch: with a hundred request threads that was most of the batching's cost)."""

    def __init__(self, name: str, run_batch: Callable[[Sequence[Request]], Sequence[Result | BaseException]],
                 max_batch: int = 256, gather_s: float = 0.0) -> None:
        """`gather_s`: how long a leader that finds a short queue (under `GATHER_BELOW` requests)
        waits for more before it runs the batch. Each store command costs the client and the store
        a fixed ~0.3-0.5 ms of CPU whatever it carries, so at moderate load a millisecond or two
        of gathering halves the CPU per request; 0 runs a lone request at once."""
        self._gather_s = gather_s
        self._sizes = BATCH_SIZE.labels(name)
        self._seconds = BATCH_SECONDS.labels(name)
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Pending[Request, Result]] = []
        self._running = False
        self.batches = 0      # for tests and benchmarks: how many batches ran
        self.requests = 0     # and how many requests they carried

    def submit(self, request: Request) -> Result:
        pending: _Pending[Request, Result] = _Pending(request)
        with self._lock:
            self._queue.append(pending)
            leads = not self._running
            self._running = True
        if not leads:
            pending.wake.wait()  # a batch is in flight: this request goes in a later one
        while not pending.done:  # leading: run batches until this request's has run
            if self._gather_s and len(self._queue) < GATHER_BELOW:
                time.sleep(self._gather_s)
            with self._lock:
                batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
            self._sizes.observe(len(batch))
            try:
                with self._seconds.time():
                    self._run(batch)
            finally:
                with self._lock:
                    self.batches += 1
                    self.requests += len(batch)
                    for done in batch:
                        done.done = True
                    successor = next((p for p in self._queue), None) if pending.done else None
                    if pending.done and successor is None:
                        self._running = False
                for done in batch:
                    if done is not pending:
                        done.wake.set()
                if successor is not None:
                    successor.wake.set()  # it leads the batch of everything queued meanwhile
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    def _run(self, batch: list[_Pending[Request, Result]]) -> None:
        try:
            results = self._run_batch([p.request for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} requests returned {len(results)} results")
            for pending, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    pending.error = result
                else:
                    pending.result = result
        except BaseException as error:  # every caller of the batch hears of it
            for pending in batch:
                pending.error = error
