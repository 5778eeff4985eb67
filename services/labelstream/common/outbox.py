"""A durable outbox for the events a service publishes outside a consumer batch.

An event born in a consumer batch is safe: the batch's offsets are committed only after its
output is acknowledged, so a crash replays the batch. An event born elsewhere (a gRPC call, a
background job: a worker blocked, pay below the wage floor, a quality alert, a correction after
a re-fit) has no such replay. So it is stored first, under an id that makes storing it twice a
no-op, and counts only once stored; then it is published, and marked once the broker has it. A
sweep publishes whatever a crash left unmarked (at-least-once: a consumer may see an event
twice, and every consumer's effects are keyed).

Each service owns its own collection (`outbox_<service>`). The dispatcher's answers use the
same pattern on their own records (`responses`), which the task pool writes in its batches.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence

from google.protobuf.message import Message
from pymongo import ASCENDING

from labelstream.common.producer import EventProducer, Outgoing
from labelstream.common.store import Store, insert_new
from labelstream.common.telemetry import log_fields, now_ms
from labelstream.v1 import events_pb2

log = logging.getLogger(__name__)
SWEEP_GRACE_MS = 5000  # an unmarked event younger than this may still be on its way
SWEEP_LIMIT = 500


def _message_class(full_name: str) -> type[Message]:
    name = full_name.rsplit(".", 1)[-1]
    cls = getattr(events_pb2, name, None)
    if cls is None:
        raise ValueError(f"the outbox holds a {full_name}, which labelstream.v1.events does not define")
    return cls


class Outbox:
    def __init__(self, store: Store, producer: EventProducer | None, service: str) -> None:
        """`producer` publishes (publish, sweep); an outbox only ever `put` to needs none."""
        self.collection = store.db[f"outbox_{service}"]
        self.producer = producer
        self.service = service

    def ensure_indexes(self) -> None:
        self.collection.create_index([("published", ASCENDING), ("created_ms", ASCENDING)])

    def put(self, events: Sequence[tuple[str, Outgoing]]) -> list[Outgoing]:
        """Store `(event id, event)` pairs; return the newly stored ones, each marking itself
        published once the broker acknowledges it. An id stored before is neither stored nor
        returned again (its first copy is published, or will be by the sweep)."""
        if not events:
            return []
        created = now_ms()
        docs = [{"_id": event_id, "topic": out.topic, "key": out.key,
                 "message_type": out.message.DESCRIPTOR.full_name,
                 "value": base64.b64encode(out.message.SerializeToString()).decode(),
                 "headers": [[k, base64.b64encode(v).decode()] for k, v in out.headers],
                 "created_ms": created, "published": False}
                for event_id, out in events]
        existing = insert_new(self.collection, docs)
        fresh = [(event_id, out) for i, (event_id, out) in enumerate(events) if i not in existing]
        return [self._marking(event_id, out) for event_id, out in fresh]

    def publish(self, events: Sequence[tuple[str, Outgoing]]) -> int:
        """Store, then publish at once (callers off the request path)."""
        outgoing = self.put(events)
        if outgoing:
            self._producer().publish(outgoing)
        return len(outgoing)

    def _producer(self) -> EventProducer:
        if self.producer is None:
            raise RuntimeError(f"outbox_{self.service} has no producer to publish with")
        return self.producer

    def _marking(self, event_id: str, out: Outgoing) -> Outgoing:
        earlier = out.on_published

        def mark() -> None:
            if earlier:
                earlier()
            self.collection.update_one({"_id": event_id}, {"$set": {"published": True}})

        return Outgoing(out.topic, out.key, out.message, list(out.headers), on_published=mark)

    def sweep(self, grace_ms: int = SWEEP_GRACE_MS) -> int:
        """Publish the events a crash left unpublished (older than `grace_ms`); how many."""
        docs = list(self.collection.find({"published": False, "created_ms": {"$lt": now_ms() - grace_ms}})
                    .sort("created_ms", ASCENDING).limit(SWEEP_LIMIT))
        if not docs:
            return 0
        outgoing = []
        for doc in docs:
            message = _message_class(doc["message_type"])()
            message.ParseFromString(base64.b64decode(doc["value"]))
            headers = [(k, base64.b64decode(v)) for k, v in doc.get("headers", [])]
            outgoing.append(Outgoing(doc["topic"], doc["key"], message, headers))
        self._producer().publish(outgoing)
        self.collection.update_many({"_id": {"$in": [d["_id"] for d in docs]}}, {"$set": {"published": True}})
        log.info("outbox sweep published events a crash had left", extra=log_fields(
            service=self.service, events=len(docs)))
        return len(docs)

