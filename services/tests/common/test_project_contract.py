"""The project contract (labelstream.common.projects): defaults resolved once and idempotently,
and one vocabulary that every service's own names belong to."""

from __future__ import annotations

import pytest

from labelstream.common import projects
from labelstream.common.projects import AggregationMethod, QualityEventKind, RoutingStrategy
from labelstream.crowd.decide import SkillModel, decide
from labelstream.monitor.alerts import QUALITY_RANGES
from labelstream.routing.thresholds import BOUNDS
from labelstream.v1 import events_pb2

MINIMAL = events_pb2.ProjectSpec(project_id="p", labels=["neg", "pos"])


def test_a_minimal_project_resolves_to_a_valid_one_and_resolving_again_changes_nothing():
    resolved = projects.resolve(MINIMAL)
    assert projects.validate(resolved) == []
    assert projects.resolve(resolved) == resolved
    assert MINIMAL.overlap == 0, "resolve returns a copy"


def test_set_values_are_kept():
    spec = events_pb2.ProjectSpec(project_id="p", labels=["a", "b"], overlap=1, max_overlap=1, model="causal_lm",
                                  routing_strategy="meta", workers=events_pb2.WorkerPolicy(block_confidence=0.99))
    resolved = projects.resolve(spec)
    assert (resolved.overlap, resolved.max_overlap, resolved.model, resolved.routing_strategy) == \
        (1, 1, "causal_lm", "meta")
    assert resolved.workers.block_confidence == 0.99 and resolved.workers.min_gold_to_block == 4


def test_every_alert_the_monitor_raises_is_a_quality_event_kind():
    assert {r.kind for r in QUALITY_RANGES} <= {k.value for k in QualityEventKind}


def test_every_accuracy_bound_has_its_bound_and_every_method_is_decided():
    assert set(BOUNDS) == set(projects.AccuracyBound)
    skills = SkillModel(["neg", "pos"])
    for method in AggregationMethod:
        decision = decide(method, skills, [("a", "pos"), ("b", "pos"), ("c", "pos")], None, 3, 3, 0.95)
        assert decision.label == "pos", method


@pytest.mark.parametrize("field, value", [("routing_strategy", "psychic"), ("aggregation", "coin_flip"),
                                          ("overflow", "elsewhere"), ("task", "essay")])
def test_a_word_outside_a_vocabulary_is_a_problem(field: str, value: str):
    spec = projects.resolve(MINIMAL)
    setattr(spec, field, value)
    assert any(field in problem for problem in projects.validate(spec)), field


def test_strategies_compare_equal_to_their_stored_strings():
    assert RoutingStrategy("calibrated") == "calibrated" and AggregationMethod.DAWID_SKENE.has_posterior
