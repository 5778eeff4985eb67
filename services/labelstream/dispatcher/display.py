"""What a worker sees of a task beyond its text and labels (`task_fields`: the kind of answer,
per-label guidelines, a multi-label task's cap and empty set), and of a preference task: its
responses in an order drawn for that worker and task, and the way back from what they picked to the canonical response.

The order is drawn from a hash of (worker, task), so a lease taken up again after it expired
shows the same order, and it is stored with the assignment so the answer maps back without
recomputing anything. Each response lands in each position equally often over workers, so a
worker's taste for a position (or a writer's for being first) cannot favour one response, and
the fraud signals can be computed on what the worker actually saw.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from labelstream.common.projects import TIE, TaskKind
from labelstream.v1 import events_pb2


def display_order(worker_id: str, task_id: str, n_responses: int) -> list[int]:
    """display_order[k]: the canonical response shown at position k (0-based)."""
    seed = int.from_bytes(hashlib.sha256(f"{worker_id}\0{task_id}".encode()).digest()[:8], "big")
    order = list(range(n_responses))
    random.Random(seed).shuffle(order)
    return order


def shown_responses(responses: Sequence[str], order: Sequence[int]) -> list[str]:
    return [responses[i] for i in order]


@dataclass(frozen=True)
class Pick:
    """An answer to a preference task, mapped back: the canonical label and what was seen."""
    label: str              # "1".."N" (canonical) or "tie"
    position: int           # the displayed position picked (0-based); -1 for a tie
    option_lengths: list[int]  # characters of each displayed response, in display order


def canonical_pick(shown_label: str, order: Sequence[int], shown_lengths: Sequence[int]) -> Pick:
    """The worker answered a displayed position ("1".."N") or "tie"; the caller checked that the
    label is one of the task's."""
    if shown_label == TIE:
        return Pick(TIE, -1, list(shown_lengths))
    position = int(shown_label) - 1
    return Pick(str(order[position] + 1), position, list(shown_lengths))


def task_fields(spec: events_pb2.ProjectSpec) -> dict[str, Any]:
    """What a lease tells the worker beyond the text and labels (gRPC LeasedTask fields and the
    page's JSON alike): per-label guidelines when the project has them, and for a multi_label
    project the task kind (the page shows checkboxes), the cap on labels and the name of the empty
    set. Nothing for a single-choice project without guidelines: its lease reads as it always did."""
    fields: dict[str, Any] = {}
    if spec.label_guidelines:
        fields["label_guidelines"] = dict(spec.label_guidelines)
    if spec.task == TaskKind.MULTI_LABEL:
        fields.update(task=spec.task, max_labels=spec.max_labels_per_item, none_label=spec.none_label)
    return fields
