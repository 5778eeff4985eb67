"""Final labels: stored once per item (the first write wins), published until acknowledged."""

from __future__ import annotations

from google.protobuf import json_format

from labelstream.common.kafka import SCHEMA_VERSION, Outgoing, Topics
from labelstream.common.store import Store, insert_once, item_key
from labelstream.common.telemetry import now_ms
from labelstream.v1 import events_pb2

FINAL_VERSION = 1


def finalize(store: Store, label: events_pb2.FinalLabel) -> list[Outgoing]:
    """Store `label` unless the item already has one; publish the stored one if not yet published."""
    key = item_key(label.project_id, label.item_id)
    doc = json_format.MessageToDict(label, preserving_proto_field_name=True)
    stored, _ = insert_once(store.db.final_labels, {"_id": key, **doc, "published": False})
    if stored.get("published"):
        return []
    final = load_final(stored)

    def mark_published() -> None:
        store.db.final_labels.update_one({"_id": key}, {"$set": {"published": True}})

    return [Outgoing(Topics.LABELS_FINAL, key, final, on_published=mark_published)]


def load_final(doc: dict) -> events_pb2.FinalLabel:
    fields = {k: v for k, v in doc.items() if k not in ("_id", "published")}
    return json_format.ParseDict(fields, events_pb2.FinalLabel(), ignore_unknown_fields=True)


def auto_final(decision: events_pb2.RouteDecision) -> events_pb2.FinalLabel:
    return events_pb2.FinalLabel(
        schema_version=SCHEMA_VERSION, project_id=decision.project_id, item_id=decision.item_id,
        label=decision.label, source=events_pb2.LABEL_SOURCE_AUTO, confidence=decision.confidence,
        method="model_threshold", version=FINAL_VERSION, model_name=decision.model_name,
        model_version=decision.model_version, ingested_at_ms=decision.ingested_at_ms, finalized_at_ms=now_ms())


def human_final(response: events_pb2.HumanResponse, label: str, share: float, workers: list[str],
                with_model: bool = False) -> events_pb2.FinalLabel:
    return events_pb2.FinalLabel(
        schema_version=SCHEMA_VERSION, project_id=response.project_id, item_id=response.item_id, label=label,
        source=events_pb2.LABEL_SOURCE_HUMAN, confidence=share,
        method="majority_vote_with_model" if with_model else "majority_vote", version=FINAL_VERSION,
        workers=sorted(workers), ingested_at_ms=response.ingested_at_ms, finalized_at_ms=now_ms())
