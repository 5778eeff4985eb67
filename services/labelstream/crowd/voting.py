"""Majority vote with dynamic overlap on ties: plain functions, no I/O."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class VoteOutcome:
    label: str | None          # None: not final yet
    share: float               # fraction of votes for the label
    votes_needed: int          # total votes to wait for (raised on a tie)


def majority_vote(votes: list[str], label_order: list[str], required: int, max_overlap: int) -> VoteOutcome:
    """Final once `required` votes are in and one label leads; a tie asks for one more vote
    until `max_overlap`, then falls to the earliest label in the project's order."""
    if len(votes) < required:
        return VoteOutcome(None, 0.0, required)
    counts = Counter(votes)
    best = max(counts.values())
    leaders = [label for label in label_order if counts.get(label) == best]
    leaders += sorted(label for label, n in counts.items() if n == best and label not in label_order)
    if len(leaders) > 1 and len(votes) < max_overlap:
        return VoteOutcome(None, 0.0, len(votes) + 1)
    return VoteOutcome(leaders[0], best / len(votes), len(votes))
