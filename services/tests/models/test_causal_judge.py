"""The causal_lm model's judge for preference projects (Gemma-3-270M via llama-cpp-python, run
in-process as the causal model tests do), and the contract helpers it shares with inference.

The judge is near chance on real pairs (scripts/benchmarks/judge_bias.py measures it); these
tests check its arithmetic: one column per label, rows summing to 1, order averaging that makes
the output follow the responses rather than their positions. About 40 s on 2 idle cores."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelstream.common.projects import resolve
from labelstream.models.contract import (
    parse_preference_text,
    preference_choices,
    preference_text,
    project_payload,
    response_orders,
)
from labelstream.models.local import load_causal_classifier
from labelstream.v1 import events_pb2

ROOT = Path(__file__).resolve().parents[3]
HH_RLHF = ROOT / "deploy" / "examples" / "preference" / "hh-rlhf" / "items.jsonl"


def project(responses: int = 2, ties: bool = False, instructions: str = "") -> dict[str, Any]:
    labels = [str(i + 1) for i in range(responses)] + (["tie"] if ties else [])
    return {"project_id": "judge", "task": "pairwise" if responses == 2 else "best_of_n", "labels": labels,
            "allow_ties": ties, "responses_per_item": responses, "instructions": instructions, "examples": []}


def hh_pairs(count: int) -> list[tuple[str, list[str]]]:
    rows = [json.loads(line) for line in HH_RLHF.read_text(encoding="utf-8").splitlines()[:count]]
    return [(row["text"], [r["text"] for r in row["responses"]]) for row in rows]


# -- the contract's helpers (no model) -----------------------------------------------------------
def test_preference_text_round_trips() -> None:
    prompt, responses = "Human: ça va?\n\nAssistant: \"oui\" \u2014 et toi?", ["Bien.\nMerci", "", "\U0001f600 {json}"]
    text = preference_text(prompt, responses)
    assert json.loads(text) == {"prompt": prompt, "responses": responses}
    assert parse_preference_text(text) == (prompt, responses)
    for bad in ("not json", "[1, 2]", '{"prompt": "p"}', '{"prompt": "p", "responses": [1]}',
                '{"prompt": 3, "responses": ["a", "b"]}'):
        with pytest.raises(ValueError, match="preference TEXT"):
            parse_preference_text(bad)


def test_response_orders_are_balanced() -> None:
    assert response_orders(2) == [[0, 1], [1, 0]]
    assert response_orders(2, 1) == [[0, 1]]
    assert response_orders(2, 5) == [[0, 1], [1, 0]], "no more orders than there are distinct ones"
    three = response_orders(3)
    assert len({tuple(o) for o in three}) == 6, "every permutation of three"
    for n in range(2, 9):
        orders = response_orders(n)
        assert len(orders) == (2 if n == 2 else 6 if n == 3 else 2 * n)
        assert all(sorted(o) == list(range(n)) for o in orders)
        for subset in (orders[:n], orders):  # the rotations alone, and all of them
            for position in range(n):
                counts = Counter(o[position] for o in subset)
                assert set(counts) == set(range(n)) and len(set(counts.values())) == 1, (n, position)
    assert response_orders(5, 3) == response_orders(5)[:3]


def test_preference_choices_read_the_project() -> None:
    assert preference_choices({"task": "single_label", "labels": ["a", "b"]}) is None
    assert preference_choices({"labels": ["a", "b"]}) is None
    assert preference_choices(project(2)) == (2, False)
    assert preference_choices(project(4, ties=True)) == (4, True)
    for bad in ({**project(2), "labels": ["2", "1"]}, {**project(2), "labels": ["1", "2", "3"]},
                {**project(2), "labels": ["1"]}, {**project(2), "allow_ties": True},
                {**project(3), "responses_per_item": 4}):
        with pytest.raises(ValueError):
            preference_choices(bad)


def test_project_payload_carries_the_preference_fields() -> None:
    spec = resolve(events_pb2.ProjectSpec(project_id="p", task="best_of_n", responses_per_item=3, allow_ties=True))
    payload = json.loads(project_payload(spec))
    assert payload["task"] == "best_of_n" and payload["allow_ties"] is True and payload["responses_per_item"] == 3
    assert payload["labels"] == ["1", "2", "3", "tie"]
    assert preference_choices(payload) == (3, True)
    single = json.loads(project_payload(resolve(events_pb2.ProjectSpec(project_id="s", labels=["a", "b"]))))
    assert single["task"] == "single_label" and preference_choices(single) is None


# -- the judge (the real model) ------------------------------------------------------------------
@pytest.fixture(scope="module")
def judge() -> Any:
    return load_causal_classifier()


def test_probabilities_sum_to_one_with_a_tie_column_only_when_allowed(judge: Any) -> None:
    texts = [preference_text(p, r) for p, r in hh_pairs(3)]
    without = judge.predict(texts, project(2))
    assert without.shape == (3, 2) and without.dtype == np.float32 and np.all(without >= 0)
    np.testing.assert_allclose(without.sum(axis=1), 1.0, atol=1e-6)
    with_ties = judge.predict(texts, project(2, ties=True))
    assert with_ties.shape == (3, 3) and np.all(with_ties >= 0)
    np.testing.assert_allclose(with_ties.sum(axis=1), 1.0, atol=1e-6)


def test_swapping_the_responses_swaps_the_averaged_output(judge: Any) -> None:
    pairs = hh_pairs(3)
    texts = [preference_text(p, r) for p, r in pairs]
    swapped = [preference_text(p, r[::-1]) for p, r in pairs]
    for spec in (project(2), project(2, ties=True)):
        base, other = judge.predict(texts, spec), judge.predict(swapped, spec)
        permutation = [1, 0] + ([2] if spec["allow_ties"] else [])
        np.testing.assert_allclose(other[:, permutation], base, atol=1e-6)


def test_each_order_maps_letters_back_to_the_canonical_responses(judge: Any) -> None:
    (prompt, responses), = hh_pairs(1)
    _, shown_first = judge.judge_by_order([preference_text(prompt, responses)], project(2), orders=[[0, 1]])
    _, shown_second = judge.judge_by_order([preference_text(prompt, responses[::-1])], project(2), orders=[[1, 0]])
    # The same prompt text both times (response 1 in position A), so the same canonical answer.
    np.testing.assert_allclose(shown_second[0, 0, ::-1], shown_first[0, 0], atol=1e-6)
    orders, both = judge.judge_by_order([preference_text(prompt, responses)], project(2))
    assert orders == [[0, 1], [1, 0]] and both.shape == (1, 2, 2)
    np.testing.assert_allclose(both[0, 0], shown_first[0, 0], atol=1e-6)


def test_best_of_three_follows_a_permutation_of_the_responses(judge: Any) -> None:
    prompt = "Human: What is the capital of France?"
    responses = ["The capital of France is Paris.", "I think it is Lyon, or maybe Marseille.", "Bananas are yellow."]
    spec = project(3, ties=True, instructions="Which answer to the question is correct and helpful?")
    base = judge.predict([preference_text(prompt, responses)], spec)
    assert base.shape == (1, 4)
    np.testing.assert_allclose(base.sum(), 1.0, atol=1e-6)
    for permutation in ([2, 0, 1], [1, 0, 2]):
        probs = judge.predict([preference_text(prompt, [responses[i] for i in permutation])], spec)
        np.testing.assert_allclose(probs[0], base[0, permutation + [3]], atol=1e-6)


def test_long_texts_are_cut_to_fit_the_context(judge: Any) -> None:
    long = " ".join(f"word{i}" for i in range(6000))
    probs = judge.predict([preference_text("Human: " + long, [long, "short " + long])], project(2))
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-6)


def test_bad_rows_and_projects_are_refused(judge: Any) -> None:
    with pytest.raises(ValueError, match="compares 2 responses"):
        judge.predict([preference_text("p", ["a", "b", "c"])], project(2))
    with pytest.raises(ValueError, match="preference TEXT"):
        judge.predict(["plain text"], project(2))
    with pytest.raises(ValueError, match="choices"):
        judge.predict([preference_text("p", ["a", "b"])], {**project(2), "labels": ["a", "b"]})
