# ruff: noqa: T201 - these tests print the figures they measured (pytest -s shows them)
"""Poison records on every consumed topic, mixed with valid traffic, on the real local stack:
every valid item gets exactly one final label, every poison record reaches the dead-letter topic
with a reason from every service that consumes its topic, and no service process restarts."""

from __future__ import annotations

import json
import random
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass

import pytest
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet
from kafka import KafkaProducer
from typer.testing import CliRunner

from integration_tests.conftest import eventually, make_project
from labelstream.cli import client
from labelstream.cli.main import app
from labelstream.cli.stack import SERVICES
from labelstream.common.dead_letters import DeadLetterReason
from labelstream.common.topics import Topics
from labelstream.simulation.workforce import WorkerProfile, Workforce
from labelstream.v1 import events_pb2

pytestmark = pytest.mark.integration
PROJECT = "poison"
HUGE = 100_000  # bytes: over LABELSTREAM_MAX_RECORD_BYTES (65,536)

# Each consumed topic: its message type and the services consuming it.
CONSUMED = {
    Topics.ITEMS_RAW: (events_pb2.Item, ("ingest",)),
    Topics.ITEMS_ACCEPTED: (events_pb2.Item, ("inference", "monitor")),
    Topics.PREDICTIONS: (events_pb2.Prediction, ("router", "monitor")),
    Topics.LABELS_AUTO: (events_pb2.RouteDecision, ("aggregator", "monitor")),
    Topics.TASKS_HUMAN: (events_pb2.HumanTask, ("dispatcher", "monitor")),
    Topics.RESPONSES_HUMAN: (events_pb2.HumanResponse, ("aggregator", "monitor")),
    Topics.QUALITY_EVENTS: (events_pb2.QualityEvent, ("inference", "router", "dispatcher", "aggregator")),
}
FOREIGN_CANDIDATES = (events_pb2.DeadLetter, events_pb2.HumanResponse, events_pb2.FinalLabel, events_pb2.Prediction,
                      events_pb2.RouteDecision, events_pb2.ProjectSpec)


@dataclass
class Poison:
    topic: str
    kind: str
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int = -1
    offset: int = -1


def not_a(message_type: type[Message], value: bytes) -> bool:
    """Whether protobuf itself tells `value` is no `message_type` (it does not parse, or has fields the
    type lacks): the inputs here must be poison by construction, not by what the code under test says."""
    message = message_type()
    try:
        message.ParseFromString(value)
    except DecodeError:
        return True
    return len(UnknownFieldSet(message)) > 0


def typed(message: Message) -> list[tuple[str, bytes]]:
    return [("content-type", f"application/x-protobuf; messageType={message.DESCRIPTOR.full_name}".encode())]


def sample_message(message_type: type[Message], item_id: str, text: str = "a fine film") -> Message:
    """A well-formed message of the type for this project, with `item_id` (and worker/task ids from it)."""
    fields = {"schema_version": events_pb2.SCHEMA_VERSION_1, "project_id": PROJECT, "item_id": item_id}
    names = {f.name for f in message_type.DESCRIPTOR.fields}
    extra = {"text": text, "task_id": f"t-{item_id}", "worker_id": f"w-{item_id}", "label": "positive",
             "kind": "verified_label", "labels": ["negative", "positive"], "probabilities": [0.5, 0.5]}
    return message_type(**fields, **{k: v for k, v in extra.items() if k in names})


