"""What an outside client does: apply projects, publish items, wait, read final labels. gRPC calls
go to a GrpcTarget (address, bearer token, TLS; StackState.grpc_target gives the local stack's)."""

from __future__ import annotations

import contextlib
import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError, Message
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from labelstream.common.channels import GrpcTarget, open_channel
from labelstream.common.producer import EventProducer, Outgoing
from labelstream.common.projects import label_set_key
from labelstream.common.settings import Settings
from labelstream.common.topics import Topics
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc


def apply_project(ingest: GrpcTarget, spec: events_pb2.ProjectSpec) -> bool:
    """Needs the admin's or the project owner's token."""
    with open_channel(ingest) as channel:
        reply = services_pb2_grpc.IngestServiceStub(channel).ApplyProject(
            services_pb2.ApplyProjectRequest(project=spec), timeout=30)
    return reply.created


def get_project(ingest: GrpcTarget, project_id: str) -> events_pb2.ProjectSpec:
    """The project as ingest stored it (resolved: every default filled in)."""
    with open_channel(ingest) as channel:
        return services_pb2_grpc.IngestServiceStub(channel).GetProject(
            services_pb2.GetProjectRequest(project_id=project_id), timeout=30)


def create_project_owner(ingest: GrpcTarget, project_id: str, owner_id: str, rotate: bool = False) -> str:
    """A project owner's token (needs the admin token); shown once, only its hash is stored."""
    with open_channel(ingest) as channel:
        return services_pb2_grpc.IngestServiceStub(channel).CreateProjectOwner(
            services_pb2.CreateProjectOwnerRequest(project_id=project_id, owner_id=owner_id, rotate_token=rotate),
            timeout=30).token


def list_workers(dispatcher: GrpcTarget, project_id: str) -> list[services_pb2.WorkerStats]:
    with open_channel(dispatcher) as channel:
        reply = services_pb2_grpc.DispatcherServiceStub(channel).ListWorkers(
            services_pb2.ListWorkersRequest(project_id=project_id), timeout=30)
    return list(reply.workers)


def dashboard(monitor_web_url: str, project_id: str, token: str) -> dict[str, Any]:
    """The monitor's dashboard data of a project (its JSON API), read with an admin's or the
    project owner's token."""
    query = urllib.parse.urlencode({"project_id": project_id})
    request = urllib.request.Request(f"{monitor_web_url.rstrip('/')}/api/dashboard?{query}",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.loads(reply.read())


def model_compute_seconds(triton_address: str, models: Iterable[str]) -> float:
    """Seconds Triton spent computing these models (every version), from its statistics API."""
    import tritonclient.grpc as triton

    server = triton.InferenceServerClient(triton_address)
    try:
        total_ns = 0
        for model in models:
            stats = server.get_inference_statistics(model_name=model, as_json=True)
            total_ns += sum(int(s["inference_stats"]["compute_infer"].get("ns", 0))
                            for s in stats.get("model_stats", []))
    finally:
        server.close()
    return total_ns / 1e9


RawRecord = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]  # topic, key, value, headers


def publish_json_items(bootstrap: str, project_id: str, items: Iterable[dict[str, Any]],
                       on_sent: Callable[[int], None] = lambda _n: None, topic_prefix: str = "") -> int:
    """Publish items to items.raw as JSON, keyed by item id, as any upstream system may."""
    def records() -> Iterable[RawRecord]:
        for item in items:
            yield (topic_prefix + Topics.ITEMS_RAW, str(item["item_id"]).encode(),
                   json.dumps({"project_id": project_id, **item}).encode(), [("content-type", b"application/json")])
            on_sent(1)
    return send_raw(bootstrap, records())


def send_raw(bootstrap: str, records: Iterable[RawRecord]) -> int:
    """Send records as they are (no labelstream envelope), acks=all; returns once the broker has them all."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futures = []
    try:
        for topic, key, value, headers in records:
            futures.append(producer.send(topic, key=key, value=value, headers=headers))
        producer.flush()
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()
    return len(futures)


def publish_human_tasks(bootstrap: str, tasks: Iterable[events_pb2.HumanTask], topic_prefix: str = "") -> int:
    """Publish tasks to tasks.human as the router does (keyed by task id): work for people that
    needs no model, e.g. a pool filled by hand, a test or a benchmark. The dispatcher owning the
    task's partition takes it into its pool."""
    settings = Settings.from_env({"LABELSTREAM_KAFKA_BOOTSTRAP": bootstrap,
                                  "LABELSTREAM_KAFKA_TOPIC_PREFIX": topic_prefix})
    producer = EventProducer(settings, "cli")
    try:
        return producer.publish(Outgoing(Topics.TASKS_HUMAN, task.task_id, task) for task in tasks)
    finally:
        producer.close()


