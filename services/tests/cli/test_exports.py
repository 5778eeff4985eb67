"""`labelstream export --format dpo`: preference pairs in the layout TRL's DPO trainer reads."""

from __future__ import annotations

import pytest

from labelstream.cli.exports import dpo_rows, leaderboard, write_dpo
from labelstream.v1 import events_pb2


def item(item_id: str, prompt: str, responses: list[str]) -> events_pb2.Item:
    return events_pb2.Item(project_id="p", item_id=item_id, text=prompt,
                           responses=[events_pb2.Response(text=r, source=f"m{i}") for i, r in enumerate(responses)])


def final(item_id: str, label: str) -> events_pb2.FinalLabel:
    return events_pb2.FinalLabel(project_id="p", item_id=item_id, label=label)


def test_pairs_of_pairwise_best_of_n_and_ties():
    pair = item("a", "Say hi", ["hello there", "go away"])
    assert dpo_rows(final("a", "1"), pair) == [{"prompt": "Say hi", "chosen": "hello there", "rejected": "go away"}]
    assert dpo_rows(final("a", "2"), pair) == [{"prompt": "Say hi", "chosen": "go away", "rejected": "hello there"}]
    assert dpo_rows(final("a", "tie"), pair) == []
    four = item("b", "Pick", ["w", "x", "y", "z"])
    pairs = [(r["chosen"], r["rejected"]) for r in dpo_rows(final("b", "3"), four)]
    assert pairs == [("y", "w"), ("y", "x"), ("y", "z")]
    with pytest.raises(ValueError, match="names no response"):
        dpo_rows(final("a", "3"), pair)


def test_the_file_loads_with_the_datasets_library_as_a_dpo_trainer_reads_it(tmp_path):
    import datasets

    items = {"a": item("a", "Say hi", ["hello there", "go away"]), "b": item("b", "Pick", ["w", "x", "y", "z"]),
             "c": item("c", "Either", ["this", "that"])}
    labels = [final("a", "1"), final("b", "4"), final("c", "tie"), final("gone", "1")]
    out = tmp_path / "pairs.jsonl"
    assert write_dpo(labels, items, out) == {"pairs": 4, "ties": 1, "missing_items": 1}
    loaded = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert loaded.column_names == ["prompt", "chosen", "rejected"]
    assert all(feature.dtype == "string" for feature in loaded.features.values())
    assert loaded.num_rows == 4
    assert loaded[0] == {"prompt": "Say hi", "chosen": "hello there", "rejected": "go away"}
    assert set(loaded["chosen"][1:]) == {"z"} and loaded["rejected"][1:] == ["w", "x", "y"]


def test_the_leaderboard_ranks_the_sources_that_wrote_the_better_responses():
    def sourced(item_id: str, sources: list[str]) -> events_pb2.Item:
        return events_pb2.Item(item_id=item_id, text="q", responses=[
            events_pb2.Response(text=f"{item_id}-{s}", source=s) for s in sources])

    items = {f"i{i}": sourced(f"i{i}", ["big", "small"] if i % 2 else ["small", "big"]) for i in range(12)}
    items["unsourced"] = item("unsourced", "q", ["a", "b"])
    items["unsourced"].responses[0].source = ""
    # big wins 10 of 12 (wherever it was put); the unsourced item says nothing about sources
    labels = [final(f"i{i}", ("1" if i % 2 else "2") if i < 10 else ("2" if i % 2 else "1")) for i in range(12)]
    standings = leaderboard(labels + [final("unsourced", "1")], items)
    assert [s.source for s in standings] == ["big", "small"]
    assert standings[0].wins == 10 and standings[0].items == 12 and standings[0].score > standings[1].score
