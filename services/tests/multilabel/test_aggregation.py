"""Multi-label answers through the aggregator's decisions (no store, no broker)."""

from __future__ import annotations

import numpy as np

from labelstream.aggregator import multilabel as aggregate
from labelstream.common.projects import label_set_key, resolve
from labelstream.v1 import events_pb2

LABELS = ["anger", "joy", "sadness"]


def multi(**overrides) -> events_pb2.ProjectSpec:
    return resolve(events_pb2.ProjectSpec(**{"project_id": "p", "task": "multi_label", "labels": LABELS, **overrides}))


def test_majority_per_label_decides_a_set_and_asks_more_on_a_tie():
    spec = multi(overlap=2, max_overlap=4)
    votes = [("w1", label_set_key(["joy"])), ("w2", label_set_key(["joy", "anger"]))]
    tie = aggregate.decide(spec, None, votes, required=2, max_votes=4)
    assert tie.label is None and tie.votes_needed == 3  # anger is 1 of 2
    votes.append(("w3", label_set_key(["joy"])))
    final = aggregate.decide(spec, None, votes, required=2, max_votes=4)
    assert final.label == '["joy"]' and np.allclose(final.scores, [1 / 3, 1.0, 0.0])


def test_pooled_dawid_skene_outvotes_a_worker_who_ticks_everything():
    spec = multi(aggregation="dawid_skene", overlap=3, max_overlap=3, posterior_bound=0.9)
    rng = np.random.default_rng(1)
    votes = []
    truths = {}
    for i in range(120):
        truth = sorted({LABELS[int(rng.integers(3))]})
        truths[f"i{i}"] = truth
        for worker in ("a", "b"):
            votes.append((f"i{i}", worker, label_set_key(truth)))
        votes.append((f"i{i}", "spam", label_set_key(LABELS)))
    skill = aggregate.fit_project(spec, votes)
    assert skill is not None and set(skill.workers) == {"a", "b", "spam"}
    item_votes = [(w, key) for item, w, key in votes if item == "i0"]
    decision = aggregate.decide(spec, skill, item_votes, required=3, max_votes=3)
    assert decision.label == label_set_key(truths["i0"])
    assert aggregate.fit_project(multi(), votes) is None  # majority: nothing to fit
