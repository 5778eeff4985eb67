"""Kafka topics, a keyed acks=all producer and an at-least-once consumer loop.

The loop hands each polled batch to a handler, publishes what the handler returns, waits
until the broker has acknowledged it, and only then commits the batch's offsets. A handler
that raises a transient error gets the same batch again after a backoff; a message that can
never be handled (InvalidMessage) goes to the dead-letter topic with a machine-readable reason.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
from opentelemetry import context as otel_context

from labelstream.common.settings import Settings
from labelstream.common.telemetry import (
    HANDLE_SECONDS,
    MESSAGES,
    PUBLISHED,
    Headers,
    context_from_headers,
    log_fields,
    now_ms,
    trace_headers,
)
from labelstream.v1 import events_pb2

log = logging.getLogger(__name__)


class Topics:
    ITEMS_RAW = "items.raw"
    ITEMS_ACCEPTED = "items.accepted"
    ITEMS_DLQ = "items.dlq"
    PREDICTIONS = "predictions"
    LABELS_AUTO = "labels.auto"
    TASKS_HUMAN = "tasks.human"
    RESPONSES_HUMAN = "responses.human"
    LABELS_FINAL = "labels.final"
    QUALITY_EVENTS = "quality.events"

    ALL = (ITEMS_RAW, ITEMS_ACCEPTED, ITEMS_DLQ, PREDICTIONS, LABELS_AUTO, TASKS_HUMAN,
           RESPONSES_HUMAN, LABELS_FINAL, QUALITY_EVENTS)


SCHEMA_VERSION = events_pb2.SCHEMA_VERSION_1


class InvalidMessage(Exception):
    """A message that can never be handled; it goes to the dead-letter topic."""

    def __init__(self, reason: str, detail: str, project_id: str = "", item_id: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.project_id = project_id
        self.item_id = item_id


@dataclass(frozen=True)
class Incoming:
    topic: str  # without the configured prefix
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers

    @property
    def trace_context(self) -> otel_context.Context:
        return context_from_headers(self.headers)

    def header(self, name: str) -> str:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return ""


@dataclass
class Outgoing:
    topic: str
    key: str
    message: Message
    headers: Headers = field(default_factory=trace_headers)  # the current span's context
    # Runs once the broker has acknowledged the message: marks an outbox record as published.
    on_published: Callable[[], None] | None = None


M = TypeVar("M", bound=Message)


def decode(record: Incoming, message_type: type[M]) -> M:
    """Parse a protobuf event, rejecting unknown schema versions."""
    message = message_type()
    try:
        message.ParseFromString(record.value)
    except DecodeError as exc:
        raise InvalidMessage("bad_protobuf", f"not a {message_type.DESCRIPTOR.full_name}: {exc}") from exc
    version = getattr(message, "schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise InvalidMessage(
            "unknown_schema_version",
            f"{message_type.DESCRIPTOR.full_name} schema_version={version}, this service reads {SCHEMA_VERSION}",
            getattr(message, "project_id", ""), getattr(message, "item_id", ""))
    return message


def consumer_group(settings: Settings, service: str) -> str:
    """A service's consumer group; prefixed like its topics, so environments sharing a cluster
    never share (and rebalance) one group."""
    return f"{settings.kafka_topic_prefix}labelstream-{service}"


def dead_letter(record: Incoming, error: InvalidMessage, service: str) -> Outgoing:
    letter = events_pb2.DeadLetter(
        schema_version=SCHEMA_VERSION, reason=error.reason, detail=error.detail,
        source_topic=record.topic, source_partition=record.partition, source_offset=record.offset,
        payload=record.value, service=service, project_id=error.project_id, item_id=error.item_id,
        at_ms=now_ms())
    key = error.item_id or f"{record.topic}:{record.partition}:{record.offset}"
    return Outgoing(Topics.ITEMS_DLQ, key, letter, trace_headers(record.trace_context))


def _event_headers(message: Message) -> Headers:
    headers: Headers = [
        ("content-type", f"application/x-protobuf; messageType={message.DESCRIPTOR.full_name}".encode()),
        ("schema-version", str(getattr(message, "schema_version", SCHEMA_VERSION)).encode()),
    ]
    for name in ("project_id", "item_id"):
        value = getattr(message, name, "")
        if value:
            headers.append((name.replace("_", "-"), value.encode()))
    return headers


class EventProducer:
    """Keyed protobuf producer with acks=all; `publish` returns once the broker has them all."""

    def __init__(self, settings: Settings, service: str) -> None:
        self._prefix = settings.kafka_topic_prefix
        self._service = service
        self._producer = KafkaProducer(
            **settings.kafka_client_options(),
            client_id=f"labelstream-{service}",
            acks="all",
            retries=5,
            linger_ms=5,
            max_in_flight_requests_per_connection=1,
            metrics_enabled=False,  # kafka-python's own sensors, per record: unused, and a tenth of its CPU
        )

    def publish(self, messages: Iterable[Outgoing], timeout_s: float = 30.0) -> int:
        futures = []
        sent = list(messages)
        for out in sent:
            futures.append(self._producer.send(
                self._prefix + out.topic,
                key=out.key.encode(),
                value=out.message.SerializeToString(),
                headers=_event_headers(out.message) + list(out.headers),
            ))
            PUBLISHED.labels(self._service, out.topic).inc()
        self._producer.flush(timeout=timeout_s)
        for future in futures:
            future.get(timeout=timeout_s)  # raises if the broker did not acknowledge
        for out in sent:
            if out.on_published:
                out.on_published()
        return len(futures)

    def close(self) -> None:
        self._producer.flush(timeout=10)
        self._producer.close(timeout=10)


BatchHandler = Callable[[Sequence[Incoming]], list[Outgoing]]
RecordHandler = Callable[[Incoming], list[Outgoing]]


def per_record(handle: RecordHandler, service: str) -> BatchHandler:
    """A batch handler that handles records one by one, dead-lettering invalid ones."""

    def handle_batch(records: Sequence[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for record in records:
            try:
                out.extend(handle(record))
                MESSAGES.labels(service, record.topic, "ok").inc()
            except InvalidMessage as error:
                log.warning("dead-lettered", extra=log_fields(
                    topic=record.topic, offset=record.offset, reason=error.reason, detail=error.detail))
                MESSAGES.labels(service, record.topic, "dead_lettered").inc()
                out.append(dead_letter(record, error, service))
        return out

    return handle_batch


def by_topic(handlers: dict[str, BatchHandler]) -> BatchHandler:
    """One batch handler for a consumer of several topics: each record to its topic's handler."""

    def handle_batch(records: Sequence[Incoming]) -> list[Outgoing]:
        by_topic: dict[str, list[Incoming]] = {}
        for record in records:  # order is kept within a topic (and so within a partition)
            by_topic.setdefault(record.topic, []).append(record)
        out: list[Outgoing] = []
        for topic, group in by_topic.items():
            out.extend(handlers[topic](group))
        return out

    return handle_batch