def project_stats(monitor: GrpcTarget, project_id: str) -> services_pb2.ProjectStats:
    with open_channel(monitor) as channel:
        return services_pb2_grpc.MonitorServiceStub(channel).GetProjectStats(
            services_pb2.GetProjectStatsRequest(project_id=project_id), timeout=30)


def wait_for_final_labels(monitor: GrpcTarget, project_id: str, expected: int, timeout_s: float,
                          on_progress: Callable[[services_pb2.ProjectStats], None] = lambda _s: None,
                          stall_s: float | None = None) -> services_pb2.ProjectStats:
    """Wait until `expected` items have a final label. `timeout_s` bounds the whole wait; with
    `stall_s`, the wait also ends after that long without one new final label, so a slow model on a
    CPU is given its time while a stuck stream is still reported early."""
    started = last_progress = time.monotonic()
    seen = -1
    while True:
        stats = project_stats(monitor, project_id)
        on_progress(stats)
        if stats.final_labels >= expected:
            return stats
        now = time.monotonic()
        if stats.final_labels > seen:
            seen, last_progress = stats.final_labels, now
        if now - started > timeout_s:
            raise TimeoutError(f"only {stats.final_labels} of {expected} items have a final label after "
                               f"{timeout_s:.0f}s; see the services' logs")
        if stall_s is not None and now - last_progress > stall_s:
            raise TimeoutError(f"no new final label for {stall_s:.0f}s ({stats.final_labels} of {expected} "
                               f"final); the stream is stuck: see the services' logs")
        time.sleep(0.5)


def read_topic(bootstrap: str, topic: str, message_type: type[Message], topic_prefix: str = "") -> list:
    """Every message on a topic from the beginning to its current end; records that are no
    `message_type` (a foreign producer's, already dead-lettered by the services) are skipped."""
    topic = topic_prefix + topic
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=2000)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        messages = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=1000).values():
                for record in batch:
                    with contextlib.suppress(DecodeError):
                        messages.append(message_type.FromString(record.value or b""))
        return messages
    finally:
        consumer.close()


def read_all_final_labels(bootstrap: str, project_id: str | None = None, topic_prefix: str = "",
                          ) -> list[events_pb2.FinalLabel]:
    """Every final label on labels.final (all versions)."""
    return [label for label in read_topic(bootstrap, Topics.LABELS_FINAL, events_pb2.FinalLabel, topic_prefix)
            if not project_id or label.project_id == project_id]


@dataclass
class FinalLabelTally:
    """What labels.final holds for a set of items, against "every item exactly one final label".
    Delivery is at least once, so the same label (same label and version) delivered twice is
    counted but allowed; two different labels for one item, or none, are failures."""
    items: int
    with_label: int
    missing: list[str] = field(default_factory=list)
    conflicting: list[str] = field(default_factory=list)   # two different (label, version) pairs
    unexpected: list[str] = field(default_factory=list)    # labelled, but never published
    redelivered: int = 0                                   # extra copies of the same final label

    @property
    def exactly_one_each(self) -> bool:
        return not (self.missing or self.conflicting or self.unexpected)


def tally_final_labels(bootstrap: str, project_id: str, item_ids: Iterable[str],
                       topic_prefix: str = "") -> FinalLabelTally:
    """Check every item of `item_ids` against labels.final (read from the beginning)."""
    expected = set(item_ids)
    seen: dict[str, set[tuple[str, int]]] = {}
    copies = 0
    for label in read_all_final_labels(bootstrap, project_id, topic_prefix):
        seen.setdefault(label.item_id, set()).add((label_set_key(label.label_set) if label.label_set
                                                   else label.label, label.version))
        copies += 1
    return FinalLabelTally(
        items=len(expected), with_label=len(expected & set(seen)), missing=sorted(expected - set(seen)),
        conflicting=sorted(i for i, labels in seen.items() if len(labels) > 1),
        unexpected=sorted(set(seen) - expected), redelivered=copies - sum(len(v) for v in seen.values()))


