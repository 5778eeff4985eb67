"""Group commit: requests that arrive together share one store round trip.

The local store answers one command at a time (and a real MongoDB charges a round trip per
command), so a gRPC server whose threads each send their own small command spends its time
waiting in line. A `GroupCommit` lets the first caller that finds no batch in flight run every
request queued by then as one batch, while the others wait for their result: a lone request
runs at once with no added wait, and under load the batch grows with the queue instead of the
queue growing with the load.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import Histogram

BATCH_SIZE = Histogram("labelstream_group_commit_batch_size", "Requests carried by one group-commit batch",
                       ["batch"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
BATCH_SECONDS = Histogram("labelstream_group_commit_batch_seconds", "Time one group-commit batch took to run",
                          ["batch"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))

Request = TypeVar("Request")
Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Request, Result]):
    request: Request
    done: bool = False
    result: Result | None = None
    error: BaseException | None = None


class GroupCommit(Generic[Request, Result]):
    """Runs `run_batch(requests) -> results` (one result per request, in order) for requests that
    callers hand in concurrently. A result that is an exception is raised in its caller alone;
    an exception from `run_batch` itself is raised in every caller of that batch."""

    def __init__(self, name: str, run_batch: Callable[[Sequence[Request]], Sequence[Result | BaseException]],
                 max_batch: int = 256) -> None:
        self._sizes = BATCH_SIZE.labels(name)
        self._seconds = BATCH_SECONDS.labels(name)
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._changed = threading.Condition()
        self._queue: list[_Pending[Request, Result]] = []
        self._running = False
        self.batches = 0      # for tests and benchmarks: how many batches ran
        self.requests = 0     # and how many requests they carried

    def submit(self, request: Request) -> Result:
        pending: _Pending[Request, Result] = _Pending(request)
        with self._changed:
            self._queue.append(pending)
            while not pending.done:
                if self._running:
                    self._changed.wait()  # a batch is in flight: this request goes in the next one
                    continue
                self._running = True
                batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
                self._changed.release()
                self._sizes.observe(len(batch))
                try:
                    with self._seconds.time():
                        self._run(batch)
                finally:
                    self._changed.acquire()
                    self._running = False
                    self.batches += 1
                    self.requests += len(batch)
                    for done in batch:
                        done.done = True
                    self._changed.notify_all()  # callers of this batch return; one of the rest leads next
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
