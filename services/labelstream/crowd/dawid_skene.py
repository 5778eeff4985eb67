"""Dawid-Skene aggregation, skill-weighted and majority vote: plain numpy/scipy functions, no I/O.

Everything works on integer indices: items 0..I-1, workers 0..W-1 and classes 0..K-1 in the
project's label order (the caller maps ids to indices). Answers are three parallel arrays
`items`, `workers`, `labels` with one entry per answer.

Two paths share one model:
- `fit_dawid_skene` runs EM over all answers (a background re-fit; warm-startable so it is cheap);
- `ItemPosterior` / `posterior_from_votes` fold votes into one item's posterior with the fitted
  confusions, in microseconds, so the aggregator can decide per incoming vote between re-fits.

The model (the language model's calibrated class probabilities) is one more voter: it enters as
a per-item log-likelihood term, see `model_log_evidence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

METHODS = ("full", "one_coin")
# Floor for probabilities that enter a log: a worker who never gave some answer in the fit, or a
# model that says 0.0, must not veto every other voter.
PROB_FLOOR = 1e-6


@dataclass
class DawidSkeneModel:
    class_priors: np.ndarray        # [K]
    confusions: np.ndarray          # [W, K, K]: row = true class, column = answered class; rows sum to 1
    posteriors: np.ndarray          # [I, K]: P(true class | answers) per item
    default_confusion: np.ndarray   # [K, K] for workers the fit has not seen: pooled over all answers
    worker_answers: np.ndarray      # [W] answers per worker in the fit (how much to trust its confusion)
    method: str
    iterations: int
    converged: bool
    log_likelihood: float
    # Logs transposed to [W, answered, true] so that one vote is one contiguous row: the per-vote
    # update is then an index and an add.
    log_votes: np.ndarray = field(init=False, repr=False)
    log_default_votes: np.ndarray = field(init=False, repr=False)
    log_priors: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.log_votes = np.ascontiguousarray(_log_votes(self.confusions))
        self.log_default_votes = np.ascontiguousarray(np.log(np.maximum(self.default_confusion, PROB_FLOOR)).T)
        self.log_priors = np.log(np.maximum(self.class_priors, PROB_FLOOR))

    @property
    def n_classes(self) -> int:
        return int(self.class_priors.shape[0])

    @property
    def n_workers(self) -> int:
        return int(self.confusions.shape[0])

    def labels(self) -> np.ndarray:
        """Most probable class per item (ties: the earliest class, as in voting.py)."""
        return self.posteriors.argmax(axis=1)

    def vote_log_likelihood(self, worker: int | None, answered: int) -> np.ndarray:
        """[K]: log P(answered | true class k) for one vote; unseen workers get the pooled confusion."""
        if worker is None or worker < 0 or worker >= self.log_votes.shape[0]:
            return self.log_default_votes[answered]
        return self.log_votes[worker, answered]


# ---------------------------------------------------------------------------------------------
# EM


def fit_dawid_skene(items: np.ndarray, workers: np.ndarray, labels: np.ndarray, n_items: int, n_workers: int,
                    n_classes: int, *, method: str = "full", max_iter: int = 100, tol: float = 1e-6,
                    smoothing: float = 0.01, diagonal_prior: float = 2.0, init_posteriors: np.ndarray | None = None,
                    item_priors_log: np.ndarray | None = None, prior_confusions: np.ndarray | None = None,
                    warm_start: DawidSkeneModel | None = None) -> DawidSkeneModel:
    """Dawid-Skene by EM.

    method: "full" (a K x K confusion matrix per worker) or "one_coin" (one accuracy per worker,
    errors spread uniformly over the other classes: far fewer parameters, better for workers with
    few answers).
    smoothing: Dirichlet pseudo-count added to every cell of every confusion matrix and to the class
    counts, so a worker seen on one item does not get a confusion of exact zeros and ones.
    diagonal_prior: extra pseudo-count on each confusion diagonal (as if every worker had also
    answered that many items of each class correctly): the prior belief that workers beat chance.
    Without it, on sparse data (few answers per item or per worker) EM has a degenerate optimum,
    where a class "never occurs" and the workers who answer it are "always wrong", and drifts
    there (Snow TEMP with 1-3 answers per item: accuracy below majority vote). It is negligible for
    workers with many answers. One-coin accuracies are also floored at chance (1/K).
    item_priors_log: optional [I, K] extra evidence per item from a non-worker voter, added to the
    log posterior as is (a log-likelihood, defined up to a per-item constant): build it with
    `model_log_evidence`. It is never re-estimated, so it also anchors EM.
    prior_confusions: optional [W, K, K] Dirichlet pseudo-counts per worker (row = true class), used
    in place of `diagonal_prior` (smoothing still applies): what is already known about each
    worker, e.g. their confusion on other labels of a multi-label task scaled to a few answers
    (labelstream.crowd.multilabel), so that a worker with few answers on this label keeps it.
    Initialisation, first that applies: `init_posteriors` (rows for the first items; the rest from
    votes), `warm_start` (one E-step with that model's priors and confusions; workers it has not
    seen get its pooled confusion), else the smoothed majority vote.
    Stops when the log-likelihood changes by at most `tol` relative to itself in one iteration (EM
    then crawls: labels no longer change), or after `max_iter`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    items, workers, labels = (np.asarray(a, dtype=np.int64) for a in (items, workers, labels))
    answers = _Answers(items, workers, labels, n_items, n_workers, n_classes)
    extra = _checked_item_priors(item_priors_log, n_items, n_classes)
    worker_prior = _checked_prior_confusions(prior_confusions, n_workers, n_classes)

    if init_posteriors is not None:
        posteriors = _posteriors_from_rows(np.asarray(init_posteriors, dtype=float), answers, extra)
    elif warm_start is not None:
        log_votes = _extend_log_votes(warm_start, n_workers)
        posteriors, _ = _e_step(answers, warm_start.log_priors, log_votes, extra)
    else:
        posteriors = _majority_posteriors(answers, extra)

    priors, confusions, pooled = _m_step(answers, posteriors, method, smoothing, diagonal_prior, worker_prior)
    converged = False
    iterations = 0
    log_likelihood = -np.inf
    while iterations < max_iter and not converged:
        iterations += 1
        posteriors, new_log_likelihood = _e_step(answers, np.log(priors), _log_votes(confusions), extra)
        priors, confusions, pooled = _m_step(answers, posteriors, method, smoothing, diagonal_prior, worker_prior)
        converged = abs(new_log_likelihood - log_likelihood) <= tol * abs(new_log_likelihood)
        log_likelihood = new_log_likelihood
    # posteriors of the returned parameters, so that batch and per-vote updates agree exactly
    posteriors, log_likelihood = _e_step(answers, np.log(priors), _log_votes(confusions), extra)
    return DawidSkeneModel(class_priors=priors, confusions=confusions, posteriors=posteriors,
                           default_confusion=pooled, worker_answers=answers.per_worker, method=method,
                           iterations=iterations, converged=converged, log_likelihood=log_likelihood)


