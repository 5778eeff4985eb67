"""Multi-label projects (issue 17): the contract's rules, set keys, and ingest's rules on gold sets."""

from __future__ import annotations

import json

import pytest

from labelstream.common.dead_letters import InvalidMessage
from labelstream.common.projects import (
    TaskKind,
    label_set_key,
    label_set_problem,
    multi_label_none_rule,
    parse_label_set,
    resolve,
    validate,
)
from labelstream.ingest.validation import parse_raw_item, validate_item
from labelstream.models.contract import project_payload
from labelstream.v1 import events_pb2

LABELS = ["anger", "joy", "sadness"]


def multi(**overrides) -> events_pb2.ProjectSpec:
    fields = {"project_id": "p", "task": "multi_label", "labels": LABELS, **overrides}
    return resolve(events_pb2.ProjectSpec(**fields))


def reason(call) -> str:
    with pytest.raises(InvalidMessage) as error:
        call()
    return error.value.reason


def test_a_multi_label_project_is_valid_and_defaults_to_the_encoder():
    spec = multi(max_labels_per_item=2, none_label="none of these", label_guidelines={"joy": "happy, amused"},
                 examples=[events_pb2.FewShotExample(text="great!", labels=["joy"]),
                           events_pb2.FewShotExample(text="meh", labels=[])])
    assert validate(spec) == []
    assert spec.task == TaskKind.MULTI_LABEL and spec.model == "encoder_fewshot"
    payload = json.loads(project_payload(spec))
    assert payload["task"] == "multi_label" and payload["examples"][0] == {"text": "great!", "labels": ["joy"]}


@pytest.mark.parametrize("overrides, fragment", [
    ({"none_label": "joy"}, "must not be one of the labels"),
    ({"max_labels_per_item": -1}, "max_labels_per_item must not be negative"),
    ({"model": "causal_lm"}, "independent per-label probabilities"),
    ({"aggregation": "weighted_vote"}, "aggregation of a multi_label project"),
    ({"examples": [events_pb2.FewShotExample(text="x", label="joy")]}, "gives its set as labels"),
    ({"examples": [events_pb2.FewShotExample(text="x", labels=["fear"])]}, "is not one of the labels"),
    ({"examples": [events_pb2.FewShotExample(text="x", labels=[])]}, "at least one"),
    ({"label_guidelines": {"fear": "scared"}}, "label_guidelines names"),
])
def test_multi_label_rules(overrides, fragment):
    problems = validate(multi(**overrides))
    assert any(fragment in p for p in problems), problems


def test_multi_label_fields_are_refused_on_other_tasks():
    spec = resolve(events_pb2.ProjectSpec(project_id="p", labels=["a", "b"], max_labels_per_item=2))
    assert any("for multi_label projects" in p for p in validate(spec))
    single = resolve(events_pb2.ProjectSpec(project_id="p", labels=["a", "b"],
                                            examples=[events_pb2.FewShotExample(text="x", label="a", labels=["a"])]))
    assert any("examples[0].labels is for multi_label" in p for p in validate(single))


def test_set_keys_are_canonical():
    assert label_set_key(["joy", "anger", "joy"]) == '["anger","joy"]' == label_set_key({"anger", "joy"})
    assert label_set_key([]) == "[]"
    assert parse_label_set('["joy","anger"]') == ["anger", "joy"]
    for bad in ("joy", '["a","a"]', "[1]", "[", '{"a": 1}'):
        assert parse_label_set(bad) is None
    spec = multi(max_labels_per_item=1)
    assert label_set_problem(["fear"], spec)[0] == "unknown_label"
    assert label_set_problem(["anger", "joy"], spec)[0] == "too_many_labels"
    assert label_set_problem([], spec)[0] == "bad_label_set"
    assert label_set_problem([], multi(none_label="none")) is None
    assert multi_label_none_rule(spec) == "top" and multi_label_none_rule(multi(none_label="none")) == "empty"


def raw(gold) -> bytes:
    return json.dumps({"project_id": "p", "item_id": "i-1", "text": "so happy and mad", "gold_label": gold}).encode()


def test_ingest_takes_a_gold_set_as_a_list_and_stores_its_key():
    item = parse_raw_item(raw(["joy", "anger"]))
    validate_item(item, multi(), 10_000)
    assert item.gold_label == '["anger","joy"]'
    unsorted = events_pb2.Item(schema_version=1, project_id="p", item_id="i-2", text="t", gold_label='["joy","anger"]')
    validate_item(unsorted, multi(), 10_000)
    assert unsorted.gold_label == '["anger","joy"]'


def test_ingest_dead_letters_bad_gold_sets_with_their_reasons():
    spec = multi(max_labels_per_item=2)
    assert reason(lambda: validate_item(parse_raw_item(raw(["fear"])), spec, 10_000)) == "unknown_label"
    assert reason(lambda: validate_item(parse_raw_item(raw(LABELS)), spec, 10_000)) == "too_many_labels"
    assert reason(lambda: validate_item(parse_raw_item(raw([])), spec, 10_000)) == "bad_label_set"
    assert reason(lambda: validate_item(parse_raw_item(raw("joy")), spec, 10_000)) == "bad_label_set"
    assert reason(lambda: parse_raw_item(raw(["joy", "joy"]))) == "bad_label_set"
    assert reason(lambda: parse_raw_item(raw(["joy", 3]))) == "bad_label_set"
    validate_item(parse_raw_item(raw([])), multi(none_label="none"), 10_000)  # the empty set, named
    # a set on a single-label project is no label of it
    single = resolve(events_pb2.ProjectSpec(project_id="p", labels=LABELS))
    assert reason(lambda: validate_item(parse_raw_item(raw(["joy"])), single, 10_000)) == "unknown_label"
