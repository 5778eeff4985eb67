"""Worker quality rules: qualification, gold rate, Beta blocking, fraud signals, pay."""

from __future__ import annotations

import math
import random

import pytest

from labelstream.common.projects import DEFAULT_WORKER_POLICY
from labelstream.crowd import quality
from labelstream.v1 import events_pb2

POLICY = events_pb2.WorkerPolicy(
    qualification_tasks=4, qualification_accuracy=0.75, block_accuracy=0.7, block_confidence=0.9,
    min_gold_to_block=4, gold_rate_new=0.3, gold_rate_trusted=0.05, gold_rate_suspect=0.5, trusted_after=10,
    min_seconds_per_task=2.0, max_constant_streak=8, max_position_share=0.9, max_shortcut_share=0.9,
    min_hourly_wage=15.0, pay_policy="raise")


def run_gold(record: dict, outcomes: list[bool], policy=POLICY) -> dict:
    for correct in outcomes:
        record = {**record, **quality.record_gold(record, correct, policy)}
    return record


def test_project_policy_overrides_only_what_it_sets():
    spec = events_pb2.ProjectSpec(project_id="p", workers=events_pb2.WorkerPolicy(qualification_tasks=5))
    policy = quality.effective_policy(spec)
    assert policy.qualification_tasks == 5
    assert policy.block_confidence == DEFAULT_WORKER_POLICY.block_confidence
    assert quality.effective_policy(events_pb2.ProjectSpec()).qualification_tasks == 0


def test_qualification_admits_or_blocks():
    fresh = quality.new_record("p", "w", POLICY)
    assert fresh["status"] == quality.QUALIFYING
    assert quality.gold_rate(fresh, POLICY) == 1.0, "qualifying workers only see gold"
    assert run_gold(fresh, [True, True, False])["status"] == quality.QUALIFYING
    assert run_gold(fresh, [True, True, False, True])["status"] == quality.ACTIVE
    failed = run_gold(fresh, [True, False, False, True])
    assert failed["status"] == quality.BLOCKED and "qualification" in failed["blocked_reason"]
    no_qualification = events_pb2.WorkerPolicy(block_accuracy=0.7)
    assert quality.new_record("p", "w", no_qualification)["status"] == quality.ACTIVE


def test_gold_rate_falls_for_trusted_workers_and_rises_when_accuracy_dips():
    record = run_gold(quality.new_record("p", "w", POLICY), [True] * 4)
    assert quality.gold_rate(record, POLICY) == POLICY.gold_rate_new
    record = run_gold(record, [True] * 6)
    assert quality.gold_rate(record, POLICY) == POLICY.gold_rate_trusted
    dipped = run_gold(record, [False, False, True, False, False])  # 6 of the last 10 right
    assert quality.is_suspect(dipped, POLICY)
    assert quality.gold_rate(dipped, POLICY) == POLICY.gold_rate_suspect


def test_beta_posterior_blocks_a_random_worker_but_not_a_good_one():
    rng = random.Random(3)
    good = run_gold(quality.new_record("p", "good", POLICY), [True] * 4)
    for _ in range(40):
        good = run_gold(good, [rng.random() < 0.9])
    assert good["status"] == quality.ACTIVE
    bad = run_gold(quality.new_record("p", "bad", POLICY), [True, True, True, False])
    bad = run_gold(bad, [False, True, False, False, True, False])
    assert bad["status"] == quality.BLOCKED and "P(accuracy < 0.70)" in bad["blocked_reason"]
    assert not quality.should_block({"gold_correct": 0, "gold_wrong": 2}, POLICY), "too little evidence"


def answer(record: dict, label: str, labels: list[str], seconds: float, policy=POLICY) -> dict:
    update = quality.record_answer(record, quality.AnswerFacts(label, labels, int(seconds * 1000)), 0.1, policy)
    merged = {**record, **update.fields}
    for key, value in update.increments.items():
        merged[key] = merged[key] + value
    return merged