class _Answers:
    """The answers as sparse incidence matrices, built once per fit so each EM step is two sparse
    products instead of Python loops."""

    def __init__(self, items: np.ndarray, workers: np.ndarray, labels: np.ndarray, n_items: int,
                 n_workers: int, n_classes: int) -> None:
        if not (items.shape == workers.shape == labels.shape):
            raise ValueError("items, workers and labels must have the same length")
        for name, values, bound in (("items", items, n_items), ("workers", workers, n_workers),
                                    ("labels", labels, n_classes)):
            if values.size and (values.min() < 0 or values.max() >= bound):
                raise ValueError(f"{name} must be in [0, {bound})")
        self.items, self.workers, self.labels = items, workers, labels
        self.n_items, self.n_workers, self.n_classes = n_items, n_workers, n_classes
        n = items.shape[0]
        ones = np.ones(n)
        # item x answer: sums per-answer log-likelihoods into per-item ones
        self.item_answer = sparse.csr_matrix((ones, (items, np.arange(n))), shape=(n_items, n))
        # (worker, answered) x item, duplicates summed: times posteriors gives the soft confusion counts
        self.pair_item = sparse.csr_matrix((ones, (workers * n_classes + labels, items)),
                                           shape=(n_workers * n_classes, n_items))
        self.per_worker = np.bincount(workers, minlength=n_workers).astype(np.int64)
        self.vote_counts = np.bincount(items * n_classes + labels, minlength=n_items * n_classes
                                       ).reshape(n_items, n_classes).astype(float)


def _checked_item_priors(item_priors_log: np.ndarray | None, n_items: int, n_classes: int) -> np.ndarray | None:
    if item_priors_log is None:
        return None
    extra = np.asarray(item_priors_log, dtype=float)
    if extra.shape != (n_items, n_classes):
        raise ValueError(f"item_priors_log must have shape {(n_items, n_classes)}, got {extra.shape}")
    return extra


