"""Preference aggregation: strengths from comparisons, workers' reliabilities, response rankings
and a leaderboard of the sources that wrote the responses. Plain numpy, no I/O.

Per-item decisions of a preference task need nothing here: a choice ("1".."N", "tie") is a label
like any other, and Dawid-Skene / the vote rules decide it (labelstream.crowd.decide). This
module answers the questions that span items: which response, argument or model is better
overall, and which workers' comparisons can be trusted.

The model is Luce's choice axiom (Bradley-Terry for two options): each option i has a strength
p_i = exp(score_i) and, offered a set S, a judge picks i with probability p_i / sum_{j in S} p_j.
It is fitted by maximising the log-posterior with Newton's method (see `_newton` for why not the
MM algorithm of Hunter 2004, "MM algorithms for generalized Bradley-Terry models", which
maximises the same likelihood).

Ties count as an equal share of one win for every option of the set (half a win each in a pair)
rather than through Davidson's (1970) tie parameter: the likelihood stays Luce's with fractional
win counts, there is no extra parameter to estimate from the few ties a project has, and a tie
pulls the two strengths together, which is what "equally good" says. Davidson's model changes
how likely ties are predicted to be, not the order of the strengths, and the order is what the
callers use.

Prior: every option also plays `prior` virtual wins and `prior` virtual losses against a fixed
reference of score 0 (a Beta-like prior on its win probability against an average option).
Without it an option that never lost has an infinite maximum-likelihood strength, an option
never compared has none, and separate groups of options (e.g. debates, or prompts that share no
response) have scores on unrelated scales; with it all scores are finite, an uncompared option
sits at 0, and every group is anchored to the same reference. Half a game each way is small next
to the dozens of comparisons a ranked option usually has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

from labelstream.common.projects import TIE, response_index

PRIOR_GAMES = 0.5            # virtual wins and losses of every option against the score-0 reference
RELIABILITY_PRIOR = (4.0, 1.0)  # crowd-BT: pseudo-counts of (agreeing, disagreeing) comparisons per worker


@dataclass(frozen=True)
class StrengthFit:
    """Fitted log-strengths. score_i - score_j is the log-odds that i beats j."""
    scores: np.ndarray   # [n]; 0 is the prior's reference, where uncompared options sit
    iterations: int
    converged: bool

    def order(self) -> np.ndarray:
        """Option indices, best first; equal scores keep index order."""
        return np.argsort(-self.scores, kind="stable")

    def win_probability(self, i: int, j: int) -> float:
        """P(i beats j) under the model."""
        return float(_sigmoid(self.scores[i] - self.scores[j]))


def fit_choices(choice_sets: np.ndarray, shares: np.ndarray, n_items: int, *, weights: np.ndarray | None = None,
                prior: float = PRIOR_GAMES, max_iter: int = 100, tol: float = 1e-9,
                init: np.ndarray | None = None) -> StrengthFit:
    """Luce log-strengths of `n_items` options from choices among sets of them (maximum a posteriori).

    choice_sets: [M, S] option indices, one row per observation (a judge's choice among the
    options shown), padded with -1 when sets differ in size; an option may appear twice in a set
    (two responses by one source). shares: [M, S] the part of the observation's one win each slot
    gets: one-hot for a choice, 1/|set| each for a tie; rows sum to 1. weights: [M] per-observation
    weights (e.g. a judge's reliability), default 1. init: starting scores (a warm start).
    Stops when no score moves by more than `tol`, or after `max_iter` Newton steps.
    """
    sets = np.asarray(choice_sets, dtype=np.int64)
    shares = np.asarray(shares, dtype=float)
    if sets.ndim != 2 or sets.shape != shares.shape:
        raise ValueError(f"choice_sets {sets.shape} and shares {shares.shape} must be [M, S] arrays of one shape")
    if prior <= 0:
        raise ValueError("prior must be > 0: without it unbeaten or uncompared options have no finite strength")
    if sets.size and (sets.max() >= n_items or (sets < -1).any()):
        raise ValueError(f"option indices must be in [0, {n_items}) or -1 (padding)")
    valid = sets >= 0
    if sets.size and not np.allclose(np.where(valid, shares, 0.0).sum(axis=1), 1.0):
        raise ValueError("each observation's shares must sum to 1 over its options")
    w = np.ones(sets.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (sets.shape[0],) or (w < 0).any():
        raise ValueError("weights must be [M] and non-negative")
    return _newton(_Choices(sets, valid, w, np.where(valid, shares, 0.0), n_items), prior, max_iter, tol, init)


class _Choices:
    """The observations flattened once per fit, so each Newton step is a few bincounts."""

    def __init__(self, sets: np.ndarray, valid: np.ndarray, weights: np.ndarray, shares: np.ndarray,
                 n_items: int) -> None:
        self.n_items = n_items
        self.valid, self.weights = valid, weights
        self.safe = np.where(valid, sets, 0)
        self.members = sets[valid]
        self.set_wins(shares)
        width = sets.shape[1]
        a, b = (x.ravel() for x in np.meshgrid(np.arange(width), np.arange(width), indexing="ij"))
        self.slot_a, self.slot_b = a, b
        self.pair_valid = valid[:, a] & valid[:, b]                       # [M, S*S]
        self.pair_rows = sets[:, a][self.pair_valid], sets[:, b][self.pair_valid]

    def set_wins(self, shares: np.ndarray) -> None:
        """Each option's weighted wins for new shares (crowd-BT changes them every round)."""
        self.wins = np.bincount(self.members, weights=(self.weights[:, None] * shares)[self.valid],
                                minlength=self.n_items)

    def set_logits(self, scores: np.ndarray) -> np.ndarray:
        return np.where(self.valid, scores[self.safe], -np.inf)

    def log_posterior(self, scores: np.ndarray, prior: float) -> float:
        logits = self.set_logits(scores)
        top = logits.max(axis=1, keepdims=True) if logits.size else np.zeros((0, 1))
        log_sets = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        # prior: `prior` virtual wins (score - log(e^score + 1)) and losses (-log(e^score + 1)) against score 0
        return float(self.wins @ scores - self.weights @ log_sets
                     + prior * (scores - 2.0 * np.logaddexp(0.0, scores)).sum())


def _newton(data: _Choices, prior: float, max_iter: int, tol: float, init: np.ndarray | None) -> StrengthFit:
    """Damped Newton ascent of the log-posterior. It is concave, and strictly so thanks to the
    prior, so the maximum is unique and Newton reaches it in a handful of steps; Hunter's MM
    (the textbook algorithm) needs thousands on the same data (a 30-option, 3,000-comparison
    simulation: 6,287 MM steps, 2 s). The Hessian is a sparse weighted graph Laplacian plus the
    prior's diagonal, solved sparsely, so large sparse comparison graphs stay cheap."""
    n = data.n_items
    scores = np.zeros(n) if init is None else np.asarray(init, dtype=float).copy()
    current = data.log_posterior(scores, prior)
    converged = False
    iterations = 0
    while iterations < max_iter and not converged:
        iterations += 1
        logits = data.set_logits(scores)
        if logits.size:
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
        else:
            probs = np.zeros(logits.shape)
        expected = np.bincount(data.members, weights=(data.weights[:, None] * probs)[data.valid], minlength=n)
        fitted = _sigmoid(scores)
        gradient = data.wins - expected + prior * (1.0 - 2.0 * fitted)
        # minus the Hessian: sum over observations of w (diag(pi) - pi pi^T), plus the prior's curvature
        outer = (data.weights[:, None] * probs[:, data.slot_a] * probs[:, data.slot_b])[data.pair_valid]
        curvature = sparse.csr_matrix((-outer, data.pair_rows), shape=(n, n)) + sparse.diags(
            expected + 2.0 * prior * fitted * (1.0 - fitted))
        step = np.atleast_1d(spsolve(curvature.tocsc(), gradient))
        size = 1.0
        while True:   # backtrack until the posterior does not drop (rounding aside)
            trial = scores + size * step
            value = data.log_posterior(trial, prior)
            if value >= current - 1e-12 * abs(current) or size < 1e-6:
                break
            size /= 2
        converged = bool(np.abs(trial - scores).max(initial=0.0) <= tol)
        scores, current = trial, value
    return StrengthFit(scores, iterations, converged)


def bradley_terry(left: np.ndarray, right: np.ndarray, outcome: np.ndarray, n_items: int, *,
                  weights: np.ndarray | None = None, prior: float = PRIOR_GAMES, max_iter: int = 100,
                  tol: float = 1e-9, init: np.ndarray | None = None) -> StrengthFit:
    """Bradley-Terry scores from pairwise comparisons: `outcome` is left's share of the win (1 left
    won, 0 right won, 0.5 a tie: half a win each). See fit_choices for the rest."""
    left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
    outcome = np.asarray(outcome, dtype=float)
    if not left.shape == right.shape == outcome.shape:
        raise ValueError("left, right and outcome must have the same length")
    if ((outcome < 0) | (outcome > 1)).any():
        raise ValueError("outcome must be in [0, 1]")
    return fit_choices(np.stack([left, right], axis=1).reshape(-1, 2),
                       np.stack([outcome, 1.0 - outcome], axis=1).reshape(-1, 2), n_items,
                       weights=weights, prior=prior, max_iter=max_iter, tol=tol, init=init)


# ---------------------------------------------------------------------------------------------
# Crowd-BT


@dataclass(frozen=True)
class CrowdBTFit:
    scores: np.ndarray        # [n_items] log-strengths, as StrengthFit.scores
    reliability: np.ndarray   # [n_workers] eta: P(the worker's comparison agrees with the true order)
    agreement: np.ndarray     # [M] P(this comparison reports the true order | everything); 0.5 for ties
    iterations: int
    converged: bool
    log_likelihood: float     # of the comparisons that are not ties, at the returned parameters

    def order(self) -> np.ndarray:
        return np.argsort(-self.scores, kind="stable")


def crowd_bt(left: np.ndarray, right: np.ndarray, outcome: np.ndarray, workers: np.ndarray, n_items: int,
             n_workers: int, *, prior: float = PRIOR_GAMES, reliability_prior: tuple[float, float] = RELIABILITY_PRIOR,
             max_iter: int = 200, tol: float = 1e-6) -> CrowdBTFit:
    """Crowd-BT (Chen, Bennett, Collins-Thompson, Horvitz, WSDM 2013): Bradley-Terry where worker k
    reports the true order of a pair with probability eta_k and the reverse otherwise,
        P(k says i beats j) = eta_k * sigma(s_i - s_j) + (1 - eta_k) * sigma(s_j - s_i),
    fitted jointly by EM (the paper updates online; a batch re-fit suits a background job): the
    E-step gives each comparison the posterior that it reports the true order, the M-step sets
    eta_k to that posterior's mean over k's comparisons (with `reliability_prior`) and re-fits the
    scores with each comparison as fractional wins. A careless worker gets eta near 0.5 and weighs
    nothing; an adversarial one (who answers reversed) gets eta near 0 and their answers count,
    reversed. Plain Bradley-Terry counts both at face value.

    outcome: 1 left won, 0 right won, 0.5 a tie. Ties carry no evidence of which order a worker
    perceives, so they leave eta alone and enter the scores as half a win each.
    reliability_prior: (agreeing, disagreeing) pseudo-counts added to each worker's. Above chance
    on purpose: the model is symmetric under reversing every score and every eta, and the prior
    picks the solution where workers are mostly right; a worker with a handful of comparisons stays
    near the prior mean (0.8) rather than swinging to 0 or 1.
    """
    left, right, workers = (np.asarray(a, dtype=np.int64) for a in (left, right, workers))
    outcome = np.asarray(outcome, dtype=float)
    if not left.shape == right.shape == outcome.shape == workers.shape:
        raise ValueError("left, right, outcome and workers must have the same length")
    if not np.isin(outcome, (0.0, 0.5, 1.0)).all():
        raise ValueError("crowd_bt takes outcomes 1 (left won), 0 (right won) or 0.5 (tie)")
    if workers.size and (workers.min() < 0 or workers.max() >= n_workers):
        raise ValueError(f"workers must be in [0, {n_workers})")
    agree_prior, disagree_prior = reliability_prior
    decisive = outcome != 0.5
    winner = np.where(outcome == 1.0, left, right)
    loser = np.where(outcome == 1.0, right, left)
    counted = np.bincount(workers[decisive], minlength=n_workers)

    scores = bradley_terry(left, right, outcome, n_items, prior=prior).scores
    sets = np.stack([left, right], axis=1).reshape(-1, 2)
    pairs = _Choices(sets, sets >= 0, np.ones(len(outcome)), np.stack([outcome, 1.0 - outcome], axis=1).reshape(-1, 2),
                     n_items)
    eta = np.full(n_workers, agree_prior / (agree_prior + disagree_prior))
    gamma = np.full(len(outcome), 0.5)
    converged = False
    iterations = 0
    while iterations < max_iter and not converged:
        iterations += 1
        gamma = _agreement(scores, eta, workers, winner, loser, decisive)
        new_eta = (np.bincount(workers[decisive], weights=gamma[decisive], minlength=n_workers) + agree_prior) / (
            counted + agree_prior + disagree_prior)
        # The winner of an agreeing comparison won; of a reversed one, lost.
        share_left = np.where(decisive, np.where(outcome == 1.0, gamma, 1.0 - gamma), 0.5)
        pairs.set_wins(np.stack([share_left, 1.0 - share_left], axis=1))
        # One Newton step per EM round (a generalised EM: the step never lowers the objective, see
        # _newton): the scores need not be exact while gamma and eta still move. It reaches the same
        # fixed point (UKPConvArg1: within 1e-7 of full inner fits) in half the time.
        new_scores = _newton(pairs, prior, 1, 0.0, scores).scores
        change = max(np.abs(new_scores - scores).max(initial=0.0), np.abs(new_eta - eta).max(initial=0.0))
        scores, eta = new_scores, new_eta
        converged = bool(change <= tol)
    gamma = _agreement(scores, eta, workers, winner, loser, decisive)
    p_win = _sigmoid(scores[winner] - scores[loser])
    reported = eta[workers] * p_win + (1.0 - eta[workers]) * (1.0 - p_win)
    return CrowdBTFit(scores, eta, gamma, iterations, converged, float(np.log(reported[decisive]).sum()))


def _agreement(scores: np.ndarray, eta: np.ndarray, workers: np.ndarray, winner: np.ndarray, loser: np.ndarray,
               decisive: np.ndarray) -> np.ndarray:
    """E-step: P(the comparison reports the true order | scores, eta), 0.5 for ties."""
    p_win = _sigmoid(scores[winner] - scores[loser])
    trusted = eta[workers] * p_win
    gamma = trusted / (trusted + (1.0 - eta[workers]) * (1.0 - p_win))
    return np.where(decisive, gamma, 0.5)


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))   # overflow-free logistic


