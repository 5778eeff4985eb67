"""Multi-label answers at the dispatcher (sets checked, gold per label, set fraud signals), the
simulated workers' sets, and the multi-hot export."""

from __future__ import annotations

import json
import random

import pytest

from labelstream.cli.exports import multi_hot_row
from labelstream.common.projects import label_set_key, resolve
from labelstream.crowd import quality
from labelstream.dispatcher.display import task_fields
from labelstream.dispatcher.pool import Answered, PoolError
from labelstream.dispatcher.workbench import Workbench, answer_set
from labelstream.simulation.workforce import WorkerProfile, choose_set
from labelstream.v1 import events_pb2

LABELS = ["anger", "joy", "sadness"]


def multi(**overrides) -> events_pb2.ProjectSpec:
    return resolve(events_pb2.ProjectSpec(**{"project_id": "p", "task": "multi_label", "labels": LABELS, **overrides}))


def test_answers_are_checked_sets():
    assert answer_set('["sadness","joy"]', multi()) == ["joy", "sadness"]
    for bad in ("joy", '["fear"]', "[]", '["joy","joy"]'):
        with pytest.raises(PoolError) as error:
            answer_set(bad, multi())
        assert error.value.code == "INVALID_ARGUMENT"
    assert answer_set("[]", multi(none_label="none")) == []
    with pytest.raises(PoolError):
        answer_set('["joy","anger"]', multi(max_labels_per_item=1))


def test_a_lease_tells_the_page_how_to_answer():
    assert task_fields(multi(max_labels_per_item=2, none_label="none", label_guidelines={"joy": "glad"})) == {
        "task": "multi_label", "max_labels": 2, "none_label": "none", "label_guidelines": {"joy": "glad"}}
    assert task_fields(resolve(events_pb2.ProjectSpec(project_id="p", labels=["a", "b"]))) == {}


def test_gold_is_judged_per_label():
    policy = quality.effective_policy(multi())
    record = quality.new_record("p", "w", policy)
    answered = Answered("p", LABELS, '["joy"]', 1000, 0.0, gold_correct=False, label_set=["joy"],
                        gold_label_checks=[True, True, False])  # missed sadness
    fields = Workbench._gold_update(record, answered, policy)
    assert (fields["gold_correct"], fields["gold_wrong"]) == (2, 1)


def test_set_fraud_signals_follow_the_answers():
    policy = quality.effective_policy(multi())
    record = quality.new_record("p", "w", policy)
    for _ in range(quality.RECENT_ANSWERS):
        update = quality.record_answer(record, quality.AnswerFacts(label_set_key(LABELS), LABELS, 5000,
                                                                   label_set=list(LABELS)), 0.0, policy)
        record = {**update.applied_to(record), **update.fields}
    assert {"all_labels", "same_set"} <= set(record["fraud_signals"])


def test_simulated_workers_answer_sets():
    rng = random.Random(0)
    honest = [choose_set(WorkerProfile(sensitivity=1.0, specificity=1.0), LABELS, ["joy"], rng) for _ in range(5)]
    assert honest == [["joy"]] * 5
    assert choose_set(WorkerProfile(behaviour="longest_option"), LABELS, ["joy"], rng, max_labels=2) != LABELS
    assert choose_set(WorkerProfile(behaviour="shortest_option"), LABELS, ["joy"], rng) != []  # must tick one
    assert choose_set(WorkerProfile(behaviour="shortest_option"), LABELS, ["joy"], rng, none_allowed=True) == []


def test_export_rows_are_multi_hot_in_the_project_order():
    final = events_pb2.FinalLabel(project_id="p", item_id="i", label='["anger","sadness"]',
                                  label_set=["anger", "sadness"])
    row = multi_hot_row(final, multi(), {"item_id": "i"})
    assert row == {"item_id": "i", "labels": ["anger", "sadness"], "multi_hot": [1, 0, 1]}
    none = events_pb2.FinalLabel(project_id="p", item_id="j", label="[]")
    assert multi_hot_row(none, multi(none_label="none"), {})["multi_hot"] == [0, 0, 0]
    with pytest.raises(ValueError):
        multi_hot_row(events_pb2.FinalLabel(item_id="k", label='["fear"]'), multi(), {})


def test_agreement_on_sets_is_masi_alpha():
    from labelstream.crowd.agreement import krippendorff_alpha, krippendorff_alpha_sets
    from labelstream.monitor.stats import agreement_alpha

    triples = [("i1", "a", '["joy"]'), ("i1", "b", '["anger","joy"]'), ("i2", "a", '["sadness"]'),
               ("i2", "b", '["sadness"]'), ("i3", "a", '["anger"]'), ("i3", "b", '["joy"]')]
    expected = krippendorff_alpha_sets([(i, w, frozenset(json.loads(k))) for i, w, k in triples])
    assert agreement_alpha(triples) == pytest.approx(expected)
    assert agreement_alpha(triples) > krippendorff_alpha(triples), "shared labels count as partial agreement"
    single = [("i1", "a", "joy"), ("i1", "b", "joy"), ("i2", "a", "anger"), ("i2", "b", "joy")]
    assert agreement_alpha(single) == pytest.approx(krippendorff_alpha(single))
