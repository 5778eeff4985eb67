"""Bradley-Terry, crowd-BT, best-of-N response rankings and the source leaderboard."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from labelstream.crowd.preference import (
    bradley_terry,
    crowd_bt,
    fit_choices,
    rank_responses,
    source_leaderboard,
)


def simulate(seed: int, n_items: int = 30, n_workers: int = 20, comparisons: int = 3000,
             reversed_fraction: float = 0.0) -> dict:
    """Comparisons of random pairs drawn from a Bradley-Terry model with known scores; the first
    `reversed_fraction` of the workers report every comparison reversed."""
    rng = np.random.default_rng(seed)
    true = rng.permutation(np.linspace(-2.0, 2.0, n_items))
    left = rng.integers(0, n_items, comparisons)
    right = (left + rng.integers(1, n_items, comparisons)) % n_items
    workers = rng.integers(0, n_workers, comparisons)
    left_wins = rng.random(comparisons) < 1.0 / (1.0 + np.exp(-(true[left] - true[right])))
    adversaries = np.arange(n_workers) < round(reversed_fraction * n_workers)
    reported = np.where(adversaries[workers], ~left_wins, left_wins).astype(float)
    return {"true": true, "left": left, "right": right, "workers": workers, "outcome": reported,
            "adversaries": adversaries, "n_items": n_items, "n_workers": n_workers}


def reference_mm(left: np.ndarray, right: np.ndarray, outcome: np.ndarray, n: int, steps: int = 20000) -> np.ndarray:
    """Hunter's (2004) MM for the unregularised maximum likelihood, written independently (dense
    win matrix), centred log-strengths."""
    wins = np.zeros((n, n))
    np.add.at(wins, (left, right), outcome)
    np.add.at(wins, (right, left), 1.0 - outcome)
    games = wins + wins.T
    p = np.ones(n)
    for _ in range(steps):
        p = wins.sum(axis=1) / (games / (p[:, None] + p[None, :])).sum(axis=1)
        p /= p.sum()
    scores = np.log(p)
    return scores - scores.mean()


def test_recovers_a_known_ranking():
    data = simulate(0)
    fit = bradley_terry(data["left"], data["right"], data["outcome"], data["n_items"])
    assert fit.converged and fit.iterations < 20
    assert kendalltau(fit.scores, data["true"]).statistic > 0.9
    assert fit.order()[0] == int(np.argmax(data["true"]))
    # the scale is the model's: score differences are log-odds, so the fitted spread matches the true one
    assert np.std(fit.scores) == pytest.approx(np.std(data["true"]), rel=0.15)


def test_agrees_with_plain_maximum_likelihood_when_the_prior_is_negligible():
    data = simulate(1, n_items=10, comparisons=2000)
    fit = bradley_terry(data["left"], data["right"], data["outcome"], 10, prior=1e-7)
    ours = fit.scores - fit.scores.mean()
    np.testing.assert_allclose(ours, reference_mm(data["left"], data["right"], data["outcome"], 10), atol=1e-5)


def test_ties_are_half_a_win_each_and_pull_scores_together():
    left, right = np.array([0, 0, 0, 0]), np.array([1, 1, 1, 1])
    decisive = bradley_terry(left, right, np.array([1.0, 1.0, 1.0, 0.0]), 2)
    with_ties = bradley_terry(np.r_[left, 0, 0], np.r_[right, 1, 1], np.array([1.0, 1.0, 1.0, 0.0, 0.5, 0.5]), 2)
    assert decisive.scores[0] > decisive.scores[1]
    assert 0 < with_ties.scores[0] - with_ties.scores[1] < decisive.scores[0] - decisive.scores[1]
    # a tie is exactly half a win each way: two ties weigh like one win plus one loss
    split = bradley_terry(np.r_[left, 0, 0], np.r_[right, 1, 1], np.array([1.0, 1.0, 1.0, 0.0, 1.0, 0.0]), 2)
    np.testing.assert_allclose(with_ties.scores, split.scores, atol=1e-9)
    only_ties = bradley_terry(np.array([0, 0]), np.array([1, 1]), np.array([0.5, 0.5]), 2)
    np.testing.assert_allclose(only_ties.scores, 0.0, atol=1e-9)


def test_unbeaten_and_disconnected_items_stay_finite_on_one_scale():
    # {0 > 1} three times, {2 > 3} three times (never compared with the first pair), 4 never compared
    left, right = np.array([0, 0, 0, 2, 2, 2]), np.array([1, 1, 1, 3, 3, 3])
    fit = bradley_terry(left, right, np.ones(6), 5)
    assert fit.converged and np.isfinite(fit.scores).all()
    assert fit.scores[0] > 0 > fit.scores[1]
    # identical evidence in separate components gives identical scores: both are anchored to 0
    assert fit.scores[0] == pytest.approx(fit.scores[2]) and fit.scores[1] == pytest.approx(fit.scores[3])
    assert fit.scores[4] == pytest.approx(0.0, abs=1e-9)
    # a weaker prior lets the unbeaten item run further, but never to infinity
    weaker = bradley_terry(left, right, np.ones(6), 5, prior=0.01)
    assert fit.scores[0] < weaker.scores[0] < 20


def test_crowd_bt_finds_and_uses_reversed_workers():
    for seed in range(3):
        data = simulate(seed, reversed_fraction=0.3)
        args = (data["left"], data["right"], data["outcome"])
        plain = bradley_terry(*args, data["n_items"])
        crowd = crowd_bt(*args, data["workers"], data["n_items"], data["n_workers"])
        tau_plain = kendalltau(plain.scores, data["true"]).statistic
        tau_crowd = kendalltau(crowd.scores, data["true"]).statistic
        assert crowd.converged
        assert tau_crowd > tau_plain + 0.05, (seed, tau_plain, tau_crowd)
        assert tau_crowd > 0.88
        assert (crowd.reliability[data["adversaries"]] < 0.3).all()
        assert (crowd.reliability[~data["adversaries"]] > 0.8).all()
        # the adversaries' comparisons are judged to report the reverse of the true order
        assert crowd.agreement[data["adversaries"][data["workers"]]].mean() < 0.3


def test_crowd_bt_matches_plain_bt_order_when_everyone_is_honest():
    data = simulate(4)
    args = (data["left"], data["right"], data["outcome"])
    plain = bradley_terry(*args, data["n_items"])
    crowd = crowd_bt(*args, data["workers"], data["n_items"], data["n_workers"])
    assert kendalltau(plain.scores, crowd.scores).statistic > 0.95
    assert (crowd.reliability > 0.8).all()


def test_crowd_bt_leaves_reliability_alone_on_ties():
    left, right, workers = np.array([0, 0, 1]), np.array([1, 1, 2]), np.array([0, 1, 1])
    fit = crowd_bt(left, right, np.array([1.0, 0.5, 0.5]), workers, 3, 2)
    assert fit.reliability[1] == pytest.approx(0.8)   # only ties: the prior mean
    np.testing.assert_allclose(fit.agreement[1:], 0.5)


def test_rank_responses_from_best_of_n_choices():
    ranking = rank_responses(4, ["2", "2", "3", "tie"])
    assert ranking.order[:2] == [1, 2]
    np.testing.assert_allclose(ranking.wins, [0.25, 2.25, 1.25, 0.25])
    # never chosen: equal scores, canonical order
    assert ranking.scores[0] == pytest.approx(ranking.scores[3]) and ranking.order[2:] == [0, 3]
    # weights (e.g. worker accuracy) decide between disagreeing judges
    assert rank_responses(3, ["1", "3"], choice_weights=[0.9, 0.3]).order[0] == 0
    assert rank_responses(3, ["1", "3"], choice_weights=[0.3, 0.9]).order[0] == 2
    # pairwise comparisons between responses order the ones that were never chosen
    assert rank_responses(4, ["2"], comparisons=[(3, 0, 1.0)] * 2).order == [1, 3, 2, 0]
    assert rank_responses(3).order == [0, 1, 2]
    for wrong in ("3", "0", "best"):
        with pytest.raises(ValueError):
            rank_responses(2, [wrong])


def test_best_of_n_choices_recover_luce_strengths():
    rng = np.random.default_rng(5)
    true = np.array([1.0, 0.5, 0.0, -1.0])
    probs = np.exp(true) / np.exp(true).sum()
    choices = [str(k + 1) for k in rng.choice(4, size=4000, p=probs)]
    ranking = rank_responses(4, choices)
    assert ranking.order == [0, 1, 2, 3]
    np.testing.assert_allclose(ranking.scores - ranking.scores.mean(), true - true.mean(), atol=0.08)


def test_source_leaderboard_is_transitive_through_shared_prompts():
    items = [(["a", "b"], "1")] * 6 + [(["b", "a"], "2")] * 2 + [(["b", "a"], "1")] * 2 \
        + [(["b", "c"], "1")] * 6 + [(["c", "b"], "tie")] * 2
    board = source_leaderboard(items)
    assert [s.source for s in board] == ["a", "b", "c"]   # a and c never met
    a, b, c = board
    assert (a.items, b.items, c.items) == (10, 18, 8)
    assert a.wins == pytest.approx(8.0) and c.wins == pytest.approx(1.0)
    assert a.win_probability > 0.5 > c.win_probability


def test_source_leaderboard_recovers_model_strengths_from_best_of_four_items():
    rng = np.random.default_rng(6)
    models = {"big": 1.5, "medium": 0.7, "small": 0.0, "tiny": -0.8, "broken": -2.0}
    names = list(models)
    items = []
    for _ in range(600):
        sources = list(rng.choice(names, size=4, replace=True))
        strength = np.exp([models[s] for s in sources])
        items.append((sources, str(int(rng.choice(4, p=strength / strength.sum())) + 1)))
    board = source_leaderboard(items)
    assert [s.source for s in board] == names
    scores = {s.source: s.score for s in board}
    spread = scores["big"] - scores["broken"]
    assert spread == pytest.approx(3.5, rel=0.2)


def test_source_leaderboard_skips_items_with_one_source_and_checks_labels():
    board = source_leaderboard([(["a", "a"], "1"), (["a", "b"], "2")])
    assert [s.source for s in board] == ["b", "a"]
    assert board[1].items == 2 and board[1].wins == 0.0
    with pytest.raises(ValueError):
        source_leaderboard([(["a", "b"], "3")])
    with pytest.raises(ValueError):
        source_leaderboard([(["a", "b"], "best")])


def test_fit_choices_validates_its_input():
    with pytest.raises(ValueError):
        fit_choices(np.array([[0, 1]]), np.array([[0.7, 0.7]]), 2)          # shares must sum to 1
    with pytest.raises(ValueError):
        fit_choices(np.array([[0, 2]]), np.array([[1.0, 0.0]]), 2)          # index out of range
    with pytest.raises(ValueError):
        fit_choices(np.array([[0, 1]]), np.array([[1.0, 0.0]]), 2, prior=0.0)
    empty = fit_choices(np.zeros((0, 2), dtype=int), np.zeros((0, 2)), 3)
    np.testing.assert_allclose(empty.scores, 0.0, atol=1e-12)