# ---------------------------------------------------------------------------------------------
# Responses of one item, and the sources behind them


def _choice_index(label: str, n_responses: int) -> int | None:
    """The 0-based response a choice label names, None for a tie; anything else is an error."""
    if label != TIE and not (label.isdigit() and 1 <= int(label) <= n_responses):
        raise ValueError(f"choice {label!r} names no response of {n_responses} ('1'..'{n_responses}' or {TIE!r})")
    return response_index(label)


@dataclass(frozen=True)
class ResponseRanking:
    order: list[int]       # canonical 0-based response indices, best first (equal scores: canonical order)
    scores: np.ndarray     # [N] log-strengths
    wins: np.ndarray       # [N] weighted wins (a tie shares one win among all responses)


def rank_responses(n_responses: int, choices: Sequence[str] = (), *, choice_weights: Sequence[float] | None = None,
                   comparisons: Sequence[tuple[int, int, float]] = (), prior: float = PRIOR_GAMES) -> ResponseRanking:
    """Rank the N responses of one best-of-N item from its judges' choices and/or pairwise comparisons.

    A best-of-N choice says the chosen response beat all the others at once, which is Luce's
    choice model over the whole set (for N = 2, Bradley-Terry); a "tie" gives every response an
    equal share of the win. `choices` are the contract's labels ("1".."N", "tie"), weighted by
    `choice_weights` (e.g. each worker's accuracy); `comparisons` are (response i, response j,
    i's share of the win) between two responses, for projects that also ask pairwise questions.
    Only the top is ever chosen, so responses that never won tie at the prior's score and keep
    their canonical order: the ranking below the winners says "not chosen", no more.
    """
    if n_responses < 1:
        raise ValueError("n_responses must be >= 1")
    sets, shares = [], []
    everyone = list(range(n_responses))
    for label in choices:
        index = _choice_index(label, n_responses)
        share = np.full(n_responses, 1.0 / n_responses) if index is None else np.eye(n_responses)[index]
        sets.append(everyone)
        shares.append(share)
    weights = list(choice_weights) if choice_weights is not None else [1.0] * len(sets)
    if len(weights) != len(sets):
        raise ValueError("choice_weights must have one weight per choice")
    for i, j, share in comparisons:
        sets.append([i, j] + [-1] * (n_responses - 2))
        shares.append(np.array([share, 1.0 - share] + [0.0] * (n_responses - 2)))
        weights.append(1.0)
    if not sets:
        return ResponseRanking(everyone, np.zeros(n_responses), np.zeros(n_responses))
    set_array, share_array, weight_array = np.array(sets), np.array(shares), np.array(weights, dtype=float)
    fit = fit_choices(set_array, share_array, n_responses, weights=weight_array, prior=prior)
    valid = set_array >= 0
    wins = np.bincount(set_array[valid], weights=(weight_array[:, None] * share_array)[valid], minlength=n_responses)
    return ResponseRanking([int(i) for i in fit.order()], fit.scores, wins)