def read_dead_letters(bootstrap: str, project_id: str = "", reason: str = "", source_topic: str = "",
                      topic_prefix: str = "") -> list[events_pb2.DeadLetter]:
    """Every letter on items.dlq, oldest first, optionally of one project, reason or source topic."""
    return [letter for letter in read_topic(bootstrap, Topics.ITEMS_DLQ, events_pb2.DeadLetter, topic_prefix)
            if (not project_id or letter.project_id == project_id) and (not reason or letter.reason == reason)
            and (not source_topic or letter.source_topic == source_topic)]


def replay_dead_letters(bootstrap: str, letters: Iterable[events_pb2.DeadLetter], topic_prefix: str = "") -> int:
    """Send each letter's record back to its source topic (once its producer or handler is fixed):
    every consumer's effects are keyed, so a record that was handled meanwhile changes nothing.
    A letter holding only the head of a too-large record is skipped (it is not the record)."""
    def key(letter: events_pb2.DeadLetter) -> bytes | None:
        return f"{letter.project_id}:{letter.item_id}".encode() if letter.item_id else None
    return send_raw(bootstrap, ((topic_prefix + letter.source_topic, key(letter), letter.payload, [])
                                for letter in letters if not letter.payload_truncated))


def read_quality_events(bootstrap: str, project_id: str) -> list[events_pb2.QualityEvent]:
    return [e for e in read_topic(bootstrap, Topics.QUALITY_EVENTS, events_pb2.QualityEvent)
            if e.project_id == project_id]


def read_final_labels(bootstrap: str, project_id: str | None = None, topic_prefix: str = "",
                      ) -> dict[str, events_pb2.FinalLabel]:
    """The latest version per item on labels.final (what a trainer keeps)."""
    latest: dict[str, events_pb2.FinalLabel] = {}
    for label in read_all_final_labels(bootstrap, project_id, topic_prefix):
        current = latest.get(label.item_id)
        if current is None or label.version > current.version:
            latest[label.item_id] = label
    return latest


def read_final_label_versions(bootstrap: str, project_id: str | None = None) -> dict[str, set[int]]:
    versions: dict[str, set[int]] = {}
    for label in read_all_final_labels(bootstrap, project_id):
        versions.setdefault(label.item_id, set()).add(label.version)
    return versions


def final_label_json(label: events_pb2.FinalLabel) -> dict[str, Any]:
    return {"project_id": label.project_id, "item_id": label.item_id, "label": label.label,
            "source": events_pb2.LabelSource.Name(label.source).removeprefix("LABEL_SOURCE_").lower(),
            "confidence": round(label.confidence, 4), "method": label.method, "version": label.version,
            "workers": list(label.workers), "model": f"{label.model_name}/{label.model_version}".strip("/")}


def report_dict(stats: services_pb2.ProjectStats, elapsed_s: float | None = None) -> dict[str, Any]:
    def acc(path: services_pb2.PathStats) -> dict[str, Any]:
        return {"final_labels": path.final_labels, "with_gold": path.with_gold, "correct": path.correct,
                "accuracy": None if math.isnan(path.accuracy) else round(path.accuracy, 4)}

    finals = stats.final_labels or 1
    report = {
        "project_id": stats.project_id, "items": stats.items_accepted, "final_labels": stats.final_labels,
        "dead_lettered": stats.items_dead_lettered,
        "auto_fraction": round(stats.auto_path.final_labels / finals, 4),
        "human_fraction": round(stats.human_path.final_labels / finals, 4),
        "human_tasks": stats.human_tasks, "human_responses": stats.human_responses,
        "accuracy": {"overall": acc(stats.overall), "auto": acc(stats.auto_path), "human": acc(stats.human_path)},
        "throughput_items_per_s": round(stats.throughput_per_s, 2),
        "latency_ms": {"p50": round(stats.latency_p50_ms, 1), "p95": round(stats.latency_p95_ms, 1)},
    }
    if elapsed_s is not None:
        report["wall_time_s"] = round(elapsed_s, 1)
    return report


def gold_key(gold: str | list[str]) -> str:
    """An item file's gold_label as the dispatcher takes it: a label, or a multi-label set's key."""
    return gold if isinstance(gold, str) else label_set_key(gold)


def add_gold(dispatcher: GrpcTarget, project_id: str, rows: list[dict]) -> tuple[int, int]:
    with open_channel(dispatcher) as channel:
        added = services_pb2_grpc.DispatcherServiceStub(channel).AddGold(services_pb2.AddGoldRequest(
            project_id=project_id, items=[services_pb2.GoldItem(item_id=r["item_id"], text=r["text"],
                                                                label=gold_key(r["gold_label"])) for r in rows]),
            timeout=30)
    return added.added, added.total
