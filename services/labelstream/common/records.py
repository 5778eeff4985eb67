"""Consumed records: decoding them into events with the checks every consumer applies, and
setting a record that cannot be handled aside as a dead letter (its reasons are in
`labelstream.common.dead_letters`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet
from opentelemetry import context as otel_context

from labelstream.common.dead_letters import DEAD_LETTERS, DeadLetterReason, InvalidMessage
from labelstream.common.inputs import id_problem
from labelstream.common.producer import Outgoing
from labelstream.common.telemetry import Headers, context_from_headers, now_ms, trace_headers
from labelstream.common.topics import SCHEMA_VERSION, Topics
from labelstream.v1 import events_pb2


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


M = TypeVar("M", bound=Message)


# The id fields of events: checked on every consumed event with the same rules as at the door.
ID_FIELDS = {"project_id": DeadLetterReason.BAD_PROJECT_ID, "item_id": DeadLetterReason.BAD_ITEM_ID,
             "task_id": DeadLetterReason.BAD_ID, "worker_id": DeadLetterReason.BAD_ID}


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

    def count() -> None:  # once the dead-letter topic has acknowledged the letter
        DEAD_LETTERS.labels(service, record.topic, error.reason).inc()

    return Outgoing(Topics.ITEMS_DLQ, key, letter, trace_headers(record.trace_context), on_published=count)
