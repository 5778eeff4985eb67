"""A multi_label project end to end on the real stack (issue 17): 40 GoEmotions comments with
their Ekman groups + neutral as label sets; ingest checks the gold sets, the encoder's one-vs-rest
head gives each label its own probability on Triton, the router decides label by label, simulated
raters tick checkboxes through the dispatcher, the aggregator settles each item with pooled
Dawid-Skene per label, and the export writes multi-hot lines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from integration_tests.conftest import eventually
from labelstream.cli import client
from labelstream.cli.main import write_export
from labelstream.common.projects import parse_label_set
from labelstream.common.topics import SCHEMA_VERSION
from labelstream.crowd.multilabel import encode_sets, set_metrics
from labelstream.simulation import goemotions
from labelstream.simulation.workforce import WorkerProfile, Workforce, gold_by_text
from labelstream.v1 import events_pb2

pytestmark = pytest.mark.integration
PROJECT = "multilabel-pipeline"
LABELS = list(goemotions.EKMAN_LABELS)
ITEMS, EXAMPLES = 40, 60


def test_goemotions_sets_through_the_stack(state, db, tmp_path):
    data = goemotions.load_items()
    sets = goemotions.label_sets(data, ekman=True)
    examples = [events_pb2.FewShotExample(text=item.text, labels=sorted(labels))
                for item, labels in zip(data[ITEMS:ITEMS + EXAMPLES], sets[ITEMS:ITEMS + EXAMPLES], strict=True)]
    spec = events_pb2.ProjectSpec(
        schema_version=SCHEMA_VERSION, project_id=PROJECT, task="multi_label", labels=LABELS, examples=examples,
        max_labels_per_item=4, auto_accept_threshold=0.9, overlap=3, max_overlap=4, aggregation="dawid_skene",
        posterior_bound=0.9, label_guidelines={"neutral": "no emotion is expressed"})
    client.apply_project(state.grpc_target("ingest"), spec)
    stored = client.get_project(state.grpc_target("ingest"), PROJECT)
    assert stored.model == "encoder_fewshot" and list(stored.labels) == LABELS

    rows = [{"item_id": item.item_id, "text": item.text, "gold_label": sorted(labels)}
            for item, labels in zip(data[:ITEMS], sets[:ITEMS], strict=True)]
    bad = [{"item_id": "bad-unknown", "text": "so happy", "gold_label": ["joy", "love"]},
           {"item_id": "bad-many", "text": "everything", "gold_label": LABELS[:5]},
           {"item_id": "bad-empty", "text": "nothing", "gold_label": []}]
    client.publish_json_items(state.kafka_bootstrap, PROJECT, rows + bad)
    reasons = eventually(lambda: (lambda found: found if len(found) == len(bad) else None)(
        {letter.item_id: letter.reason for letter in client.read_dead_letters(state.kafka_bootstrap, PROJECT)}),
        timeout_s=60)
    assert reasons == {"bad-unknown": "unknown_label", "bad-many": "too_many_labels", "bad-empty": "bad_label_set"}

    assert eventually(lambda: db.predictions.count_documents({"project_id": PROJECT}) == ITEMS, timeout_s=60)
    probabilities = np.array([doc["probabilities"] for doc in db.predictions.find({"project_id": PROJECT})])
    assert probabilities.shape == (ITEMS, len(LABELS)) and ((probabilities >= 0) & (probabilities <= 1)).all()
    assert np.abs(probabilities.sum(axis=1) - 1).max() > 0.05, "each label's own probability, not a softmax"

    raters = WorkerProfile(answer_ms=5, sensitivity=0.85, specificity=0.97)
    with Workforce(state.grpc_target("dispatcher"), PROJECT, gold_by_text(rows), count=6, profile=raters,
                   prefix="ml") as force:
        client.wait_for_final_labels(state.grpc_target("monitor"), PROJECT, ITEMS, timeout_s=90)
    assert force.counters.answers > 0 and force.counters.refused == 0

    finals = eventually(lambda: (lambda found: found if len(found) == ITEMS else None)(
        client.read_final_labels(state.kafka_bootstrap, PROJECT)), timeout_s=60) or {}
    assert sorted(finals) == sorted(r["item_id"] for r in rows), "exactly one final set per item"
    for final in finals.values():
        chosen = parse_label_set(final.label)
        assert chosen is not None and chosen == list(final.label_set), final
        assert chosen and set(chosen) <= set(LABELS) and len(chosen) <= 4, final
    reference = encode_sets([r["gold_label"] for r in rows], LABELS)
    predicted = encode_sets([list(finals[r["item_id"]].label_set) for r in rows], LABELS)
    metrics = set_metrics(predicted, reference)
    # chance: each label ticked at its reference rate, independently of the item
    rate = reference.mean(axis=0)
    chance = 2 * (rate * rate).sum() / (2 * rate.sum())
    assert metrics.micro_f1 >= 0.7 and metrics.micro_f1 > chance + 0.4, (metrics.micro_f1, chance)
    sources = {events_pb2.LabelSource.Name(f.source) for f in finals.values()}
    assert sources <= {"LABEL_SOURCE_AUTO", "LABEL_SOURCE_HUMAN"}

    out = tmp_path / "labels.jsonl"
    sheet = write_export(state, PROJECT, out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == ITEMS and sheet["final_labels"] == ITEMS
    for line in lines:
        assert len(line["multi_hot"]) == len(LABELS) and set(line["multi_hot"]) <= {0, 1}
        assert line["labels"] == [name for name, hot in zip(LABELS, line["multi_hot"], strict=True) if hot]
        assert line["labels"] == [name for name in LABELS if name in finals[line["item_id"]].label_set]
    assert out.with_name("labels.datasheet.md").exists()
