"""Scale's case: longest-response pickers in a pool whose best response is usually the longest."""

from __future__ import annotations

import pytest

from labelstream.simulation.shortcut import make_pool, simulate


def test_the_pool_is_biased_as_scales_was():
    import random

    pool = make_pool(2000, 0.8, random.Random(0))
    longest_best = sum(len(item.responses[int(item.best) - 1]) == max(map(len, item.responses)) for item in pool)
    assert longest_best / len(pool) == pytest.approx(0.8, abs=0.03)


@pytest.fixture(scope="module")
def outcomes():
    """Seeds the policy was not chosen on (it was chosen on 1 and 3)."""
    return {balanced: [simulate(seed=seed, honest=300, shortcut=150, balanced=balanced) for seed in (0, 2)]
            for balanced in (True, False)}


def shares(runs) -> tuple[float, float]:
    caught = sum(o.shortcut_blocked_in_horizon for o in runs) / sum(o.shortcut_workers for o in runs)
    honest = sum(o.honest_blocked for o in runs) / sum(o.honest_workers for o in runs)
    return caught, honest


def test_balanced_gold_stops_shortcut_workers_early_and_spares_honest_ones(outcomes):
    caught, honest = shares(outcomes[True])
    # The issue asks 90% within 20 tasks with under 5% of honest workers blocked. Measured here
    # 88-91% (300 longest-pickers, standard error 1.7%) at 2-4% honest: with honest accuracies
    # down to 0.80 and 20 tasks, that is about the frontier of this policy family (sweeps in
    # simulation/shortcut.py); the note says so. Below 85% would be a regression.
    assert caught >= 0.85 and honest < 0.05, (caught, honest)
    assert all(o.gold_share_anti_shortcut == pytest.approx(0.5, abs=0.03) for o in outcomes[True])


def test_gold_drawn_as_the_pool_is_lets_them_through(outcomes):
    caught, _ = shares(outcomes[False])
    balanced_answers = sum(o.shortcut_answers_counted for o in outcomes[True])
    unbalanced_answers = sum(o.shortcut_answers_counted for o in outcomes[False])
    assert caught < 0.2, "a longest-picker answers 80% of pool-like gold right"
    assert unbalanced_answers > 5 * balanced_answers, "their answers then count on real items"
