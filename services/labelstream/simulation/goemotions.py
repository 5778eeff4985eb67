"""GoEmotions (Demszky et al., ACL 2020) as multi-label items: the dev split's 5,426 Reddit
comments, each with the set of its 28 labels (27 emotions and "neutral") that the GoEmotions
raters agreed on, and the same sets mapped to Ekman's 6 groups plus "neutral".

Only the agreed label sets ship (no per-rater rows), so the crowd on top of them is simulated
(labelstream.simulation.multilabel_raters); the sets are the reference the aggregation is scored
against.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

GOEMOTIONS_DIR = Path(__file__).resolve().parents[3] / "deploy" / "examples" / "multilabel" / "goemotions"
NEUTRAL = "neutral"


def _read_labels(path: Path) -> tuple[str, ...]:
    # the file has no final newline; splitlines copes either way
    return tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


ALL_LABELS: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
    "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief", "joy",
    "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness", "surprise", NEUTRAL)
EKMAN_LABELS: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "sadness", "surprise", NEUTRAL)


@dataclass(frozen=True)
class Item:
    item_id: str                 # the Reddit comment id
    text: str
    labels: frozenset[str]       # of ALL_LABELS; never empty (a comment without emotion is "neutral")


def load_ekman_mapping(directory: Path = GOEMOTIONS_DIR) -> dict[str, str]:
    """Emotion -> Ekman group for the 27 emotions, and "neutral" -> "neutral"."""
    groups = json.loads((directory / "ekman_mapping.json").read_text(encoding="utf-8"))
    mapping = {emotion: group for group, emotions in groups.items() for emotion in emotions}
    mapping[NEUTRAL] = NEUTRAL
    return mapping


def load_items(directory: Path = GOEMOTIONS_DIR) -> list[Item]:
    """The dev split in the file's order. Label ids index emotions.txt, which must name ALL_LABELS
    in that order (the constants are what callers code against)."""
    path = directory / "dev.tsv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: GoEmotions ships in deploy/examples/multilabel/goemotions")
    names = _read_labels(directory / "emotions.txt")
    if names != ALL_LABELS:
        raise ValueError(f"{directory / 'emotions.txt'} does not list the 28 GoEmotions labels in their order")
    items = []
    with path.open(encoding="utf-8", newline="") as handle:
        # Comments hold quotes that are not CSV quoting: read fields verbatim.
        for text, ids, item_id in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            items.append(Item(item_id, text, frozenset(names[int(i)] for i in ids.split(","))))
    return items


def to_ekman(labels: frozenset[str], mapping: dict[str, str]) -> frozenset[str]:
    """An item's Ekman set: the groups of its labels ("neutral" stays "neutral")."""
    return frozenset(mapping[label] for label in labels)


def label_sets(items: list[Item], ekman: bool = False, directory: Path = GOEMOTIONS_DIR) -> list[frozenset[str]]:
    """Each item's reference set, over ALL_LABELS or (ekman=True) over EKMAN_LABELS."""
    if not ekman:
        return [item.labels for item in items]
    mapping = load_ekman_mapping(directory)
    return [to_ekman(item.labels, mapping) for item in items]