def test_fraud_signals():
    labels = ["no", "yes, clearly", "maybe"]
    fast = quality.new_record("p", "w", POLICY)
    for _ in range(6):
        fast = answer(fast, "no", labels, 0.5)
    assert "too_fast" in fast["fraud_signals"]
    assert quality.gold_rate({**fast, "status": quality.ACTIVE}, POLICY) == POLICY.gold_rate_suspect
    streak = quality.new_record("p", "w", POLICY)
    for _ in range(8):
        streak = answer(streak, "maybe", labels, 5)
    assert streak["fraud_signals"] == ["constant_answers"]
    first = quality.new_record("p", "w", POLICY)
    longest = quality.new_record("p", "w", POLICY)
    honest = quality.new_record("p", "w", POLICY)
    rng = random.Random(0)
    for i in range(20):
        shuffled = rng.sample(labels, len(labels))
        first = answer(first, shuffled[0], shuffled, 5)
        longest = answer(longest, max(shuffled, key=len), shuffled, 5)
        honest = answer(honest, labels[i % 3], shuffled, 5)
    assert "position_bias" in first["fraud_signals"]
    assert "longest_option" in longest["fraud_signals"]
    assert honest["fraud_signals"] == []
    assert honest["tasks_done"] == 20 and math.isclose(honest["earnings"], 2.0)


def test_fair_pay_raises_to_the_minimum_wage():
    # 0.05 per answer at 30 s per answer is 6.00 an hour; the minimum is 15.00
    assert quality.adjusted_pay(0.05, 6.0, POLICY) == 0.125
    assert quality.adjusted_pay(0.05, 20.0, POLICY) is None
    assert quality.adjusted_pay(0.05, math.nan, POLICY) is None
    record = {"earnings": 1.0, "work_ms": 600_000}
    assert math.isclose(quality.hourly_rate(record), 6.0)


def test_gold_draws_are_balanced_against_the_longest_response():
    """Gold drawn as a pool whose best response is the longest 80% of the time would let a
    longest-picker answer 80% of it right; balanced, items the shortcut gets wrong take half."""
    from labelstream.crowd.quality import gold_draw_weights, item_shortcuts

    labels = ["1", "2"]
    golds = [{"label": "2", "labels": labels, "weight": 1.0, "responses": ["short", "the longer one"]}] * 8 \
        + [{"label": "1", "labels": labels, "weight": 1.0, "responses": ["short", "the longer one"]}] * 2
    weights = gold_draw_weights(golds)
    anti = sum(w for w, g in zip(weights, golds, strict=True) if g["label"] == "1")
    assert anti / sum(weights) == pytest.approx(0.5)
    assert gold_draw_weights(golds, share=0.0) == [1.0] * 10, "unbalanced: drawn as the pool is"
    already = golds[:5] + golds[8:] * 3  # half the weight is already on anti-shortcut items: unchanged
    assert gold_draw_weights(already) == [1.0] * len(already)
    assert item_shortcuts(["1", "2", "3"], ["mid size", "x", "the longest of the three"]) == {"3", "2"}
    assert item_shortcuts(["1", "2"], ["same", "size"]) == set(), "no unique longest: no shortcut"
    assert item_shortcuts(["no", "yes, entailed"]) == {"no", "yes, entailed"}, "classification: first and longest"


def test_a_worker_who_misses_the_gold_against_the_shortcuts_is_blocked_even_while_qualifying():
    from labelstream.crowd import quality

    policy = quality.effective_policy(None)
    policy.qualification_tasks, policy.block_accuracy = 10, 0.7
    record = quality.new_record("p", "w", policy)
    assert record["status"] == quality.QUALIFYING
    for correct, anti in [(True, False), (False, True), (True, False), (False, True), (False, True)]:
        record = {**record, **quality.record_gold(record, correct, policy, anti_shortcut=anti)}
    assert record["status"] == quality.QUALIFYING, "three misses against the shortcut are not yet evidence"
    record = {**record, **quality.record_gold(record, False, policy, anti_shortcut=True)}
    assert record["status"] == quality.BLOCKED and "shortcut" in record["blocked_reason"]
    assert (record["anti_gold_correct"], record["anti_gold_wrong"]) == (0, 4)


def test_an_honest_worker_missing_one_in_four_against_the_shortcuts_is_not_blocked():
    from labelstream.crowd import quality

    policy = quality.effective_policy(None)
    policy.block_accuracy = 0.7
    record = {**quality.new_record("p", "w", policy), "status": quality.ACTIVE}
    for correct in (False, True, True, True, False, True, True):
        record = {**record, **quality.record_gold(record, correct, policy, anti_shortcut=True)}
        assert record["status"] == quality.ACTIVE, record
