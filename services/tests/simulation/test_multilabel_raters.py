"""GoEmotions as multi-label items, and the simulated multi-label raters."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from labelstream.crowd import multilabel as ml
from labelstream.simulation import goemotions
from labelstream.simulation import multilabel_raters as mr


@pytest.fixture(scope="module")
def items() -> list[goemotions.Item]:
    return goemotions.load_items()


def test_goemotions_dev_counts(items):
    assert len(items) == 5426 and len({i.item_id for i in items}) == 5426
    multi = sum(len(i.labels) >= 2 for i in items)
    assert multi == 878 and 0.15 < multi / len(items) < 0.17
    counts = Counter(label for i in items for label in i.labels)
    assert counts["neutral"] == 1766 and counts["admiration"] == 488 and counts["grief"] == 13
    assert set(counts) == set(goemotions.ALL_LABELS) and len(goemotions.ALL_LABELS) == 28


def test_ekman_sets(items):
    mapping = goemotions.load_ekman_mapping()
    assert set(mapping) == set(goemotions.ALL_LABELS) and set(mapping.values()) == set(goemotions.EKMAN_LABELS)
    assert goemotions.to_ekman(frozenset({"joy", "amusement", "anger"}), mapping) == {"joy", "anger"}
    assert goemotions.to_ekman(frozenset({"neutral"}), mapping) == {"neutral"}
    sets = goemotions.label_sets(items, ekman=True)
    assert len(goemotions.EKMAN_LABELS) == 7 and all(s and s <= set(goemotions.EKMAN_LABELS) for s in sets)
    # neutral stays neutral (174 comments carry it next to an emotion, as upstream has them)
    assert sum("neutral" in s for s in sets) == 1766
    assert sum(s == {"neutral"} for s in sets) == sum(i.labels == {"neutral"} for i in items) == 1592


def test_honest_raters_answer_at_their_sensitivity_and_specificity():
    rng = np.random.default_rng(0)
    truth = rng.random((20000, 3)) < 0.3
    rater = mr.SetRater("honest", np.array([0.9, 0.7, 0.8]), np.array([0.99, 0.95, 0.97]), np.zeros(3, bool))
    chosen = mr.answer_matrix([rater], np.zeros(len(truth), dtype=np.int64), truth, rng)
    assert (chosen & truth).sum(0) / truth.sum(0) == pytest.approx([0.9, 0.7, 0.8], abs=0.02)
    assert (~chosen & ~truth).sum(0) / (~truth).sum(0) == pytest.approx([0.99, 0.95, 0.97], abs=0.01)


def test_shortcut_raters_ignore_the_item():
    rng = np.random.default_rng(1)
    truth = rng.random((50, 4)) < 0.5
    same = np.array([False, True, True, False])
    raters = mr.draw_raters(3, 4, rng, shortcuts=("none", "all", "same_set"), same_set=same)
    assert [r.behaviour for r in raters] == ["none", "all", "same_set"]
    for w, expected in enumerate((np.zeros(4, bool), np.ones(4, bool), same)):
        chosen = mr.answer_matrix(raters, np.full(50, w), truth, rng)
        assert (chosen == expected).all()
    assert raters[2].answer(truth[0], rng).tolist() == same.tolist()


def test_simulate_gives_distinct_raters_per_item_and_follows_activity():
    rng = np.random.default_rng(2)
    truth = rng.random((2000, 5)) < 0.2
    raters = mr.draw_raters(30, 5, rng)
    activity = 1.0 / np.arange(1, 31)
    items, workers, chosen = mr.simulate(truth, raters, 5, rng, activity)
    assert chosen.shape == (10000, 5) and np.bincount(items).tolist() == [5] * 2000
    assert all(len(set(workers[items == i])) == 5 for i in range(0, 2000, 97))
    per_worker = np.bincount(workers, minlength=30)
    assert per_worker[0] > 3 * per_worker[-1]
    assert ml.encode_sets(ml.decode_sets(chosen[:3], "vwxyz"), "vwxyz").tolist() == chosen[:3].tolist()
