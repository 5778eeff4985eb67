"""Accepting an item: store it once, publish it until the broker has it."""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from labelstream.common.producer import Outgoing
from labelstream.common.store import Store, item_key
from labelstream.common.telemetry import now_ms
from labelstream.common.topics import SCHEMA_VERSION, Topics
from labelstream.v1 import events_pb2


def accept_item(store: Store, item: events_pb2.Item) -> tuple[list[Outgoing], bool]:
    """Store a validated item (first copy wins) and return what to publish and whether it was a
    duplicate. An item whose earlier publish never completed is published again."""
    key = item_key(item.project_id, item.item_id)
    doc = {
        "_id": key, "project_id": item.project_id, "item_id": item.item_id, "text": item.text,
        "metadata": dict(item.metadata), "gold_label": item.gold_label, "ingested_at_ms": now_ms(),
        "published": False,
    }
    if item.responses:
        doc["responses"] = [{"text": r.text, "source": r.source} for r in item.responses]
    if item.annotators:
        doc["annotators"] = list(item.annotators)
    duplicate = False
    try:
        store.db.items.insert_one(doc)
    except DuplicateKeyError:
        duplicate = True
        doc = store.db.items.find_one({"_id": key}) or doc
        if doc.get("published"):
            return [], True
    accepted = events_pb2.Item(
        schema_version=SCHEMA_VERSION, project_id=doc["project_id"], item_id=doc["item_id"], text=doc["text"],
        metadata=doc.get("metadata") or {}, gold_label=doc.get("gold_label", ""),
        ingested_at_ms=doc["ingested_at_ms"],
        responses=[events_pb2.Response(**r) for r in doc.get("responses", [])],
        annotators=doc.get("annotators", []))

    def mark_published() -> None:
        store.db.items.update_one({"_id": key}, {"$set": {"published": True}})

    return [Outgoing(Topics.ITEMS_ACCEPTED, key, accepted, on_published=mark_published)], duplicate
