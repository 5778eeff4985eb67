"""Oracle auto fraction, same-guarantee limit, efficiency and payoff (routing/evaluation.py, issue
14's definitions) on small cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelstream.routing.evaluation import (
    by_confidence,
    oracle_fraction,
    ratio,
    runs_meeting_target,
    runs_needed,
    same_guarantee_limit,
    single_test_reference,
)


def bits(text: str) -> np.ndarray:
    return np.array([c == "1" for c in text])


def test_oracle_is_the_largest_prefix_reaching_the_target_not_the_first_failure():
    # prefix accuracies: 1, 1, 2/3, 3/4, 4/5, 5/6, 6/7, 7/8, 8/9, 8/10
    correct = bits("1101111110")
    assert oracle_fraction(correct, 0.85) == pytest.approx(0.9)  # 8/9 = 0.889; 8/10 fails
    assert oracle_fraction(correct, 0.80) == pytest.approx(1.0)  # 8/10 = 0.80 exactly counts
    assert oracle_fraction(correct, 1.00) == pytest.approx(0.2)


def test_oracle_is_zero_when_the_most_confident_item_is_wrong_and_all_when_all_are_right():
    assert oracle_fraction(bits("0111"), 0.9) == 0.0
    assert oracle_fraction(bits("1111"), 0.99) == 1.0
    assert oracle_fraction(bits(""), 0.9) == 0.0


def test_by_confidence_orders_correctness_by_descending_score():
    assert by_confidence(np.array([0.2, 0.9, 0.5]), bits("001")).tolist() == [False, True, False]


def test_limit_is_the_largest_fraction_met_by_enough_runs():
    runs = [bits("1111101111"),
            bits("1111111100"),
            bits("1011111111")]
    # counts whose prefix is >= 0.9 accurate: run 1 at 1-5 and 10 (6-9 fail: 5/6 ... 8/9 = .889),
    # run 2 at 1-8 (8/9, 8/10 fail), run 3 at 1 and 10 (1/2 ... 8/9 fail, 9/10 = 0.9)
    assert same_guarantee_limit(runs, 0.9, need=3) == pytest.approx(0.1)   # only count 1 is met by all
    assert same_guarantee_limit(runs, 0.9, need=2) == pytest.approx(1.0)   # count 10: runs 1 and 3
    assert same_guarantee_limit(runs, 0.9, need=1) == pytest.approx(1.0)


def test_limit_is_zero_when_no_fraction_meets_the_target_in_enough_runs():
    assert same_guarantee_limit([bits("0111"), bits("0111")], 0.9, need=1) == 0.0


def test_limit_needs_runs_of_one_size():
    with pytest.raises(ValueError):
        same_guarantee_limit([bits("11"), bits("111")], 0.9, need=1)


def test_limit_is_at_most_the_oracle_of_the_needed_run():
    rng = np.random.default_rng(0)
    runs = [rng.random(200) < np.linspace(1.0, 0.6, 200) for _ in range(20)]
    limit = same_guarantee_limit(runs, 0.9, need=19)
    oracles = sorted(oracle_fraction(r, 0.9) for r in runs)
    # applied to every run, f meets the target in run r only if f <= r's oracle (its largest
    # passing prefix); so at least 19 of the 20 oracles are >= f
    assert limit <= oracles[1] + 1e-12
    assert limit > 0


def test_runs_needed_is_19_of_20_at_95_percent():
    assert runs_needed(20, 0.95) == 19
    assert runs_needed(10, 0.95) == 10
    assert runs_needed(100, 0.9) == 90


def test_efficiency_and_payoff_are_ratios_and_undefined_against_zero():
    assert ratio(0.2, 0.25) == pytest.approx(0.8)
    assert ratio(0.0, 0.0) is None


def test_a_run_accepting_nothing_meets_the_target():
    assert runs_meeting_target([0.95, 0.949, math.nan, 0.99], 0.95) == 3


def test_limit_on_a_grid_takes_only_the_grid_s_fractions():
    runs = [bits("1111111100")] * 20  # every count to 8 passes 0.9; 8/9 and 8/10 fail
    assert same_guarantee_limit(runs, 0.9, need=19) == pytest.approx(0.8)
    # the grid's counts: 2 (round(2.5)), 5, 8 (round(7.5)), 10
    assert same_guarantee_limit(runs, 0.9, need=19, fractions=np.array([0.25, 0.5, 0.75, 1.0])) == 0.75


def test_single_test_reference_is_zero_below_the_fewest_items_that_can_pass():
    # 59 items all right are the fewest that reject "accuracy < 0.95" at 5%; with 50 verified
    # items no fraction can pass, however accurate the held-out items are
    perfect = [np.ones(1000, dtype=bool)] * 3
    assert single_test_reference(perfect, 50, 0.95, 0.95) == 0.0
    # with 1,000 verified items and every item right, testing everything passes for sure
    assert single_test_reference(perfect, 1000, 0.95, 0.95) == pytest.approx(1.0)


def test_single_test_reference_stays_below_the_oracle_share_that_is_at_target():
    # the top half is 0.99 accurate, the rest 0.5: testing much beyond half fails
    half = np.concatenate([np.arange(500) % 100 != 0, np.arange(500) % 2 == 0])
    reference = single_test_reference([half] * 5, 5000, 0.95, 0.95)
    assert 0.45 < reference < oracle_fraction(half, 0.95) + 1e-9
