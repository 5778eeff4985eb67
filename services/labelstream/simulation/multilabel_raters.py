"""Simulated raters for multi-label items (each answer a set of labels, possibly empty), against
known reference sets: honest raters with a sensitivity and a specificity per label, and the set
shortcuts "none" (always the empty set), "all" (every label) and "same_set" (one fixed set
whatever the item). Plain numpy, seeded, no I/O: thousands of items answer in milliseconds.

The single-label workforce (labelstream.simulation.workforce) answers one label through the
dispatcher's API; these raters answer in process, for the aggregation benchmark and the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SET_BEHAVIOURS = ("honest", "none", "all", "same_set")


@dataclass(frozen=True)
class SetRater:
    behaviour: str
    sensitivity: np.ndarray    # [L] P(ticks the label | it applies); honest raters
    specificity: np.ndarray    # [L] P(leaves it out | it does not apply); honest raters
    fixed: np.ndarray          # [L] boolean: the set a "same_set" rater always gives

    def __post_init__(self) -> None:
        if self.behaviour not in SET_BEHAVIOURS:
            raise ValueError(f"behaviour {self.behaviour!r} is not one of {SET_BEHAVIOURS}")

    def answer(self, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """[L] boolean answer to one item whose reference set is `truth` [L]."""
        return answer_matrix([self], np.zeros(1, dtype=np.int64), np.asarray(truth, dtype=bool)[None], rng)[0]


def draw_raters(count: int, n_labels: int, rng: np.random.Generator, *,
                sensitivity: tuple[float, float] = (0.7, 0.9), specificity: tuple[float, float] = (0.95, 0.99),
                shortcuts: Sequence[str] = (), same_set: np.ndarray | None = None) -> list[SetRater]:
    """`count` raters: sensitivity and specificity drawn uniformly per rater and label in the given
    ranges; the last len(shortcuts) raters take those behaviours instead (one each, in order).
    A "same_set" rater's set is `same_set` [L], or one label drawn at random."""
    if len(shortcuts) > count:
        raise ValueError("more shortcuts than raters")
    raters = []
    for index in range(count):
        shortcut = index - (count - len(shortcuts))
        behaviour = shortcuts[shortcut] if shortcut >= 0 else "honest"
        fixed = np.zeros(n_labels, dtype=bool)
        if behaviour == "same_set":
            if same_set is not None:
                fixed = np.asarray(same_set, dtype=bool).copy()
            else:
                fixed[rng.integers(n_labels)] = True
        raters.append(SetRater(behaviour, rng.uniform(*sensitivity, size=n_labels),
                               rng.uniform(*specificity, size=n_labels), fixed))
    return raters


def answer_matrix(raters: Sequence[SetRater], workers: np.ndarray, truths: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """[N, L] answers: row n is rater workers[n]'s set for an item whose reference is truths[n]."""
    workers = np.asarray(workers, dtype=np.int64)
    truths = np.asarray(truths, dtype=bool)
    sens = np.stack([r.sensitivity for r in raters])[workers]
    spec = np.stack([r.specificity for r in raters])[workers]
    draw = rng.random(truths.shape)
    chosen = np.where(truths, draw < sens, draw >= spec)
    behaviour = np.array([r.behaviour for r in raters])[workers]
    chosen[behaviour == "none"] = False
    chosen[behaviour == "all"] = True
    same = behaviour == "same_set"
    if same.any():
        chosen[same] = np.stack([r.fixed for r in raters])[workers[same]]
    return chosen


def assign(n_items: int, n_raters: int, per_item: int, rng: np.random.Generator,
           activity: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(items, workers) [N]: `per_item` distinct raters per item, drawn without replacement with
    probability proportional to `activity` [W] (None: equal), as a crowd where some raters do far
    more than others. Gumbel top-k: the k largest of log(weight) + Gumbel noise are a weighted
    draw without replacement, for every item at once."""
    if per_item > n_raters:
        raise ValueError("per_item exceeds the number of raters")
    weights = np.ones(n_raters) if activity is None else np.asarray(activity, dtype=float)
    keys = np.log(weights)[None, :] + rng.gumbel(size=(n_items, n_raters))
    workers = np.argpartition(-keys, per_item - 1, axis=1)[:, :per_item]
    return np.repeat(np.arange(n_items), per_item), workers.ravel()


def simulate(truth: np.ndarray, raters: Sequence[SetRater], per_item: int, rng: np.random.Generator,
             activity: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items, workers, chosen [N, L]): `per_item` answers per item of the reference sets `truth`
    [I, L] from the raters."""
    truth = np.asarray(truth, dtype=bool)
    items, workers = assign(truth.shape[0], len(raters), per_item, rng, activity)
    return items, workers, answer_matrix(raters, workers, truth[items], rng)
