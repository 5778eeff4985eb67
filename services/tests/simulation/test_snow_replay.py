"""Snow RTE replay: real crowd workers answering as they did, plus 20% random workers."""

from __future__ import annotations

import pytest

from labelstream.simulation.snow import load_snow, replay

SEEDS = range(3)


@pytest.fixture(scope="module")
def runs():
    data = load_snow()
    return [(replay(data, seed=seed), replay(data, extra_fraction=0.2, seed=seed)) for seed in SEEDS]


def test_every_real_answer_is_replayed_once():
    data = load_snow()
    assert sum(len(a) for a in data.answers.values()) == 8000 and len(data.answers) == 164
    result = replay(data, seed=0)
    assert result.answers_used + result.gold_answers <= 8000


def test_random_workers_are_stopped_early_and_real_ones_rarely(runs):
    for _, with_extra in runs:
        figures = with_extra.as_dict()
        assert figures["extra_stopped_within_20_fraction"] >= 0.9, figures
        assert figures["real_blocked_fraction"] < 0.05, figures
        assert with_extra.extra_votes_counted == 0, "every random worker's answers were excluded"


def test_final_accuracy_holds_with_random_workers(runs):
    for without, with_extra in runs:
        assert abs(without.accuracy - with_extra.accuracy) <= 0.01
        assert with_extra.accuracy >= 0.92
