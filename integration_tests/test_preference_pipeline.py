"""A pairwise preference project end to end on the real stack: ingest checks the responses, the
causal LM judges every pair on Triton, the router sends the pairs to people, the dispatcher shows
each worker the responses in their own order and maps answers back, the aggregator settles each
pair, and the export writes DPO pairs that the datasets library loads."""

from __future__ import annotations

import pytest

from integration_tests.conftest import eventually
from labelstream.cli import client
from labelstream.cli.exports import ExportFormat, leaderboard
from labelstream.cli.main import accepted_items, write_export
from labelstream.common.dead_letters import DeadLetterReason
from labelstream.common.topics import SCHEMA_VERSION
from labelstream.simulation.workforce import WorkerProfile, Workforce, gold_by_text
from labelstream.v1 import events_pb2

pytestmark = pytest.mark.integration
PROJECT = "preference-pipeline"
PAIRS = [
    ("What is 2 + 2?", "2 + 2 is 4.", "It is 5."),
    ("Name a colour of the sky on a clear day.", "Blue.", "Green, usually."),
    ("How many legs does a spider have?", "A spider has eight legs.", "Six."),
    ("What do bees make?", "Bees make honey.", "Bees make milk."),
    ("Which is bigger, the sun or the moon?", "The sun is far bigger than the moon.", "The moon."),
    ("What is the capital of Italy?", "Rome.", "Milan is the capital of Italy."),
    ("Translate 'hello' to French.", "Bonjour.", "Gracias."),
    ("Is ice cold or hot?", "Ice is cold.", "Ice is hot."),
]


def items() -> list[dict]:
    """The better response first on even items and second on odd ones: position says nothing."""
    rows = []
    for i, (prompt, better, worse) in enumerate(PAIRS):
        responses = [better, worse] if i % 2 == 0 else [worse, better]
        sources = ["careful-model", "sloppy-model"] if i % 2 == 0 else ["sloppy-model", "careful-model"]
        rows.append({"item_id": f"pair-{i}", "prompt": prompt, "gold_label": "1" if i % 2 == 0 else "2",
                     "responses": [{"text": r, "source": s} for r, s in zip(responses, sources, strict=True)]})
    return rows


