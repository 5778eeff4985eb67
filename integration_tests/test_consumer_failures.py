# ruff: noqa: T201 - these tests print the figures they measured (pytest -s shows them)
"""The consumer loop's failure policy on the real broker: a record whose handler raises (the
original stall: json.loads of deeply nested JSON raising RecursionError) at the head of a
partition is dead-lettered as handler_error within a second or so, and the records behind it
are handled in order and committed."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence

import pytest
from kafka import KafkaConsumer, TopicPartition

from integration_tests.conftest import eventually
from labelstream.cli import client
from labelstream.common.consumer import ConsumerLoop
from labelstream.common.producer import EventProducer, Outgoing
from labelstream.common.records import Incoming
from labelstream.common.settings import Settings
from labelstream.common.topics import Topics, consumer_group, ensure_topics
from labelstream.v1 import events_pb2

pytestmark = pytest.mark.integration
RECORDS = 300


def test_a_handler_error_at_the_head_of_a_partition_is_dead_lettered_and_the_rest_flows(state):
    prefix = f"policy-{uuid.uuid4().hex[:8]}."
    settings = Settings.from_env({"LABELSTREAM_KAFKA_BOOTSTRAP": state.kafka_bootstrap,
                                  "LABELSTREAM_KAFKA_TOPIC_PREFIX": prefix,
                                  "LABELSTREAM_KAFKA_SESSION_TIMEOUT_MS": "6000"})
    ensure_topics(settings, partitions=1)
    producer = EventProducer(settings, "policy-test")
    # 30 KB: under the size limit, so the handler is what fails on it
    values = [b"[" * 30_000] + [json.dumps({"n": n}).encode() for n in range(1, RECORDS)]
    first_call_ms: list[float] = []
    producer.publish(Outgoing(Topics.PREDICTIONS, f"k{n}", events_pb2.DeadLetter(payload=value))
                     for n, value in enumerate(values))

    def handle(records: Sequence[Incoming]) -> list[Outgoing]:
        first_call_ms[:] = first_call_ms or [time.time() * 1000]
        out = []
        for record in records:
            doc = json.loads(events_pb2.DeadLetter.FromString(record.value).payload)  # RecursionError on record 0
            out.append(Outgoing(Topics.LABELS_AUTO, str(doc["n"]), events_pb2.FinalLabel(item_id=str(doc["n"]))))
        return out

    loop = ConsumerLoop(settings, "policy-test", [Topics.PREDICTIONS], handle, producer)
    started = time.monotonic()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        letters = eventually(lambda: client.read_topic(state.kafka_bootstrap, Topics.ITEMS_DLQ, events_pb2.DeadLetter,
                                                       prefix), timeout_s=60, interval_s=0.1)
        to_dlq_s = time.monotonic() - started
        outputs = eventually(lambda: (lambda found: found if len(found) >= RECORDS - 1 else None)(
            client.read_topic(state.kafka_bootstrap, Topics.LABELS_AUTO, events_pb2.FinalLabel, prefix)),
            timeout_s=60, interval_s=0.1)
        all_s = time.monotonic() - started
    finally:
        loop.stop()
        thread.join(timeout=30)
        producer.close()
    (letter,) = letters
    assert (letter.reason, letter.error_type, letter.attempts) == ("handler_error", "RecursionError", 3)
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (Topics.PREDICTIONS, 0, 0)
    assert letter.service == "policy-test" and letter.payload.endswith(b"[" * 100)
    assert [o.item_id for o in outputs] == [str(n) for n in range(1, RECORDS)], "every other record once, in order"
    committed = KafkaConsumer(bootstrap_servers=state.kafka_bootstrap,
                              group_id=consumer_group(settings, "policy-test"), enable_auto_commit=False)
    try:
        assert committed.committed(TopicPartition(prefix + Topics.PREDICTIONS, 0)) == RECORDS
    finally:
        committed.close()
    isolated_s = (letter.at_ms - first_call_ms[0]) / 1000
    print(f"\nhandler error at the head of the partition: dead-lettered {isolated_s:.2f} s after the first try "
          f"({to_dlq_s:.2f} s after the loop started, group join included); all {RECORDS - 1} records behind it "
          f"published {all_s:.2f} s after the start")