# Called with the partitions this process owns, by topic (without the prefix), after each rebalance.
AssignmentListener = Callable[[dict[str, set[int]]], None]


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, prefix: str, listener: AssignmentListener) -> None:
        self._prefix = prefix
        self._listener = listener

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        pass  # the assignment that follows says what is owned now

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        owned: dict[str, set[int]] = {}
        for tp in assigned:
            owned.setdefault(tp.topic[len(self._prefix):], set()).add(tp.partition)
        log.info("partitions assigned", extra=log_fields(owned={t: sorted(p) for t, p in owned.items()}))
        self._listener(owned)


class ConsumerLoop:
    """At-least-once consumption: handle a batch, publish its output, then commit."""

    def __init__(self, settings: Settings, service: str, topics: Sequence[str], handler: BatchHandler,
                 producer: EventProducer, on_assigned: AssignmentListener | None = None) -> None:
        """`on_assigned` hears which partitions the group gave this process, before any of their
        records is handled (a service that owns state per partition loads it there)."""
        self._settings = settings
        self._service = service
        self._topics = list(topics)
        self._handler = handler
        self._producer = producer
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._prefix = settings.kafka_topic_prefix
        self.batches_committed = 0
        self._consumer = KafkaConsumer(
            **settings.kafka_client_options(),
            group_id=consumer_group(settings, service),
            client_id=f"labelstream-{service}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.kafka_poll_max_records,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
            metrics_enabled=False,
        )
        self._consumer.subscribe(topics=[self._prefix + t for t in self._topics],
                                 listener=_Rebalance(self._prefix, on_assigned) if on_assigned else None)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def pause(self, reason: str) -> None:
        """Stop fetching (backpressure: e.g. the model server is down); the group membership stays."""
        if not self._paused.is_set():
            log.warning("pausing consumption", extra=log_fields(reason=reason))
        self._paused.set()

    def resume(self) -> None:
        if self._paused.is_set():
            log.info("resuming consumption")
        self._paused.clear()

    def _poll_batch(self) -> dict[TopicPartition, list]:
        """Up to kafka_poll_max_records records, waiting at most kafka_batch_wait_ms after the
        first one for the batch to fill (micro-batching by size and time)."""
        limit = self._settings.kafka_poll_max_records
        polled: dict[TopicPartition, list] = {}
        count = 0
        deadline = None
        while count < limit and not self._stop.is_set():
            timeout = self._settings.kafka_poll_timeout_ms
            if deadline is not None:
                timeout = int((deadline - time.monotonic()) * 1000)
                if timeout <= 0:
                    break
            chunk = self._consumer.poll(timeout_ms=timeout, max_records=limit - count)
            for tp, records in chunk.items():
                polled.setdefault(tp, []).extend(records)
                count += len(records)
            if deadline is None:
                if not count or not self._settings.kafka_batch_wait_ms:
                    break
                deadline = time.monotonic() + self._settings.kafka_batch_wait_ms / 1000
        return polled

    def run(self) -> None:
        log.info("consuming", extra=log_fields(topics=self._topics,
                                               group=consumer_group(self._settings, self._service)))
        backoff = 0.5
        try:
            while not self._stop.is_set():
                if self._paused.is_set():
                    self._consumer.pause(*self._consumer.assignment())
                    self._consumer.poll(timeout_ms=self._settings.kafka_poll_timeout_ms)  # keeps the group alive
                    continue
                if self._consumer.paused():
                    self._consumer.resume(*self._consumer.paused())
                polled = self._poll_batch()
                records = [
                    Incoming(tp.topic[len(self._prefix):], tp.partition, r.offset, r.key, r.value or b"",
                             list(r.headers or []))
                    for tp, batch in polled.items() for r in batch
                ]
                if not records:
                    continue
                try:
                    with HANDLE_SECONDS.labels(self._service).time():
                        self._producer.publish(self._handler(records))
                except Exception:
                    log.exception("batch failed; it will be retried", extra=log_fields(
                        records=len(records), backoff_s=backoff))
                    self._rewind(polled)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                backoff = 0.5
                self._commit()
        finally:
            self._consumer.close(autocommit=False)
            log.info("consumer closed", extra=log_fields(batches_committed=self.batches_committed))

    def _rewind(self, polled: dict[TopicPartition, list]) -> None:
        for tp, batch in polled.items():
            if batch:
                self._consumer.seek(tp, batch[0].offset)

    def _commit(self) -> None:
        try:
            self._consumer.commit()
            self.batches_committed += 1
        except (CommitFailedError, KafkaError) as exc:
            # The group rebalanced: the new owner re-handles the batch, and every effect is keyed.
            log.warning("commit failed after a rebalance", extra=log_fields(error=str(exc)))


@dataclass(frozen=True)
class TopicState:
    partitions: int
    created: bool


def ensure_topics(settings: Settings, partitions: int = 3, replication_factor: int = 1,
                  timeout_s: float = 30.0) -> dict[str, TopicState]:
    """Create every labelstream topic that does not exist yet; existing ones are left as they are
    (growing a topic moves keys to other partitions: an operator's decision). Returns each topic's
    partition count and whether this call created it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(**settings.kafka_client_options(), client_id="labelstream-admin")
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from exc
            time.sleep(0.5)
    try:
        wanted = [settings.kafka_topic_prefix + t for t in Topics.ALL]
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        for topic in missing:  # one by one: a topic created concurrently must not stop the others
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(topic, partitions, replication_factor)])
        # kafka-python 3 names the topic "name" (older releases: "topic")
        counts = {d.get("name", d.get("topic")): len(d["partitions"]) for d in admin.describe_topics(wanted)}
        return {t: TopicState(counts.get(t, 0), t in missing) for t in wanted}
    finally:
        admin.close()
