"""What `labelstream export` writes: final labels as JSON lines (a multi_label project's as
multi-hot rows), or preference pairs in the layout TRL's DPO trainer reads."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from labelstream.common.projects import TIE, parse_label_set, response_index
from labelstream.crowd.preference import SourceStanding, source_leaderboard
from labelstream.v1 import events_pb2


class ExportFormat(StrEnum):
    JSONL = "jsonl"  # one final label per line (client.final_label_json)
    DPO = "dpo"      # {"prompt", "chosen", "rejected"} per line, for preference projects


def multi_hot_row(label: events_pb2.FinalLabel, spec: events_pb2.ProjectSpec,
                  base: Mapping[str, Any]) -> dict[str, Any]:
    """A multi_label final label as one JSON line: `base` (the label's own record), its set's
    label names in the project's label order, and a 0/1 vector over the project's labels in that
    order (the datasheet's "labels" names the columns); none of these is all zeros."""
    chosen = set(label.label_set) if label.label_set else set(parse_label_set(label.label) or [])
    unknown = chosen - set(spec.labels)
    if unknown:
        raise ValueError(f"final label of item {label.item_id!r} names {sorted(unknown)}, not labels of project "
                         f"{spec.project_id!r}")
    return {**base, "labels": [name for name in spec.labels if name in chosen],
            "multi_hot": [int(name in chosen) for name in spec.labels]}


def dpo_rows(label: events_pb2.FinalLabel, item: events_pb2.Item) -> list[dict[str, str]]:
    """The preference pairs one final label gives: the chosen response against each other one (one
    pair for a pairwise item, N - 1 for best-of-N). A tie prefers nothing, so it gives none."""
    if label.label == TIE:
        return []
    chosen = response_index(label.label)
    if chosen is None or not 0 <= chosen < len(item.responses):
        raise ValueError(f"final label {label.label!r} of item {item.item_id!r} names no response of its "
                         f"{len(item.responses)}")
    return [{"prompt": item.text, "chosen": item.responses[chosen].text, "rejected": other.text}
            for i, other in enumerate(item.responses) if i != chosen]


def write_dpo(labels: Iterable[events_pb2.FinalLabel], items: Mapping[str, events_pb2.Item],
              out: Path) -> dict[str, Any]:
    """Write the DPO pairs of every final label whose item is known; returns counts (pairs, ties,
    labels without their item)."""
    counts = {"pairs": 0, "ties": 0, "missing_items": 0}
    with out.open("w") as handle:
        for label in sorted(labels, key=lambda x: x.item_id):
            item = items.get(label.item_id)
            if item is None:
                counts["missing_items"] += 1
                continue
            rows = dpo_rows(label, item)
            counts["ties"] += label.label == TIE
            counts["pairs"] += len(rows)
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return counts


def leaderboard(labels: Iterable[events_pb2.FinalLabel], items: Mapping[str, events_pb2.Item]) -> list[SourceStanding]:
    """The sources that wrote the responses (models, say), ranked by Bradley-Terry over the final
    choices of the items whose responses all name a source."""
    decided = []
    for label in labels:
        item = items.get(label.item_id)
        if item is not None and item.responses and all(r.source for r in item.responses):
            decided.append(([r.source for r in item.responses], label.label))
    return source_leaderboard(decided)