def poison_for(topic: str, valid_id: str, rng: random.Random) -> list[Poison]:
    message_type, _ = CONSUMED[topic]
    out: list[Poison] = []
    noise = b""
    while not noise or not not_a(message_type, noise):
        noise = rng.randbytes(200)
    out.append(Poison(topic, "random_bytes", noise, []))
    whole = sample_message(message_type, "cut-me", text="x" * 300).SerializeToString()
    cut = next(whole[:n] for n in range(len(whole) // 2, len(whole)) if not_a(message_type, whole[:n]))
    out.append(Poison(topic, "truncated_protobuf", cut, []))
    foreign = next(m for m in (sample_message(t, "other-type") for t in FOREIGN_CANDIDATES if t is not message_type)
                   if not_a(message_type, m.SerializeToString()))
    for field in ("at_ms", "attempts"):  # fields few types have
        if field in {f.name for f in foreign.DESCRIPTOR.fields}:
            setattr(foreign, field, 7)
    out.append(Poison(topic, "other_message_type", foreign.SerializeToString(), []))
    out.append(Poison(topic, "deep_nesting", b"[" * 5000 + b"]" * 5000, []))
    if topic == Topics.ITEMS_RAW:
        def raw(item_id: str, text: str = "a fine film") -> bytes:
            return json.dumps({"project_id": PROJECT, "item_id": item_id, "text": text}).encode()
        json_type = [("content-type", b"application/json")]
        out.append(Poison(topic, "huge_value", raw("huge", "x" * HUGE), json_type))
        out.append(Poison(topic, "deep_nesting_json", b'{"project_id": "poison", "metadata": ' + b'{"a": ' * 5000
                          + b"1" + b"}" * 5001, json_type))
        out.append(Poison(topic, "bidi_override_id", raw("invoice\u202etxt.exe"), json_type))
        out.append(Poison(topic, "c1_control_id", raw("next\u0085line"), json_type))
        out.append(Poison(topic, "nul_suffix_id", raw(valid_id + "\u0000x"), json_type))
    else:
        huge = sample_message(message_type, "huge")
        names = {f.name for f in message_type.DESCRIPTOR.fields}
        setattr(huge, next(n for n in ("text", "reason", "detail", "model_name") if n in names), "x" * HUGE)
        assert huge.ByteSize() > HUGE
        out.append(Poison(topic, "huge_value", huge.SerializeToString(), typed(huge)))
        for kind, item_id in (("bidi_override_id", "invoice\u202etxt.exe"), ("c1_control_id", "next\u0085line"),
                              ("nul_suffix_id", valid_id + "\u0000")):
            message = sample_message(message_type, item_id)
            out.append(Poison(topic, kind, message.SerializeToString(), typed(message)))
    return out


def publish_poison(bootstrap: str, poison: list[Poison], partitions: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4 << 20)
    try:
        for i, record in enumerate(poison):
            future = producer.send(record.topic, value=record.value, key=f"poison-{i}".encode(),
                                   partition=i % partitions, headers=record.headers)
            meta = future.get(timeout=30)
            record.partition, record.offset = meta.partition, meta.offset
    finally:
        producer.close()


def dead_letters_total(port: int) -> Counter:
    """labelstream_dead_letters_total of one service's /metrics, by (topic, reason)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals: Counter = Counter()
    for line in text.splitlines():
        if line.startswith("labelstream_dead_letters_total{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split(","))
            totals[(labels["topic"].strip('"'), labels["reason"].strip('"'))] += float(line.rsplit(" ", 1)[1])
    return totals


def test_poison_on_every_consumed_topic_is_dead_lettered_and_the_streams_go_on(stack, state, db, demo_items):
    items = demo_items[820:880]
    make_project(state, PROJECT, overlap=1, max_overlap=2)
    pids = {name: stack.processes[name].pid for name in SERVICES}
    rng = random.Random(12)
    poison = [p for topic in CONSUMED for p in poison_for(topic, items[0]["item_id"], rng)]
    partitions = 3
    gold_by_text = {i["text"]: i["gold_label"] for i in items}
    with Workforce(state.grpc_target("dispatcher"), PROJECT, gold_by_text, count=4,
                   profile=WorkerProfile(accuracy=0.9, answer_ms=30)):
        started = time.monotonic()
        publish_poison(state.kafka_bootstrap, poison, partitions)  # at the heads of the partitions
        published_ms = time.time() * 1000
        client.publish_json_items(state.kafka_bootstrap, PROJECT, items)
        client.wait_for_final_labels(state.grpc_target("monitor"), PROJECT, len(items), timeout_s=420)
        all_final_s = time.monotonic() - started

    # every valid item: exactly one final label, stored once and published with one (label, version)
    stored = list(db.final_labels.find({"project_id": PROJECT}))
    assert sorted(d["item_id"] for d in stored) == sorted(i["item_id"] for i in items)
    messages: dict[str, set] = {}
    for label in client.read_all_final_labels(state.kafka_bootstrap, PROJECT):
        messages.setdefault(label.item_id, set()).add((label.label, label.version))
    assert set(messages) == {i["item_id"] for i in items}, "a poison record became a final label, or an item is lost"
    assert all(len(v) == 1 for v in messages.values()), {k: v for k, v in messages.items() if len(v) > 1}

    # every poison record: on the DLQ with a reason, from every service consuming its topic
    def letters() -> dict[tuple[str, int, int], list[events_pb2.DeadLetter]]:
        found: dict[tuple[str, int, int], list[events_pb2.DeadLetter]] = {}
        for letter in client.read_topic(state.kafka_bootstrap, Topics.ITEMS_DLQ, events_pb2.DeadLetter):
            found.setdefault((letter.source_topic, letter.source_partition, letter.source_offset), []).append(letter)
        return found

    def missing() -> list[tuple[str, str, str]]:
        found = letters()
        return [(p.topic, p.kind, service) for p in poison for service in CONSUMED[p.topic][1]
                if service not in {x.service for x in found.get((p.topic, p.partition, p.offset), [])}]

    assert eventually(lambda: not missing(), timeout_s=60), f"not dead-lettered: {missing()}"
    found = letters()
    reasons: Counter = Counter()
    by_kind: dict[str, set[str]] = {}
    first_letter_ms = []
    for p in poison:
        for letter in found[(p.topic, p.partition, p.offset)]:
            assert letter.reason in set(DeadLetterReason), letter.reason
            assert letter.detail and letter.payload_size == len(p.value), (p.kind, letter.service)
            assert letter.payload == p.value or letter.payload_truncated and p.value.startswith(letter.payload)
            reasons[letter.reason] += 1
            by_kind.setdefault(p.kind, set()).add(letter.reason)
            first_letter_ms.append(letter.at_ms - published_ms)
    assert by_kind["huge_value"] == {"too_large"}
    assert by_kind["deep_nesting_json"] == {"bad_json"}
    assert by_kind["bidi_override_id"] <= {"bad_item_id"} and by_kind["nul_suffix_id"] <= {"bad_item_id"}
    assert "handler_error" not in reasons, "every poison here is caught by validation, not by a failing handler"

    # the monitor read every letter (none of them too large for it, though they carry large records)
    assert not [key for key in dead_letters_total(state.ports.metrics["monitor"]) if key[0] == Topics.ITEMS_DLQ]
    truncated = [x for xs in found.values() for x in xs if x.payload_truncated]
    assert truncated and all(x.reason == "too_large" and x.payload_size > len(x.payload) for x in truncated)

    # the counter every service exports agrees with the letters it wrote
    for service in ("ingest", "router", "monitor"):
        exported = dead_letters_total(state.ports.metrics[service])
        written = Counter((x.source_topic, x.reason) for xs in found.values() for x in xs if x.service == service)
        assert all(exported[key] >= count for key, count in written.items()), (service, exported, written)

    assert {name: stack.processes[name].pid for name in SERVICES} == pids, "a service process was restarted"
    assert all(stack.processes[name].poll() is None for name in SERVICES), "a service process died"

    # the command line shows them, and replays a fixed producer's records to their source topic
    shown = CliRunner().invoke(app, ["dead-letters", "--topic", Topics.ITEMS_RAW, "--run-dir", state.run_dir])
    assert shown.exit_code == 0 and "bad_item_id" in shown.output and "too_large" in shown.output, shown.output
    def raw_letters(kind: str) -> list[events_pb2.DeadLetter]:
        (record,) = [p for p in poison if p.topic == Topics.ITEMS_RAW and p.kind == kind]
        return found[(record.topic, record.partition, record.offset)]

    assert client.replay_dead_letters(state.kafka_bootstrap, raw_letters("huge_value")) == 0, \
        "a letter holding a too-large record's head only is not replayed"
    before = len(client.read_dead_letters(state.kafka_bootstrap, reason="bad_item_id", source_topic=Topics.ITEMS_RAW))
    assert client.replay_dead_letters(state.kafka_bootstrap, raw_letters("bidi_override_id")) == 1
    assert eventually(lambda: len(client.read_dead_letters(
        state.kafka_bootstrap, reason="bad_item_id", source_topic=Topics.ITEMS_RAW)) == before + 1, timeout_s=30), \
        "the replayed record reached ingest again (and, its id still unsafe, the DLQ)"

    # items behind the poison: the auto-path ones are final within seconds of being published
    auto = [d for d in stored if d.get("source") == "LABEL_SOURCE_AUTO"]  # stored as the proto's JSON
    assert auto, "no item took the auto path; the timing below would say nothing"
    behind_s = sorted((int(d["finalized_at_ms"]) - published_ms) / 1000 for d in auto)
    print(f"\npoison records: {len(poison)} on {len(CONSUMED)} topics, {sum(reasons.values())} dead letters; "
          f"by reason: {dict(sorted(reasons.items()))}")
    print(f"dead letters written {min(first_letter_ms) / 1000:.2f}-{max(first_letter_ms) / 1000:.2f} s after the "
          f"poison was published; {len(auto)} auto-path items final {behind_s[0]:.1f}-{behind_s[-1]:.1f} s "
          f"(median {behind_s[len(behind_s) // 2]:.1f} s) after; all {len(items)} final after {all_final_s:.0f} s")
