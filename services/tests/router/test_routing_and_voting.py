import math

from labelstream.common.projects import resolve
from labelstream.crowd.voting import majority_vote
from labelstream.monitor.stats import compute_stats
from labelstream.router.policy import human_task, route
from labelstream.v1 import events_pb2


def prediction(probabilities):
    return events_pb2.Prediction(project_id="p", item_id="1", labels=["neg", "pos"], probabilities=probabilities,
                                 text="t", model_name="m", model_version="1", ingested_at_ms=5)


# as the router reads it: resolved when it was applied
SPEC = resolve(events_pb2.ProjectSpec(project_id="p", labels=["neg", "pos"], auto_accept_threshold=0.8, overlap=3))


def test_confident_prediction_is_auto_accepted():
    decision = route(prediction([0.1, 0.9]), SPEC)
    assert decision.route == events_pb2.ROUTE_AUTO and decision.label == "pos"
    assert math.isclose(decision.confidence, 0.9, rel_tol=1e-6)


def test_threshold_is_inclusive_and_uncertain_goes_to_people():
    assert route(prediction([0.2, 0.8]), SPEC).route == events_pb2.ROUTE_AUTO
    decision = route(prediction([0.6, 0.4]), SPEC)
    assert decision.route == events_pb2.ROUTE_HUMAN
    task = human_task(prediction([0.6, 0.4]), decision, SPEC, "p:1")
    assert task.overlap == 3 and math.isclose(task.priority, 0.4, rel_tol=1e-6)


def test_a_task_with_named_annotators_asks_no_more_answers_than_they_can_give():
    named = prediction([0.6, 0.4])
    named.annotators.extend(["w1", "w2"])
    task = human_task(named, route(named, SPEC), SPEC, "p:1")
    assert task.overlap == 2 and list(task.annotators) == ["w1", "w2"]


def test_majority_waits_for_required_votes():
    assert majority_vote(["a", "a"], ["a", "b"], required=3, max_overlap=5).label is None
    outcome = majority_vote(["a", "b", "a"], ["a", "b"], required=3, max_overlap=5)
    assert outcome.label == "a" and math.isclose(outcome.share, 2 / 3)


def test_tie_asks_for_one_more_vote_until_max_overlap():
    outcome = majority_vote(["a", "b"], ["a", "b"], required=2, max_overlap=3)
    assert outcome.label is None and outcome.votes_needed == 3
    final = majority_vote(["b", "a", "c"], ["a", "b", "c"], required=3, max_overlap=3)
    assert final.label == "a"  # tie at the bound: the project's label order decides


def test_stats_accuracy_paths_and_latency():
    events = [
        {"kind": "item_accepted", "item_id": "1", "gold_label": "pos"},
        {"kind": "item_accepted", "item_id": "2", "gold_label": "neg"},
        {"kind": "item_accepted", "item_id": "3", "gold_label": ""},
        {"kind": "final_label", "item_id": "1", "label": "pos", "source": "auto", "version": 1,
         "ingested_at_ms": 0, "finalized_at_ms": 1000},
        {"kind": "final_label", "item_id": "2", "label": "pos", "source": "human", "version": 1,
         "ingested_at_ms": 0, "finalized_at_ms": 3000},
        {"kind": "final_label", "item_id": "3", "label": "neg", "source": "human", "version": 1,
         "ingested_at_ms": 1000, "finalized_at_ms": 2000},
    ]
    stats = compute_stats("p", events)
    assert stats.final_labels == 3 and stats.items_accepted == 3
    assert stats.overall.with_gold == 2 and stats.overall.correct == 1
    assert stats.auto_path.accuracy == 1.0 and stats.human_path.accuracy == 0.0
    assert math.isclose(stats.human_fraction, 2 / 3)
    assert stats.latency_p50_ms == 1000.0
    assert math.isclose(stats.throughput_per_s, 1.0)
