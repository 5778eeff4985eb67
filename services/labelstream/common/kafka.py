"""Kafka topics, records in and out, event decoding, dead letters and a keyed acks=all producer.

The consumer loop and its failure policy are in `labelstream.common.consumer`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from opentelemetry import context as otel_context

from labelstream.common.dead_letters import DEAD_LETTERS, DeadLetterReason, InvalidMessage
from labelstream.common.inputs import PROJECT_ID_PATTERN, unsafe_character
from labelstream.common.settings import Settings
from labelstream.common.telemetry import (
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


# The id fields of events: checked on every consumed event with the same rules as at the door.
ID_FIELDS = {"project_id": DeadLetterReason.BAD_PROJECT_ID, "item_id": DeadLetterReason.BAD_ITEM_ID,
             "task_id": DeadLetterReason.BAD_ID, "worker_id": DeadLetterReason.BAD_ID}


def id_problem(name: str, value: str) -> str | None:
    """What makes an event's id field unsafe (a phrase), or None; an empty id has none."""
    if not value:
        return None
    problem = unsafe_character(value, identifier=True)
    if problem is None and name == "project_id" and not PROJECT_ID_PATTERN.match(value):
        problem = "characters other than letters, digits, '_' and '-' (or more than 64)"
    return problem


def declared_message_type(record: Incoming) -> str:
    """The message type the producer named in the content-type header ("" when it named none)."""
    content_type = record.header("content-type")
    marker = "messageType="
    return content_type.split(marker, 1)[1].split(";", 1)[0].strip() if marker in content_type else ""


def decode(record: Incoming, message_type: type[M]) -> M:
    """Parse a protobuf event of this topic's type: a record that names another type, does not
    parse, carries fields the type lacks without naming its type (a foreign message that happens
    to parse), has an unknown schema version or an unsafe id is an InvalidMessage."""
    expected = message_type.DESCRIPTOR.full_name
    declared = declared_message_type(record)
    if declared and declared != expected:
        raise InvalidMessage(DeadLetterReason.BAD_PROTOBUF,
                             f"a {declared} on {record.topic}, which carries {expected}")
    message = message_type()
    try:
        message.ParseFromString(record.value)
    except DecodeError as exc:
        raise InvalidMessage(DeadLetterReason.BAD_PROTOBUF, f"not a {expected}: {exc}") from exc
    if not declared and len(UnknownFieldSet(message)):
        # our producers name the type, so a newer schema's extra fields are read past; a record
        # that names nothing and has fields this type lacks is another message
        raise InvalidMessage(DeadLetterReason.BAD_PROTOBUF,
                             f"not a {expected}: it has fields {expected} does not define")
    version = getattr(message, "schema_version", SCHEMA_VERSION)
    project_id, item_id = getattr(message, "project_id", ""), getattr(message, "item_id", "")
    if version != SCHEMA_VERSION:
        raise InvalidMessage(
            DeadLetterReason.UNKNOWN_SCHEMA_VERSION,
            f"{expected} schema_version={version}, this service reads {SCHEMA_VERSION}", project_id, item_id)
    for name, reason in ID_FIELDS.items():
        problem = id_problem(name, getattr(message, name, ""))
        if problem:
            raise InvalidMessage(reason, f"{expected}.{name} holds {problem}; ids are free of control, "
                                 "bidirectional and zero-width characters", "", "")
    return message


def consumer_group(settings: Settings, service: str) -> str:
    """A service's consumer group; prefixed like its topics, so environments sharing a cluster
    never share (and rebalance) one group."""
    return f"{settings.kafka_topic_prefix}labelstream-{service}"


def dead_letter(record: Incoming, error: InvalidMessage, service: str, error_type: str = "",
                attempts: int = 1, max_payload_bytes: int = 0) -> Outgoing:
    """The record as a DeadLetter on items.dlq; a payload over `max_payload_bytes` (a too_large
    record) keeps only its head, so the letter itself stays within what consumers accept."""
    # the letter names the item only by safe ids (the rejected ones are in the payload), so that
    # the letter itself passes every consumer's checks
    project_id, item_id = (value if not id_problem(name, value) else ""
                           for name, value in (("project_id", error.project_id), ("item_id", error.item_id)))
    letter = events_pb2.DeadLetter(
        schema_version=SCHEMA_VERSION, reason=error.reason, detail=error.detail,
        source_topic=record.topic, source_partition=record.partition, source_offset=record.offset,
        payload=record.value, service=service, project_id=project_id, item_id=item_id,
        at_ms=now_ms(), error_type=error_type, attempts=attempts, payload_size=len(record.value))
    if max_payload_bytes and len(record.value) > max_payload_bytes:
        letter.payload, letter.payload_truncated = record.value[:max_payload_bytes], True
    key = f"{project_id}:{item_id}" if item_id else f"{record.topic}:{record.partition}:{record.offset}"
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
            if out.topic == Topics.ITEMS_DLQ and isinstance(out.message, events_pb2.DeadLetter):
                DEAD_LETTERS.labels(self._service, out.message.source_topic, out.message.reason).inc()
            if out.on_published:
                out.on_published()
        return len(futures)

    def connected(self) -> bool:
        """Whether the producer reaches a broker now (a health probe; never raises)."""
        try:
            return bool(self._producer.bootstrap_connected())
        except Exception:
            return False

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
