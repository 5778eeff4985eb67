"""Final labels: one document per item holding its latest version; each version is published
until acknowledged. Version 1 is written once (the first write wins, so a replay adds nothing);
a correction (a blocked worker's votes excluded, a re-fit that changes the label) is a
compare-and-set to version + 1, so two replicas never publish the same version twice."""

from __future__ import annotations

from google.protobuf import json_format

from labelstream.common.producer import Outgoing
from labelstream.common.projects import is_multi_label, parse_label_set
from labelstream.common.store import Store, insert_once, item_key
from labelstream.common.telemetry import now_ms
from labelstream.common.topics import SCHEMA_VERSION, Topics
from labelstream.v1 import events_pb2

FIRST_VERSION = 1
BOOKKEEPING = ("_id", "published", "reopened", "reopen_reason")


def _doc(label: events_pb2.FinalLabel) -> dict:
    return json_format.MessageToDict(label, preserving_proto_field_name=True)


def _outgoing(store: Store, key: str, final: events_pb2.FinalLabel) -> Outgoing:
    def mark_published() -> None:
        store.db.final_labels.update_one({"_id": key, "version": final.version}, {"$set": {"published": True}})

    return Outgoing(Topics.LABELS_FINAL, key, final, on_published=mark_published)


def finalize(store: Store, label: events_pb2.FinalLabel) -> list[Outgoing]:
    """Store `label` unless the item already has one; publish the stored one if not yet published."""
    key = item_key(label.project_id, label.item_id)
    label.version = FIRST_VERSION
    stored, _ = insert_once(store.db.final_labels, {"_id": key, **_doc(label), "published": False})
    if stored.get("published"):
        return []
    return [_outgoing(store, key, load_final(stored))]


def revise(store: Store, current: dict, label: events_pb2.FinalLabel, reason: str) -> list[Outgoing]:
    """Publish `label` as the next version of `current` (the stored document)."""
    key = current["_id"]
    label.version = int(current.get("version", FIRST_VERSION)) + 1
    label.revision_reason = reason
    replaced = store.db.final_labels.update_one(
        {"_id": key, "version": current.get("version", FIRST_VERSION)},
        {"$set": {**_doc(label), "published": False, "reopened": False, "reopen_reason": ""}}).modified_count
    return [_outgoing(store, key, label)] if replaced else []


def changed(current: dict, label: events_pb2.FinalLabel) -> bool:
    return current.get("label") != label.label or sorted(current.get("workers", [])) != sorted(label.workers)


def load_final(doc: dict) -> events_pb2.FinalLabel:
    fields = {k: v for k, v in doc.items() if k not in BOOKKEEPING}
    return json_format.ParseDict(fields, events_pb2.FinalLabel(), ignore_unknown_fields=True)


def with_label_set(final: events_pb2.FinalLabel, spec: events_pb2.ProjectSpec | None) -> events_pb2.FinalLabel:
    """A multi_label project's final label also lists its set (`label` is the set's key)."""
    if spec is not None and is_multi_label(spec):
        del final.label_set[:]
        final.label_set.extend(parse_label_set(final.label) or [])
    return final


def auto_final(decision: events_pb2.RouteDecision) -> events_pb2.FinalLabel:
    return events_pb2.FinalLabel(
        schema_version=SCHEMA_VERSION, project_id=decision.project_id, item_id=decision.item_id,
        label=decision.label, source=events_pb2.LABEL_SOURCE_AUTO, confidence=decision.confidence,
        method="model_threshold", version=FIRST_VERSION, model_name=decision.model_name,
        model_version=decision.model_version, ingested_at_ms=decision.ingested_at_ms, finalized_at_ms=now_ms(),
        ranking=decision.ranking)


def human_final(project_id: str, item_id: str, ingested_at_ms: int, label: str, posterior: float,
                workers: list[str], method: str, with_model: bool = False) -> events_pb2.FinalLabel:
    return events_pb2.FinalLabel(
        schema_version=SCHEMA_VERSION, project_id=project_id, item_id=item_id, label=label,
        source=events_pb2.LABEL_SOURCE_HUMAN, confidence=posterior,
        method=method + ("_with_model" if with_model else ""),
        version=FIRST_VERSION, workers=sorted(workers), ingested_at_ms=ingested_at_ms, finalized_at_ms=now_ms(),
        with_model=with_model)