def test_pairs_are_judged_compared_by_people_and_exported_for_dpo(state, db, tmp_path):
    import datasets

    spec = events_pb2.ProjectSpec(schema_version=SCHEMA_VERSION, project_id=PROJECT, task="pairwise",
                                  auto_accept_threshold=1.0, overlap=2, pay_per_answer=0.05)
    client.apply_project(state.grpc_target("ingest"), spec)
    stored = client.get_project(state.grpc_target("ingest"), PROJECT)
    assert (list(stored.labels), stored.responses_per_item, stored.model) == (["1", "2"], 2, "causal_lm")
    rows = items()
    bad = [{"item_id": "three", "prompt": "q", "responses": ["a", "b", "c"]},
           {"item_id": "twice", "prompt": "q", "responses": ["Same words", "same  words"]}]
    client.publish_json_items(state.kafka_bootstrap, PROJECT, rows + bad)

    reasons = eventually(lambda: (lambda found: found if len(found) == 2 else None)(
        {letter.item_id: letter.reason for letter in client.read_dead_letters(state.kafka_bootstrap, PROJECT)}),
        timeout_s=60)
    assert reasons == {"three": DeadLetterReason.BAD_RESPONSES, "twice": DeadLetterReason.DUPLICATE_RESPONSES}

    assert eventually(lambda: db.predictions.count_documents({"project_id": PROJECT}) == len(rows), timeout_s=300)
    for doc in db.predictions.find({"project_id": PROJECT}):
        assert doc["labels"] == ["1", "2"] and abs(sum(doc["probabilities"]) - 1) < 1e-4
        assert doc["model_name"] == "causal_lm" and len(doc["responses"]) == 2

    with Workforce(state.grpc_target("dispatcher"), PROJECT, gold_by_text(rows), count=4,
                   profile=WorkerProfile(accuracy=1.0, answer_ms=5), prefix="pref") as force:
        client.wait_for_final_labels(state.grpc_target("monitor"), PROJECT, len(rows), timeout_s=120)
    assert force.counters.answers >= 2 * len(rows) and force.counters.correct == force.counters.answers

    # Once on a fresh-clone CI run, labels.final read just after the monitor counted 8 final items
    # held 7 (cause not found): wait for every item on the topic itself.
    finals = eventually(lambda: (lambda found: found if len(found) == len(rows) else None)(
        client.read_final_labels(state.kafka_bootstrap, PROJECT)), timeout_s=60) or {}
    assert {item: label.label for item, label in finals.items()} == {r["item_id"]: r["gold_label"] for r in rows}
    orders = set()
    for doc in db.responses.find({"worker_id": {"$regex": "^pref-"}}):  # the dispatcher's outbox of answers
        response = events_pb2.HumanResponse.FromString(doc["payload"])
        assert sorted(response.display_order) == [0, 1]
        shown_best = list(response.display_order).index(int(response.label) - 1)
        assert response.displayed_position == shown_best, "the answer maps back to what was shown"
        orders.add(tuple(response.display_order))
    assert orders == {(0, 1), (1, 0)}, "workers saw both orders"

    standings = leaderboard(finals.values(), accepted_items(state, PROJECT))
    assert [(s.source, s.wins) for s in standings] == [("careful-model", len(rows)), ("sloppy-model", 0)]

    out = tmp_path / "pairs.jsonl"
    sheet = write_export(state, PROJECT, out, ExportFormat.DPO)
    assert sheet["dpo"] == {"pairs": len(rows), "ties": 0, "missing_items": 0}
    loaded = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert loaded.column_names == ["prompt", "chosen", "rejected"] and loaded.num_rows == len(rows)
    better = {prompt: good for prompt, good, _ in PAIRS}
    assert all(row["chosen"] == better[row["prompt"]] for row in loaded)



def test_a_worker_who_always_picks_the_first_shown_response_is_flagged(state, db):
    """Each worker sees the responses in their own order, so a first-position habit is visible:
    after 20 answers the first-option worker carries the position_bias signal (and gets more
    gold); an honest worker on the same tasks does not."""
    project = "preference-position-bias"
    spec = events_pb2.ProjectSpec(schema_version=SCHEMA_VERSION, project_id=project, task="pairwise",
                                  overlap=2, workers=events_pb2.WorkerPolicy(max_position_share=0.8))
    client.apply_project(state.grpc_target("ingest"), spec)
    pairs = [(f"Question {i}: which answer is right?", f"The right answer to {i}.", f"A wrong answer to {i}, longer.")
             for i in range(30)]
    client.publish_human_tasks(state.kafka_bootstrap, [events_pb2.HumanTask(
        schema_version=SCHEMA_VERSION, project_id=project, item_id=f"q-{i}", task_id=f"{project}:q-{i}",
        text=prompt, labels=["1", "2"], overlap=2, priority=0.5,
        responses=[events_pb2.Response(text=good), events_pb2.Response(text=bad)])
        for i, (prompt, good, bad) in enumerate(pairs)])
    assert eventually(lambda: db.tasks.count_documents({"project_id": project}) == len(pairs), timeout_s=60)
    known = {prompt: good for prompt, good, _ in pairs}
    profiles = {"first": WorkerProfile(answer_ms=2, behaviour="first_option"), "honest": WorkerProfile(
        accuracy=0.95, answer_ms=2)}
    for name, profile in profiles.items():
        with Workforce(state.grpc_target("dispatcher"), project, known, count=1,
                       profile=profile, prefix=name) as force:
            assert eventually(lambda force=force: force.counters.answers >= 25, timeout_s=60)
    workers = client.list_workers(state.grpc_target("dispatcher"), project)
    by_worker = {w.worker_id.split("-")[0]: list(w.fraud_signals) for w in workers}
    assert "position_bias" in by_worker["first"], by_worker
    assert "position_bias" not in by_worker["honest"], by_worker
