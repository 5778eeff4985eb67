"""Publishing answers: each is durable in the outbox (`responses`) before the caller hears
'accepted'; a background drain publishes them in batches off the request path, and the sweep
covers a crash in between."""

from __future__ import annotations

import queue
import time

from labelstream.common.producer import Outgoing
from labelstream.common.runtime import Runtime
from labelstream.common.store import item_key
from labelstream.common.telemetry import context_from_traceparent, trace_headers, tracer
from labelstream.common.topics import Topics
from labelstream.dispatcher.pool import TaskPool
from labelstream.dispatcher.workbench import Outcome
from labelstream.v1 import events_pb2

OUTBOX_GRACE_MS = 5000
# Published answers are marked in the outbox together, this often (well inside the grace above,
# so the sweep does not send them again): one store command per drain was most of the store's
# load from this thread.
MARK_PUBLISHED_EVERY_S = 0.5


def response_outgoing(response: events_pb2.HumanResponse, parent: str,
                      published: list[tuple[str, str]]) -> Outgoing:
    """The answer as a message; once the broker acknowledged it, its key lands in `published`,
    for the publishing thread to mark the whole batch in the outbox with one write."""
    key = (response.task_id, response.worker_id)
    with tracer().start_as_current_span("dispatcher.answer", context=context_from_traceparent(parent),
                                        attributes={"labelstream.task_id": response.task_id,
                                                    "labelstream.worker_id": response.worker_id}):
        headers = trace_headers()
    return Outgoing(Topics.RESPONSES_HUMAN, item_key(response.project_id, response.item_id), response, headers,
                    on_published=lambda: published.append(key))


class Publisher:
    """Answers are durable in the outbox before the caller hears 'accepted'; publishing them is
    batched off the request path (the outbox sweep covers a crash in between)."""

    def __init__(self, runtime: Runtime, pool: TaskPool) -> None:
        self.runtime = runtime
        self.pool = pool
        self.pending: queue.SimpleQueue[Outgoing] = queue.SimpleQueue()
        # acknowledged answers not yet marked in the outbox; only the drain thread touches it
        # (the producer calls on_published in the thread that publishes)
        self.published: list[tuple[str, str]] = []
        self.marked_at = 0.0

    def submit(self, outcome: Outcome) -> None:
        if outcome.response is not None:
            self.pending.put(response_outgoing(outcome.response, outcome.traceparent, self.published))
        for event in outcome.quality_events:  # a block is in the outbox already: this is the quick path
            self.pending.put(event)

    def drain(self) -> None:
        batch: list[Outgoing] = []
        while True:
            try:
                batch.append(self.pending.get(timeout=0.05) if not batch else self.pending.get_nowait())
            except queue.Empty:
                break
        if batch:
            self.runtime.producer.publish(batch)
        if self.published and time.monotonic() - self.marked_at >= MARK_PUBLISHED_EVERY_S:
            # kept until this write succeeds: a store error marks them on the next drain (and if
            # the process dies first, the outbox sweep sends them again: at-least-once)
            self.pool.mark_published_many(self.published)
            self.published.clear()
            self.marked_at = time.monotonic()
