"""A Dawid-Skene project's final labels do not depend on the order its answers arrived.

The aggregator decides an item when its last answer arrives, on the skill fit of that moment, and
re-fits in the background. Real crowd answers (UKPConvArg1's Mechanical Turk workers) are recorded through the
aggregator's own code against the real store, once in the file's order and once reversed, with a
re-fit every 100 answers as the background loop would do. After the last re-fit, both projects'
final labels must be the one fit on every answer gives in process. Before re-fits revisited every
decision (not only the ones the new fit was confident about), the UKPConvArg1 replay settled .776
of its pairs right on the stack against .879 for the same fit in process."""

from __future__ import annotations

import pytest

from labelstream.aggregator.aggregation import Aggregation
from labelstream.common.projects import resolve
from labelstream.common.settings import Settings
from labelstream.common.store import Store
from labelstream.crowd.decide import fit_project
from labelstream.simulation.ukp import LABELS, load_pairs
from labelstream.v1 import events_pb2

pytestmark = pytest.mark.integration
ITEMS = 60
ANSWERS_PER_ITEM = 5
REFIT_EVERY = 100


def answers_in_file_order() -> list[tuple[str, str, str]]:
    """(pair, worker, choice) of the first pairs answered by five workers each."""
    pairs = [pair for pair in load_pairs() if len(pair.answers) == ANSWERS_PER_ITEM][:ITEMS]
    return [(pair.pair_id, worker, choice) for pair in pairs for worker, choice in pair.answers]


def final_labels_after_replay(store: Store, project_id: str, answers: list[tuple[str, str, str]]) -> dict[str, str]:
    spec = resolve(events_pb2.ProjectSpec(
        project_id=project_id, task="pairwise", allow_ties=True, aggregation="dawid_skene",
        overlap=ANSWERS_PER_ITEM, max_overlap=ANSWERS_PER_ITEM, model="encoder_fewshot"))
    store.put_project(spec)
    aggregation = Aggregation(store)
    aggregation.refit()  # the first re-fit: every project (none has votes yet)
    for done, (item, worker, label) in enumerate(answers, 1):
        aggregation.record_vote(events_pb2.HumanResponse(
            project_id=project_id, item_id=item, task_id=f"{project_id}:{item}", worker_id=worker, label=label,
            task_overlap=ANSWERS_PER_ITEM))
        if done % REFIT_EVERY == 0:
            aggregation.refit()
    aggregation.refit()
    return {doc["item_id"]: doc["label"] for doc in store.db.final_labels.find({"project_id": project_id})}


def test_final_labels_are_the_fit_on_every_answer_whatever_the_order(scratch_mongodb_uri):
    store = Store(Settings.from_env({"LABELSTREAM_MONGODB_URI": scratch_mongodb_uri,
                                     "LABELSTREAM_MONGODB_DATABASE": "refit_order"}))
    answers = answers_in_file_order()
    assert len(answers) == ITEMS * ANSWERS_PER_ITEM
    forward = final_labels_after_replay(store, "ukp-forward", answers)
    backward = final_labels_after_replay(store, "ukp-backward", answers[::-1])
    in_process = fit_project(LABELS, answers, "dawid_skene").labels_by_item()
    assert len(forward) == len(backward) == ITEMS
    assert forward == in_process, f"{sum(forward[i] != in_process[i] for i in forward)} labels differ"
    assert backward == in_process, f"{sum(backward[i] != in_process[i] for i in backward)} labels differ"
