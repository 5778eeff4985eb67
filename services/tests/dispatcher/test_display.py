"""What a worker sees of a preference task, and the way back to canonical responses."""

from __future__ import annotations

import random
from collections import Counter

from labelstream.common.projects import TIE
from labelstream.crowd import quality
from labelstream.dispatcher.display import canonical_pick, display_order, shown_responses
from labelstream.v1 import events_pb2


def test_the_order_is_fixed_per_worker_and_task_and_balanced_over_workers():
    assert display_order("w1", "t1", 4) == display_order("w1", "t1", 4)
    assert sorted(display_order("w1", "t1", 4)) == [0, 1, 2, 3]
    first = Counter(display_order(f"w{i}", "t1", 3)[0] for i in range(3000))
    assert all(900 < first[r] < 1100 for r in range(3)), first  # each response shown first about 1/3 of the time


def test_a_displayed_pick_maps_back_to_the_canonical_response():
    responses = ["first written", "second, and longest of all", "third"]
    for seed in range(20):
        order = random.Random(seed).sample(range(3), 3)
        shown = shown_responses(responses, order)
        lengths = [len(text) for text in shown]
        for position, text in enumerate(shown):
            pick = canonical_pick(str(position + 1), order, lengths)
            assert responses[int(pick.label) - 1] == text and pick.position == position
    tie = canonical_pick(TIE, [1, 0], [3, 5])
    assert (tie.label, tie.position) == (TIE, -1)


def answer_many(picks: list[tuple[int, list[int]]], policy: events_pb2.WorkerPolicy) -> list[str]:
    record = quality.new_record("p", "w", policy)
    for position, lengths in picks:
        update = quality.record_answer(record, quality.AnswerFacts(
            "1", ["1", "2", "3"], 5000, position, lengths), 0.0, policy)
        record = update.applied_to(record)
    return record["fraud_signals"]


def test_fraud_signals_look_at_what_the_worker_saw():
    policy = events_pb2.WorkerPolicy(max_position_share=0.6, max_shortcut_share=0.8)
    rng = random.Random(0)

    def lengths() -> list[int]:
        return rng.sample([10, 40, 200], 3)

    always_first = [(0, lengths()) for _ in range(30)]
    assert "position_bias" in answer_many(always_first, policy)
    longest = [(shown.index(max(shown)), shown) for shown in (lengths() for _ in range(30))]
    assert answer_many(longest, policy) == ["longest_option"]
    shortest = [(shown.index(min(shown)), shown) for shown in (lengths() for _ in range(30))]
    assert answer_many(shortest, policy) == ["shortest_option"]
    honest = [(rng.randrange(3), lengths()) for _ in range(30)]
    assert answer_many(honest, policy) == []
    ties = [(-1, lengths()) for _ in range(30)]  # a tie is no position and no length shortcut
    assert answer_many(ties, policy) == []