@dataclass(frozen=True)
class SourceStanding:
    source: str
    score: float          # log-strength; score_a - score_b is the log-odds that a's response beats b's
    wins: float           # items won (a tie shares one win among the item's responses)
    items: int            # items where it wrote one of the responses
    win_probability: float  # P(beating a reference source of score 0, i.e. an average opponent)


def source_leaderboard(items: Sequence[tuple[Sequence[str], str]], *, weights: Sequence[float] | None = None,
                       prior: float = PRIOR_GAMES) -> list[SourceStanding]:
    """Rank the sources that wrote responses (e.g. model names) from items' final choices.

    items: (source of each response in canonical order, the item's final label "1".."N" or
    "tie"). Each item is one Luce choice among its sources: the winner's source beat the others
    on that prompt, so sources are compared through shared prompts even when no two sources
    ever met directly (e.g. A vs B and B vs C rank A against C). This uses each item's decided
    label, not the raw votes, so a noisy worker is already outvoted; weights (e.g. the label's
    posterior) soften uncertain items. An item whose responses all come from one source says
    nothing about sources and is skipped. Returns the standings, best first (ties by name).
    """
    weights = list(weights) if weights is not None else [1.0] * len(items)
    if len(weights) != len(items):
        raise ValueError("weights must have one weight per item")
    names = sorted({source for sources, _ in items for source in sources})
    index = {name: i for i, name in enumerate(names)}
    width = max((len(sources) for sources, _ in items), default=2)
    sets, shares, kept = [], [], []
    appeared = np.zeros(len(names), dtype=np.int64)
    for (sources, label), weight in zip(items, weights, strict=True):
        choice = _choice_index(label, len(sources))
        members = [index[s] for s in sources]
        appeared[sorted(set(members))] += 1
        if len(set(members)) < 2:
            continue
        share = np.full(len(members), 1.0 / len(members)) if choice is None else np.eye(len(members))[choice]
        sets.append(members + [-1] * (width - len(members)))
        shares.append(np.concatenate([share, np.zeros(width - len(members))]))
        kept.append(weight)
    scores = np.zeros(len(names))
    wins = np.zeros(len(names))
    if sets:
        set_array, share_array, weight_array = np.array(sets), np.array(shares), np.array(kept, dtype=float)
        scores = fit_choices(set_array, share_array, len(names), weights=weight_array, prior=prior).scores
        valid = set_array >= 0
        wins = np.bincount(set_array[valid], weights=(weight_array[:, None] * share_array)[valid],
                           minlength=len(names))
    standings = [SourceStanding(name, float(scores[i]), float(wins[i]), int(appeared[i]),
                                float(_sigmoid(scores[i]))) for i, name in enumerate(names)]
    return sorted(standings, key=lambda s: (-s.score, s.source))