def _checked_prior_confusions(prior: np.ndarray | None, n_workers: int, n_classes: int) -> np.ndarray | None:
    if prior is None:
        return None
    prior = np.asarray(prior, dtype=float)
    if prior.shape != (n_workers, n_classes, n_classes) or (prior < 0).any():
        raise ValueError(f"prior_confusions must be non-negative with shape {(n_workers, n_classes, n_classes)}")
    return prior


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def _majority_posteriors(answers: _Answers, extra: np.ndarray | None) -> np.ndarray:
    # Smoothed vote shares (half a vote per class) rather than hard majority labels, so EM starts
    # undecided on ties instead of committing to the first class.
    logits = np.log(answers.vote_counts + 0.5)
    if extra is not None:
        logits = logits + extra
    return _softmax_rows(logits)


def _posteriors_from_rows(rows: np.ndarray, answers: _Answers, extra: np.ndarray | None) -> np.ndarray:
    posteriors = _majority_posteriors(answers, extra)
    if rows.ndim != 2 or rows.shape[1] != answers.n_classes or rows.shape[0] > answers.n_items:
        raise ValueError("init_posteriors must have shape [<= n_items, n_classes]")
    posteriors[: rows.shape[0]] = rows / np.maximum(rows.sum(axis=1, keepdims=True), PROB_FLOOR)
    return posteriors


def _extend_log_votes(model: DawidSkeneModel, n_workers: int) -> np.ndarray:
    """The model's per-worker log confusions for `n_workers` workers (new ones get the pooled one)."""
    if n_workers <= model.n_workers:
        return model.log_votes[:n_workers]
    extra = np.broadcast_to(model.log_default_votes, (n_workers - model.n_workers, *model.log_default_votes.shape))
    return np.concatenate([model.log_votes, extra])


def _log_votes(confusions: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(confusions, PROB_FLOOR)).transpose(0, 2, 1)


