"""From votes to a decision: majority, weighted and Dawid-Skene posteriors with dynamic overlap."""

from __future__ import annotations

import random

import pytest

from labelstream.crowd.decide import SkillModel, decide, fit_project

LABELS = ["neg", "pos"]


def test_majority_vote_ties_ask_for_one_more_vote():
    skills = SkillModel(LABELS)
    assert decide("majority_vote", skills, [("a", "pos"), ("b", "neg")], None, 2, 4, 0.95).votes_needed == 3
    final = decide("majority_vote", skills, [("a", "pos"), ("b", "pos")], None, 2, 4, 0.95)
    assert (final.label, final.posterior) == ("pos", 1.0)


def test_weighted_vote_trusts_the_worker_with_better_gold():
    skills = SkillModel(LABELS, gold_accuracy={"expert": 0.97, "novice": 0.55})
    decision = decide("weighted_vote", skills, [("expert", "neg"), ("novice", "pos")], None, 2, 2, 0.95)
    assert decision.label == "neg" and decision.posterior > 0.9


def test_posterior_bound_decides_when_to_stop_asking():
    skills = SkillModel(LABELS, gold_accuracy={"a": 0.9, "b": 0.9, "c": 0.9})
    early = decide("weighted_vote", skills, [("a", "pos")], None, 1, 5, 0.95)
    assert early.label is None and early.votes_needed == 2, "0.9 is below the 0.95 bound: one more vote"
    agreed = decide("weighted_vote", skills, [("a", "pos"), ("b", "pos")], None, 1, 5, 0.95)
    assert agreed.label == "pos" and agreed.posterior >= 0.95
    capped = decide("weighted_vote", skills, [("a", "pos"), ("b", "neg")], None, 1, 2, 0.95)
    assert capped.label is not None, "max overlap reached: final with the best label"


def test_the_model_is_one_more_voter():
    skills = SkillModel(LABELS)
    alone = decide("weighted_vote", skills, [("x", "pos")], None, 1, 5, 0.9)
    with_model = decide("weighted_vote", skills, [("x", "pos")], ("pos", 0.95), 1, 5, 0.9)
    assert alone.label is None and with_model.label == "pos"


def test_dawid_skene_fit_learns_who_to_trust():
    rng = random.Random(0)
    votes = []
    truth = {}
    for i in range(200):
        item, label = f"i{i}", rng.choice(LABELS)
        truth[item] = label
        for worker, accuracy in (("good1", 0.95), ("good2", 0.9), ("spam1", 0.5), ("spam2", 0.5)):
            answer = label if rng.random() < accuracy else next(x for x in LABELS if x != label)
            votes.append((item, worker, answer))
    skills = SkillModel(LABELS)
    fitted = fit_project(LABELS, votes, "dawid_skene")
    skills.fit, skills.fit_workers = fitted.model, fitted.workers
    recovered = fitted.labels_by_item()
    assert sum(recovered[item] == label for item, label in truth.items()) >= 180, "the fit recovers the truth (90%)"
    # the two spammers outvote one good worker under majority, not under Dawid-Skene
    split = [("good1", "pos"), ("spam1", "neg"), ("spam2", "neg")]
    assert decide("dawid_skene", skills, split, None, 3, 3, 0.95).label == "pos"
    workers = fit_project(LABELS, votes + [("new", "newcomer", "pos")], "dawid_skene", skills).workers
    assert workers["good1"] == skills.fit_workers["good1"] and "newcomer" in workers, "indexes are stable"
    with pytest.raises(ValueError, match="unknown aggregation"):
        decide("plurality", skills, split, None, 1, 3, 0.95)
