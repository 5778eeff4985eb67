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
    # The issue asks 90% within 20 tasks with under 5% of honest workers blocked; measured here
    # 99% at 2.7% (300 longest-pickers): they miss nearly every gold item the longest gets wrong
    # (quality.follows_shortcut), which balanced gold serves them from the start.
    assert caught >= 0.9 and honest < 0.05, (caught, honest)
    assert all(o.gold_share_anti_shortcut == pytest.approx(0.5, abs=0.03) for o in outcomes[True])


def test_gold_drawn_as_the_pool_is_lets_them_through(outcomes):
    caught, _ = shares(outcomes[False])
    balanced_answers = sum(o.shortcut_answers_counted for o in outcomes[True])
    unbalanced_answers = sum(o.shortcut_answers_counted for o in outcomes[False])
    # A longest-picker answers 80% of pool-like gold right; the few items against the shortcut
    # still catch some of them, later (measured 31% and 43% within 20 tasks).
    assert caught < 0.6, "pool-like gold serves too few items against the shortcut to stop them early"
    assert unbalanced_answers > 10 * balanced_answers, "their answers then count on real items"
