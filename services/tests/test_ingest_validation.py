import json

import pytest

from labelstream.common.kafka import InvalidMessage
from labelstream.ingest.validation import parse_raw_item, validate_item, validate_project
from labelstream.v1 import events_pb2


def project(**overrides) -> events_pb2.ProjectSpec:
    fields = {"project_id": "p", "task": "single_label", "labels": ["neg", "pos"], "auto_accept_threshold": 0.9,
              "overlap": 3, "max_overlap": 5, "model": "encoder_fewshot"}
    return events_pb2.ProjectSpec(**{**fields, **overrides})


def reason(call) -> str:
    with pytest.raises(InvalidMessage) as error:
        call()
    return error.value.reason


def test_json_and_protobuf_items_parse_the_same():
    as_json = parse_raw_item(json.dumps({"project_id": "p", "item_id": "1", "text": "hi"}).encode())
    proto = events_pb2.Item(schema_version=1, project_id="p", item_id="1", text="hi")
    as_proto = parse_raw_item(proto.SerializeToString(), "application/x-protobuf")
    assert as_json == as_proto


@pytest.mark.parametrize(("value", "expected"), [
    (b'{"project_id": ', "bad_json"),
    (b"[1, 2]", "bad_json"),
    (b'{"project_id": "p", "item_id": "1", "text": "x", "colour": "red"}', "unknown_field"),
    (b'{"project_id": "p", "item_id": 1, "text": "x"}', "bad_field_type"),
    (b'{"project_id": "p", "item_id": "1", "text": "x", "schema_version": 9}', "unknown_schema_version"),
])
def test_bad_json_reasons(value, expected):
    assert reason(lambda: parse_raw_item(value)) == expected


def test_garbage_protobuf_is_rejected():
    assert reason(lambda: parse_raw_item(b"\xff\xff\xff\xff\x0f\x01", "application/x-protobuf")) == "bad_protobuf"


@pytest.mark.parametrize(("item", "spec", "expected"), [
    (events_pb2.Item(item_id="1", text="x"), project(), "missing_project_id"),
    (events_pb2.Item(project_id="p", item_id="has space", text="x"), project(), "bad_item_id"),
    (events_pb2.Item(project_id="p", item_id="1", text="x"), None, "unknown_project"),
    (events_pb2.Item(project_id="p", item_id="1", text=" \n "), project(), "empty_text"),
    (events_pb2.Item(project_id="p", item_id="1", text="x" * 101), project(max_text_bytes=100), "too_large"),
    (events_pb2.Item(project_id="p", item_id="1", text="x", gold_label="meh"), project(), "unknown_label"),
])
def test_item_validation_reasons(item, spec, expected):
    assert reason(lambda: validate_item(item, spec, max_bytes=1000)) == expected


def test_valid_item_passes():
    validate_item(events_pb2.Item(project_id="p", item_id="a-1", text="fine", gold_label="pos"), project(), 1000)


def test_project_validation_lists_every_problem():
    problems = validate_project(project(project_id="bad id", labels=["x"], auto_accept_threshold=1.5, overlap=0,
                                        model=""))
    assert len(problems) == 5  # id, labels, threshold, overlap, model
    assert validate_project(project()) == []
