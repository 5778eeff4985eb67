"""A model near chance keeps the guarantee too: the encoder on RTE entailment pairs (Snow 2008's
800 items), where sentence embeddings and a few-shot head barely beat a coin. Whatever the sound
router auto-accepts must be at least the target accurate in 95% of runs; mostly it accepts nothing."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from labelstream.common.projects import resolve
from labelstream.models.local import load_encoder_classifier, project_dict
from labelstream.routing.evaluation import EvaluationData, evaluate
from labelstream.v1 import events_pb2

RTE = Path(__file__).resolve().parents[3] / "deploy" / "examples" / "crowd" / "snow2008" / "rte1.tsv"
TARGET, SEEDS, EXAMPLES_PER_LABEL = 0.9, 20, 4


@pytest.fixture(scope="module")
def summary() -> dict:
    with RTE.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    labels = ["not entailed", "entailed"]
    texts = [f"{r['text']} Hypothesis: {r['hypothesis']}" for r in rows]
    gold = np.array([int(r["value"] == "TRUE") for r in rows])
    spec = resolve(events_pb2.ProjectSpec(
        project_id="rte", labels=labels, instructions="Does the text entail the hypothesis?"))
    examples = [i for cls in (0, 1) for i in np.flatnonzero(gold == cls)[:EXAMPLES_PER_LABEL]]
    for i in examples:
        spec.examples.add(text=texts[i], label=labels[gold[i]])
    rest = np.setdiff1d(np.arange(len(rows)), examples)
    classifier = load_encoder_classifier()
    probabilities = classifier.predict([texts[i] for i in rest], project_dict(spec)).astype(float)
    data = EvaluationData(probabilities, gold[rest], np.array([len(texts[i]) for i in rest], dtype=float))
    return evaluate(data, TARGET, SEEDS)


def test_the_encoder_is_near_chance_on_rte(summary):
    assert summary["held_out_model_accuracy"] < 0.65, summary["held_out_model_accuracy"]


@pytest.mark.parametrize("strategy", ["calibrated", "meta"])
def test_a_near_chance_model_auto_accepts_nothing_below_the_target(summary, strategy):
    point = summary["strategies"][strategy]["operating_point"]
    assert point["runs_meeting_target"] >= 0.95 * SEEDS, point["runs"]
    wrong = [r for r in point["runs"] if r["auto_accepted"] and r["auto_accuracy"] < TARGET]
    assert len(wrong) <= 0.05 * SEEDS, wrong
