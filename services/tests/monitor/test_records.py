"""The monitor's own record of each event: what its statistics, dashboard, alerts and gold mining
read instead of other services' collections."""

from __future__ import annotations

from labelstream.common.projects import QualityEventKind, label_set_key, resolve
from labelstream.common.records import Incoming
from labelstream.common.topics import Topics
from labelstream.monitor.records import event_record, gold_record
from labelstream.v1 import events_pb2

V1 = events_pb2.SCHEMA_VERSION_1


def incoming(topic: str, message) -> Incoming:
    return Incoming(topic, 0, 7, b"k", message.SerializeToString(), [])


def test_a_prediction_is_recorded_with_the_model_s_label_and_confidence():
    prediction = events_pb2.Prediction(schema_version=V1, project_id="p", item_id="i1", labels=["neg", "pos"],
                                       probabilities=[0.2, 0.8], predicted_at_ms=5)
    doc = event_record(incoming(Topics.PREDICTIONS, prediction))
    assert (doc["kind"], doc["label"], round(doc["confidence"], 4), doc["at_ms"]) == ("prediction", "pos", 0.8, 5)


def test_a_multi_label_prediction_is_recorded_with_the_model_s_set():
    spec = resolve(events_pb2.ProjectSpec(project_id="p", task="multi_label", labels=["joy", "anger", "fear"],
                                          model="encoder_fewshot"))
    prediction = events_pb2.Prediction(schema_version=V1, project_id="p", item_id="i1", labels=spec.labels,
                                       probabilities=[0.9, 0.7, 0.2], predicted_at_ms=5)
    doc = event_record(incoming(Topics.PREDICTIONS, prediction), {"p": spec}.get)
    assert doc["label"] == label_set_key(["anger", "joy"]) and round(doc["confidence"], 4) == 0.7


def test_a_task_keeps_its_text_for_gold_mining():
    task = events_pb2.HumanTask(schema_version=V1, project_id="p", item_id="i1", task_id="t1", text="a fine film")
    doc = event_record(incoming(Topics.TASKS_HUMAN, task))
    assert (doc["_id"], doc["kind"], doc["text"]) == ("task|t1", "human_task", "a fine film")


def test_mined_gold_heard_back_is_recorded_once_per_item():
    event = events_pb2.QualityEvent(schema_version=V1, project_id="p", item_id="i1", label="pos",
                                    kind=QualityEventKind.GOLD_MINED, at_ms=9)
    doc = gold_record(event)
    assert doc["kind"] == "gold_mined" and doc["item_id"] == "i1"
    assert gold_record(event)["_id"] == doc["_id"], "a replay writes the same document"