def _e_step(answers: _Answers, log_priors: np.ndarray, log_votes: np.ndarray,
            extra: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Posteriors [I, K] and the data log-likelihood, given log priors and log_votes [W, answered, true]."""
    per_answer = log_votes[answers.workers, answers.labels]          # [N, K]
    logits = answers.item_answer @ per_answer + log_priors           # [I, K]
    if extra is not None:
        logits = logits + extra
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return np.exp(logits - log_norm[:, None]), float(log_norm.sum())


def _m_step(answers: _Answers, posteriors: np.ndarray, method: str, smoothing: float, diagonal_prior: float,
            worker_prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = answers.n_classes
    priors = posteriors.sum(axis=0) + smoothing
    priors = priors / priors.sum()
    # counts[w, answered, true] = sum over w's answers `answered` of P(true | item)
    counts = np.asarray(answers.pair_item @ posteriors).reshape(answers.n_workers, k, k).transpose(0, 2, 1)
    pooled_counts = counts.sum(axis=0)
    pseudo = smoothing + diagonal_prior * np.eye(k)
    # per worker: [W, K, K] or the one shared [K, K]; the pooled confusion keeps the shared one
    per_worker = pseudo if worker_prior is None else worker_prior + smoothing
    if method == "full":
        confusions = _normalise_rows(counts + per_worker)
        pooled = _normalise_rows(pooled_counts + pseudo)
    else:
        # one accuracy per worker, with the same pseudo-counts as "full" summed over its cells;
        correct = np.trace(counts, axis1=1, axis2=2) + np.trace(per_worker, axis1=-2, axis2=-1)
        accuracy = correct / (answers.per_worker + per_worker.sum(axis=(-2, -1)))
        # Below chance is far likelier a spammer's noise than a systematic adversary; taken at face
        # value it makes the symmetric one-coin model vote against the answer, and on sparse data EM
        # then drifts to "one class never occurs, half the workers are always wrong".
        accuracy = np.maximum(accuracy, 1.0 / k)
        confusions = one_coin_confusions(accuracy, k)
        pooled_accuracy = (np.trace(pooled_counts) + np.trace(pseudo)) / (answers.per_worker.sum() + pseudo.sum())
        pooled = one_coin_confusions(np.array([pooled_accuracy]), k)[0]
    return priors, confusions, pooled


def _normalise_rows(counts: np.ndarray) -> np.ndarray:
    return counts / counts.sum(axis=-1, keepdims=True)


def one_coin_confusions(accuracy: np.ndarray, n_classes: int) -> np.ndarray:
    """[W, K, K] confusions with `accuracy` on the diagonal and the errors spread uniformly."""
    accuracy = np.asarray(accuracy, dtype=float)
    if n_classes == 1:
        return np.ones((accuracy.shape[0], 1, 1))
    off = (1.0 - accuracy) / (n_classes - 1)
    confusions = np.repeat(off[:, None, None], n_classes, axis=1).repeat(n_classes, axis=2)
    idx = np.arange(n_classes)
    confusions[:, idx, idx] = accuracy[:, None]
    return confusions


def predict_posteriors(model: DawidSkeneModel, items: np.ndarray, workers: np.ndarray, labels: np.ndarray,
                       n_items: int, item_priors_log: np.ndarray | None = None) -> np.ndarray:
    """[I, K] posteriors of new answers under a fitted model's fixed priors and confusions (one
    E-step). Worker indices outside the model (e.g. -1) get the pooled default confusion."""
    items, workers, labels = (np.asarray(a, dtype=np.int64) for a in (items, workers, labels))
    k = model.n_classes
    unseen = (workers < 0) | (workers >= model.n_workers)
    # unseen workers are mapped to one extra slot holding the pooled confusion
    slots = np.where(unseen, model.n_workers, workers)
    log_votes = np.concatenate([model.log_votes, model.log_default_votes[None]])
    answers = _Answers(items, slots, labels, n_items, model.n_workers + 1, k)
    posteriors, _ = _e_step(answers, model.log_priors, log_votes, _checked_item_priors(item_priors_log, n_items, k))
    return posteriors


# ---------------------------------------------------------------------------------------------
# The model as a voter


def model_log_evidence(probabilities: np.ndarray, base_rates: np.ndarray | None = None,
                       weight: float = 1.0) -> np.ndarray:
    """Log-likelihood term of a calibrated classifier's class probabilities, for `item_priors_log`.

    A calibrated p(k | x) is proportional to p(x | k) * base_rate(k), where base_rate is the class
    balance of the data it was calibrated on; so its evidence about the true class is
    log p(k | x) - log base_rate(k) (up to a per-item constant). Subtracting the base rate keeps the
    class prior from being counted twice (DS adds its own). base_rates None means uniform.
    weight < 1 tempers the model (e.g. when its errors correlate with the workers'). Works on [K]
    or [I, K].
    """
    probs = np.asarray(probabilities, dtype=float)
    evidence = np.log(np.clip(probs, PROB_FLOOR, 1.0))
    if base_rates is not None:
        evidence = evidence - np.log(np.clip(np.asarray(base_rates, dtype=float), PROB_FLOOR, 1.0))
    return weight * evidence


# ---------------------------------------------------------------------------------------------
# Incremental per-vote updates between re-fits


def normalise_log(log_post: np.ndarray) -> np.ndarray:
    """Subtract the log-sum-exp so that exp(log_post) sums to 1."""
    top = log_post.max()
    return log_post - (top + np.log(np.exp(log_post - top).sum()))


def update_log_posterior(log_post: np.ndarray, confusion_log: np.ndarray, answered: int) -> np.ndarray:
    """Fold one vote into a normalised log posterior [K]: confusion_log is the voter's log
    confusion [K, K] (row = true class), `answered` the class it chose."""
    return normalise_log(log_post + confusion_log[:, answered])


class ItemPosterior:
    """One item's running posterior under a fitted model, updated per incoming vote (microseconds)."""

    __slots__ = ("_model", "log_post", "votes")

    def __init__(self, model: DawidSkeneModel, model_probs: np.ndarray | None = None, *,
                 model_base_rates: np.ndarray | None = None, model_weight: float = 1.0) -> None:
        self._model = model
        start = model.log_priors
        if model_probs is not None:
            rates = model.class_priors if model_base_rates is None else model_base_rates
            start = start + model_log_evidence(model_probs, rates, model_weight)
        self.log_post = normalise_log(start)
        self.votes = 0

    def add_vote(self, worker: int | None, answered: int) -> np.ndarray:
        """Fold in `worker`'s answer (None or an index outside the model: an unseen worker)."""
        self.log_post = normalise_log(self.log_post + self._model.vote_log_likelihood(worker, answered))
        self.votes += 1
        return self.log_post

    @property
    def probabilities(self) -> np.ndarray:
        return np.exp(self.log_post)

    def top(self) -> tuple[int, float]:
        """(most probable class, its probability); ties go to the earliest class."""
        best = int(self.log_post.argmax())
        return best, float(np.exp(self.log_post[best]))


def posterior_from_votes(model: DawidSkeneModel, votes: Sequence[tuple[int | None, int]],
                         model_probs: np.ndarray | None = None, *, model_base_rates: np.ndarray | None = None,
                         model_weight: float = 1.0) -> np.ndarray:
    """[K] posterior of one item from its (worker index or None, label index) votes and, optionally,
    the model's calibrated class probabilities (base rates default to the fitted class priors; pass
    the ones used for the fit's `item_priors_log` so that both paths weigh the model alike)."""
    state = ItemPosterior(model, model_probs, model_base_rates=model_base_rates, model_weight=model_weight)
    log_post = state.log_post
    for worker, answered in votes:
        log_post = log_post + model.vote_log_likelihood(worker, answered)
    return np.exp(normalise_log(log_post))


# ---------------------------------------------------------------------------------------------
# Majority and skill-weighted votes, worker skill


def majority_vote_labels(items: np.ndarray, labels: np.ndarray, n_items: int, n_classes: int) -> np.ndarray:
    """[I] majority label per item; ties go to the earliest class in the project's order (the
    final fallback of voting.majority_vote); -1 for items without votes."""
    return weighted_vote_labels(items, labels, np.ones(len(labels)), n_items, n_classes)


def weighted_vote_labels(items: np.ndarray, labels: np.ndarray, weights: np.ndarray, n_items: int,
                         n_classes: int) -> np.ndarray:
    """[I] label with the largest summed per-answer weight (ties: earliest class; -1: no votes)."""
    items, labels = np.asarray(items, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    scores = np.bincount(items * n_classes + labels, weights=np.asarray(weights, dtype=float),
                         minlength=n_items * n_classes).reshape(n_items, n_classes)
    voted = np.bincount(items, minlength=n_items) > 0
    return np.where(voted, scores.argmax(axis=1), -1)


def weighted_vote(labels: Sequence[int], weights: Sequence[float], n_classes: int) -> int | None:
    """One item's skill-weighted vote: the class with the largest summed weight; ties go to the
    earliest class (with equal weights this is voting.majority_vote's final answer). None: no votes."""
    if len(labels) == 0:
        return None
    scores = np.bincount(np.asarray(labels, dtype=np.int64), weights=np.asarray(weights, dtype=float),
                         minlength=n_classes)
    return int(scores.argmax())


def skill_weights(accuracy: np.ndarray, n_classes: int, floor: float = 1e-3) -> np.ndarray:
    """Log-odds vote weights log((K-1) a / (1-a)): the optimal weights when each worker is right
    with probability a and errs uniformly (one-coin model). A worker at chance weighs 0 and one
    below chance weighs negative (their answer is evidence against the class)."""
    acc = np.clip(np.asarray(accuracy, dtype=float), floor, 1.0 - floor)
    return np.log((max(n_classes, 2) - 1) * acc / (1.0 - acc))


def worker_accuracy(model: DawidSkeneModel) -> np.ndarray:
    """[W] probability that each worker answers the true class: the confusion diagonal weighted by
    the class priors."""
    return np.einsum("wkk,k->w", model.confusions, model.class_priors)


def accuracy_against(workers: np.ndarray, labels: np.ndarray, reference: np.ndarray, n_workers: int,
                     prior_correct: float = 2.0, prior_wrong: float = 1.0) -> np.ndarray:
    """[W] each worker's accuracy against a reference label per answer (gold[items], or a consensus
    such as `leave_one_out_majority`), shrunk by a Beta(prior_correct, prior_wrong) prior so that
    workers with few judged answers stay near the prior mean. The default mean, 2/3, is above
    chance: a worker we know nothing about votes like a typical worker (with skill_weights, equal
    weights, i.e. majority vote) rather than at weight 0. Answers whose reference is -1 are not
    judged."""
    workers, reference = np.asarray(workers, dtype=np.int64), np.asarray(reference, dtype=np.int64)
    judged = reference >= 0
    right = np.bincount(workers[judged], weights=(np.asarray(labels)[judged] == reference[judged]).astype(float),
                        minlength=n_workers)
    total = np.bincount(workers[judged], minlength=n_workers)
    return (right + prior_correct) / (total + prior_correct + prior_wrong)


def leave_one_out_majority(items: np.ndarray, labels: np.ndarray, n_items: int, n_classes: int) -> np.ndarray:
    """[N] per answer, the majority label of the *other* answers on its item, or -1 when they are
    tied or absent. A reference for worker skill that does not let an answer vote for itself
    (which would inflate every worker's accuracy, most of all on items with few answers)."""
    items, labels = np.asarray(items, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    counts = np.bincount(items * n_classes + labels, minlength=n_items * n_classes).reshape(n_items, n_classes)
    others = counts[items]
    others[np.arange(items.shape[0]), labels] -= 1
    best = others.max(axis=1)
    unique_best = (others == best[:, None]).sum(axis=1) == 1
    return np.where((best > 0) & unique_best, others.argmax(axis=1), -1)
