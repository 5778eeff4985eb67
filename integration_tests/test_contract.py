"""The Kafka contract as an outside client sees it, and what bad input does."""

from __future__ import annotations

import json
import time
import urllib.request

import grpc
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from integration_tests.conftest import make_project
from labelstream.cli.stack import SERVICES, grpc_serving
from labelstream.common.channels import open_channel
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

pytestmark = pytest.mark.integration


def read_topic(bootstrap: str, topic: str, until, timeout_s: float = 60) -> list:
    """Records of `topic` from the beginning until `until(records)` holds."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while not until(records):
            assert time.monotonic() < deadline, f"timed out reading {topic}; got {len(records)} records"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def test_outside_client_json_in_protobuf_out(state):
    """A plain kafka-python producer (JSON) in, a plain consumer with the generated classes out."""
    make_project(state, "contract", auto_accept_threshold=0.01)  # everything auto: no workers needed
    producer = KafkaProducer(bootstrap_servers=state.kafka_bootstrap, acks="all")
    texts = {"c-1": "a gorgeous, moving film", "c-2": "a tedious, lifeless mess", "c-3": "fine acting"}
    for item_id, text in texts.items():
        producer.send("items.raw", key=item_id.encode(),
                      value=json.dumps({"project_id": "contract", "item_id": item_id, "text": text}).encode())
    producer.flush()
    producer.close()

    def all_final(records) -> bool:
        labels = [events_pb2.FinalLabel.FromString(r.value) for r in records]
        return {x.item_id for x in labels if x.project_id == "contract"} >= set(texts)

    records = read_topic(state.kafka_bootstrap, "labels.final", all_final)
    finals = [events_pb2.FinalLabel.FromString(r.value) for r in records]
    finals = {f.item_id: f for f in finals if f.project_id == "contract"}
    for item_id in texts:
        label = finals[item_id]
        assert label.schema_version == events_pb2.SCHEMA_VERSION_1
        assert label.label in ("negative", "positive")
        assert label.source == events_pb2.LABEL_SOURCE_AUTO
        assert label.model_name == "encoder_fewshot" and label.model_version == "1"
    headers = dict(next(r for r in records if r.key == b"contract:c-1").headers)
    assert headers["project-id"] == b"contract" and headers["schema-version"] == b"1"
    assert headers["traceparent"].startswith(b"00-")


MALFORMED = {
    "bad_json": (b'{"project_id": "dlq", "item_id": "x1", "text": ', b"application/json"),
    "bad_protobuf": (b"\xff\xff\xff\xff\x0f\x01", b"application/x-protobuf"),
    "unknown_project": (json.dumps({"project_id": "no-such-project", "item_id": "x2", "text": "hi"}).encode(), None),
    "empty_text": (json.dumps({"project_id": "dlq", "item_id": "x3", "text": "   "}).encode(), None),
    "too_large": (json.dumps({"project_id": "dlq", "item_id": "x4", "text": "word " * 5000}).encode(), None),
}


def test_malformed_input_goes_to_the_dead_letter_topic(state):
    make_project(state, "dlq")
    producer = KafkaProducer(bootstrap_servers=state.kafka_bootstrap, acks="all")
    for reason, (value, content_type) in MALFORMED.items():
        headers = [("content-type", content_type)] if content_type else []
        producer.send("items.raw", key=reason.encode(), value=value, headers=headers)
    producer.flush()
    producer.close()

    def seen(records) -> set[str]:
        letters = [events_pb2.DeadLetter.FromString(r.value) for r in records]
        return {x.reason for x in letters if x.source_topic == "items.raw"}

    records = read_topic(state.kafka_bootstrap, "items.dlq", lambda rs: seen(rs) >= set(MALFORMED))
    letters = [events_pb2.DeadLetter.FromString(r.value) for r in records]
    by_reason = {x.reason: x for x in letters}
    assert by_reason["bad_json"].payload == MALFORMED["bad_json"][0]
    assert by_reason["unknown_project"].project_id == "no-such-project"
    assert "16384" in by_reason["too_large"].detail
    assert all(x.service == "ingest" and x.detail for x in by_reason.values())
    for service in SERVICES:
        assert grpc_serving(state.grpc_target(service, token="")), f"{service} stopped serving after bad input"


@pytest.mark.parametrize(("item", "reason"), [
    (events_pb2.Item(project_id="dlq", item_id="g1", text=""), "empty_text"),
    (events_pb2.Item(project_id="nope", item_id="g2", text="hello"), "unknown_project"),
    (events_pb2.Item(project_id="dlq", item_id="g3", text="x" * 20000), "too_large"),
    (events_pb2.Item(project_id="dlq", item_id="g4", text="ok", gold_label="maybe"), "unknown_label"),
])
def test_grpc_submit_rejects_bad_items_with_invalid_argument(state, item, reason):
    make_project(state, "dlq")
    ingest = state.grpc_target("ingest", token=state.service_token)
    with open_channel(ingest) as channel, pytest.raises(grpc.RpcError) as error:
        services_pb2_grpc.IngestServiceStub(channel).Submit(services_pb2.SubmitRequest(item=item), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(reason)


def test_grpc_submit_accepts_and_deduplicates(state):
    make_project(state, "dlq")
    item = events_pb2.Item(project_id="dlq", item_id="g-ok", text="a fine film")
    with open_channel(state.grpc_target("ingest", token=state.service_token)) as channel:
        stub = services_pb2_grpc.IngestServiceStub(channel)
        first = stub.Submit(services_pb2.SubmitRequest(item=item), timeout=10)
        second = stub.Submit(services_pb2.SubmitRequest(item=item), timeout=10)
    assert (first.duplicate, second.duplicate) == (False, True)


def test_every_service_answers_health_and_serves_metrics(state):
    for service in SERVICES:
        assert grpc_serving(state.grpc_target(service, token=""), f"labelstream.{service}")
        port = state.ports.metrics[service]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
        assert "labelstream_batch_handle_seconds" in body, service
