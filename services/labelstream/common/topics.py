"""The topics, their schema version, consumer groups, and creating the topics on a cluster."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from labelstream.common.failures import until_reachable
from labelstream.common.settings import Settings
from labelstream.v1 import events_pb2


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


def consumer_group(settings: Settings, service: str) -> str:
    """A service's consumer group; prefixed like its topics, so environments sharing a cluster
    never share (and rebalance) one group."""
    return f"{settings.kafka_topic_prefix}labelstream-{service}"


@dataclass(frozen=True)
class TopicState:
    partitions: int
    created: bool


def ensure_topics(settings: Settings, partitions: int = 3, replication_factor: int = 1,
                  timeout_s: float = 30.0) -> dict[str, TopicState]:
    """Create every labelstream topic that does not exist yet; existing ones are left as they are
    (growing a topic moves keys to other partitions: an operator's decision). Returns each topic's
    partition count and whether this call created it."""
    try:
        admin = until_reachable(timeout_s, KafkaError)(
            KafkaAdminClient, **settings.kafka_client_options(), client_id="labelstream-admin")
    except KafkaError as exc:
        raise RuntimeError(f"cannot reach Kafka at {settings.kafka_bootstrap} after {timeout_s:.0f}s: {exc}; "
                           "check LABELSTREAM_KAFKA_BOOTSTRAP and that the broker is up") from exc
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
