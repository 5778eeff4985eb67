"""Preference items (pairwise, best_of_n): the contract's choices and ingest's rules on responses."""

from __future__ import annotations

import json

import pytest

from labelstream.common import projects
from labelstream.common.dead_letters import InvalidMessage
from labelstream.common.projects import TIE, choice_labels, resolve, response_index
from labelstream.ingest.validation import parse_raw_item, validate_item
from labelstream.v1 import events_pb2


def pairwise(**overrides) -> events_pb2.ProjectSpec:
    return resolve(events_pb2.ProjectSpec(project_id="p", task="pairwise", **overrides))


def best_of(n: int, **overrides) -> events_pb2.ProjectSpec:
    return resolve(events_pb2.ProjectSpec(project_id="p", task="best_of_n", responses_per_item=n, **overrides))


def item(responses: list[str], gold: str = "", text: str = "Which is better?") -> events_pb2.Item:
    return events_pb2.Item(project_id="p", item_id="i-1", text=text, gold_label=gold,
                           responses=[events_pb2.Response(text=r) for r in responses])


def reason(call) -> str:
    with pytest.raises(InvalidMessage) as error:
        call()
    return error.value.reason


def test_a_preference_project_resolves_its_choices_and_is_valid():
    assert list(pairwise().labels) == ["1", "2"] and pairwise().responses_per_item == 2
    assert list(pairwise(allow_ties=True).labels) == ["1", "2", TIE]
    four = resolve(events_pb2.ProjectSpec(project_id="p", task="best_of_n"))
    assert four.responses_per_item == 4 and list(four.labels) == ["1", "2", "3", "4"]
    for spec in (pairwise(), pairwise(allow_ties=True), best_of(3), best_of(8, allow_ties=True)):
        assert projects.validate(spec) == [], spec
        assert resolve(spec) == spec
    assert [response_index(label) for label in choice_labels(3, True)] == [0, 1, 2, None]


@pytest.mark.parametrize(("spec", "problem"), [
    (pairwise(responses_per_item=3), "a pairwise project compares 2"),
    (best_of(9), "best_of_n compares 2 to 8"),
    (resolve(events_pb2.ProjectSpec(project_id="p", task="pairwise", labels=["a", "b"])), "leave labels out"),
    (resolve(events_pb2.ProjectSpec(project_id="p", task="pairwise",
                                    examples=[events_pb2.FewShotExample(text="t", label="1")])), "takes none"),
    (resolve(events_pb2.ProjectSpec(project_id="p", labels=["a", "b"], allow_ties=True)), "not 'single_label'"),
])
def test_preference_rules_name_the_problem(spec, problem):
    assert any(problem in found for found in projects.validate(spec)), projects.validate(spec)


def test_json_items_take_a_prompt_and_responses_as_strings_or_objects():
    parsed = parse_raw_item(json.dumps({"project_id": "p", "item_id": "i-1", "prompt": "Which?", "gold_label": "2",
                                        "responses": ["short", {"text": "long one", "source": "model-b"}]}).encode())
    assert parsed.text == "Which?" and [(r.text, r.source) for r in parsed.responses] == [
        ("short", ""), ("long one", "model-b")]
    validate_item(parsed, pairwise(), 10_000)
    back = parse_raw_item(parsed.SerializeToString(), "application/x-protobuf")
    assert back == parsed


@pytest.mark.parametrize(("doc", "expected"), [
    ({"prompt": "q", "text": "q", "responses": ["a", "b"]}, "unknown_field"),
    ({"text": "q", "responses": "a, b"}, "bad_field_type"),
    ({"text": "q", "responses": [{"text": "a", "score": 1}, "b"]}, "bad_field_type"),
    ({"text": "q", "responses": ["a", "   "]}, "bad_responses"),
    ({"text": "q", "responses": ["Same answer", "same  ANSWER"]}, "duplicate_responses"),
    ({"text": "q", "responses": [str(i) for i in range(9)]}, "bad_responses"),
])
def test_bad_responses_in_json_have_reasons(doc, expected):
    assert reason(lambda: parse_raw_item(json.dumps({"project_id": "p", "item_id": "i-1", **doc}).encode())) \
        == expected


