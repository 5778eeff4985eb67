"""Mined gold reaches the dispatcher as an event: the monitor never writes the dispatcher's gold."""

from __future__ import annotations

import pytest

from integration_tests.conftest import eventually, make_project
from labelstream.common.producer import EventProducer, Outgoing
from labelstream.common.projects import QualityEventKind
from labelstream.common.settings import Settings
from labelstream.common.topics import Topics
from labelstream.v1 import events_pb2

pytestmark = pytest.mark.integration
PROJECT = "gold-events"


def mined(item_id: str, label: str, text: str = "a film of rare grace") -> Outgoing:
    event = events_pb2.QualityEvent(schema_version=events_pb2.SCHEMA_VERSION_1, project_id=PROJECT, item_id=item_id,
                                    kind=QualityEventKind.GOLD_MINED, label=label, text=text, value=2.0, at_ms=1)
    return Outgoing(Topics.QUALITY_EVENTS, PROJECT, event)  # one key: one partition, handled in order


def test_a_gold_mined_event_adds_hidden_gold_once(state, db):
    make_project(state, PROJECT)
    producer = EventProducer(Settings.from_env({"LABELSTREAM_KAFKA_BOOTSTRAP": state.kafka_bootstrap}), "monitor")
    try:
        producer.publish([mined("g-2", "no such label"), mined("g-3", "negative", text="  "),
                          mined("g-1", "positive"), mined("g-1", "positive")])
    finally:
        producer.close()
    gold = eventually(lambda: db.gold.find_one({"_id": f"{PROJECT}:g-1"}), timeout_s=60)
    assert gold is not None, "the dispatcher did not add the mined gold"
    assert (gold["label"], gold["source"], gold["weight"], gold["text"]) == ("positive", "mined", 2.0,
                                                                              "a film of rare grace")
    assert db.gold.count_documents({"project_id": PROJECT}) == 1, "a replay, a foreign label or no text adds nothing"
