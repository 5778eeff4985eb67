"""UKPConvArg1 replayed through the real dispatcher and aggregator: each pair names the Mechanical
Turk workers who judged it as its annotators, so the dispatcher leases it only to them; each worker
answers exactly as they did, through the dispatcher's gRPC API, in the order of responses the
dispatcher drew for them; the aggregator settles every pair. Its final labels must be what the
project's aggregation gives on the same answers in process, with every recorded answer counted."""

from __future__ import annotations

import pytest

from labelstream.cli import client
from labelstream.cli.projects import load_project
from labelstream.simulation import ukp
from labelstream.simulation.workforce import ReplayWorkforce

pytestmark = pytest.mark.integration
PROJECT = "ukp-replay"
PAIRS = 60
REPLAY_PROJECT = ukp.UKP_DIR / "replay.yaml"


def test_real_workers_answer_as_they_did_and_the_aggregator_settles_every_pair(state):
    spec = load_project(REPLAY_PROJECT)
    assert spec.project_id == PROJECT
    client.apply_project(state.grpc_target("ingest"), spec)
    items = ukp.replay_items(limit=PAIRS)
    # one pair with fewer annotators than the overlap: it asks for no more answers than they can give
    items[0]["annotators"] = items[0]["annotators"][:3]
    answers = ukp.recorded_answers(items)
    client.publish_json_items(state.kafka_bootstrap, PROJECT, items)

    workforce = ReplayWorkforce(state.grpc_target("dispatcher"), PROJECT, answers, threads=4)
    given = workforce.run(timeout_s=240)
    expected_answers = sum(len(i["annotators"]) for i in items)
    assert workforce.unexpected == [], "the dispatcher leased a pair to a worker who is not its annotator"
    assert given == expected_answers

    client.wait_for_final_labels(state.grpc_target("monitor"), PROJECT, PAIRS, timeout_s=120)
    finals = client.read_final_labels(state.kafka_bootstrap, PROJECT)
    assert len(finals) == PAIRS
    for item in items:
        assert sorted(finals[item["item_id"]].workers) == sorted(item["annotators"]), item["item_id"]

    gold = {i["item_id"]: i["gold_label"] for i in items if "gold_label" in i}
    stack_accuracy = sum(finals[i].label == g for i, g in gold.items()) / len(gold)
    majority = {}
    for item in items:
        choices = [answers[w][tuple(item["responses"])] for w in item["annotators"]]
        counts = {label: choices.count(label) for label in ukp.LABELS}
        majority[item["item_id"]] = max(counts, key=counts.get)
    majority_accuracy = sum(majority[i] == g for i, g in gold.items()) / len(gold)
    # The project's aggregation (replay.yaml says why majority vote) on the answers the stack
    # collected, against majority vote on the recorded answers in process: the stack must lose
    # nothing on the way (ties may break differently, hence the margin).
    assert stack_accuracy >= majority_accuracy - 0.05 and stack_accuracy >= 0.8, (stack_accuracy, majority_accuracy)