@pytest.mark.parametrize(("record", "spec", "expected"), [
    (item(["a"]), pairwise(), "bad_responses"),                                  # one response to compare
    (item(["a", "b", "c"]), pairwise(), "bad_responses"),                        # pairwise takes two
    (item(["a", "b"]), best_of(3), "bad_responses"),                             # the project says three
    (item(["a", "b"], gold="tie"), pairwise(), "unknown_label"),                 # ties are not allowed
    (item(["a", "b"], gold="3"), pairwise(allow_ties=True), "unknown_label"),
    (item(["a" * 60, "b" * 60]), pairwise(max_text_bytes=100), "too_large"),     # the responses count
    (item(["a", "b"]), resolve(events_pb2.ProjectSpec(project_id="p", labels=["x", "y"])), "bad_responses"),
    (item(["a", "a "]), pairwise(), "duplicate_responses"),                      # protobuf items too
])
def test_items_break_their_projects_rules_with_reasons(record, spec, expected):
    assert reason(lambda: validate_item(record, spec, max_bytes=10_000)) == expected


def test_valid_preference_items_pass():
    validate_item(item(["a", "b"], gold="tie"), pairwise(allow_ties=True), 10_000)
    validate_item(item(["a", "b", "c", "d"], gold="4"), best_of(4), 10_000)


def test_a_best_of_n_ranking_puts_the_chosen_first_then_the_others_by_score():
    from labelstream.common.projects import response_ranking

    four = best_of(4, allow_ties=True)
    assert response_ranking(four, [0.1, 0.2, 0.4, 0.25, 0.05], "3") == ["3", "4", "2", "1"]
    assert response_ranking(four, [0.1, 0.3, 0.3, 0.25, 0.05], "2") == ["2", "3", "4", "1"]
    assert response_ranking(four, [0.1, 0.1, 0.1, 0.1, 0.6], TIE) == []
    assert response_ranking(pairwise(), [0.3, 0.7], "2") == []  # a pair's choice is its ranking


def test_the_router_ranks_a_best_of_n_item_by_the_models_probabilities():
    from labelstream.router.policy import route

    spec = best_of(3)
    spec.routing_strategy, spec.auto_accept_threshold = "threshold", 0.5
    prediction = events_pb2.Prediction(project_id="p", item_id="i", labels=list(spec.labels),
                                       probabilities=[0.2, 0.7, 0.1], text="q")
    decision = route(prediction, spec)
    assert decision.label == "2" and list(decision.ranking) == ["2", "1", "3"]


def test_named_annotators_are_worker_ids_once_each():
    doc = {"project_id": "p", "item_id": "i-1", "prompt": "q", "responses": ["a", "b"], "annotators": ["w1", "w2"]}
    parsed = parse_raw_item(json.dumps(doc).encode())
    assert list(parsed.annotators) == ["w1", "w2"]
    assert parse_raw_item(parsed.SerializeToString(), "application/x-protobuf") == parsed
    for annotators, expected in [("w1", "bad_field_type"), ([1], "bad_field_type"), (["w1", "w1"], "bad_annotators"),
                                 ([""], "bad_annotators"), (["w\u202e1"], "bad_annotators"),
                                 ([f"w{i}" for i in range(101)], "bad_annotators")]:
        assert reason(lambda a=annotators: parse_raw_item(json.dumps({**doc, "annotators": a}).encode())) \
            == expected, annotators
    twice = events_pb2.Item(project_id="p", item_id="i-1", text="q", annotators=["w1", "w1"],
                            responses=[events_pb2.Response(text="a"), events_pb2.Response(text="b")])
    assert reason(lambda: validate_item(twice, pairwise(), 10_000)) == "bad_annotators"
