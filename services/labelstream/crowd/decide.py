"""From an item's votes to a decision: final (label, posterior) or "ask for more votes".
Plain functions and classes, no I/O: the aggregator service, the Snow replay and the
benchmarks call the same code.

Methods (ProjectSpec.aggregation):
- majority_vote: the share of votes; ties ask for one more vote up to max_overlap.
- weighted_vote: one-coin posterior with each worker's accuracy from hidden gold (Beta mean).
- dawid_skene / one_coin_dawid_skene: the project's EM fit (labelstream.crowd.dawid_skene),
  re-fitted in the background; between fits each vote updates the item's posterior.
The model, when it votes, is one more voter with its calibrated confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labelstream.common.projects import AggregationMethod
from labelstream.crowd import dawid_skene as ds
from labelstream.crowd.voting import majority_vote

DEFAULT_ACCURACY = 0.7   # a worker's accuracy before any gold or fit says otherwise


@dataclass(frozen=True)
class Decision:
    label: str | None      # None: not final yet
    posterior: float       # of the label (majority vote: its share of the votes)
    votes_needed: int      # total votes (model included) to wait for
    scores: tuple[float, ...] = ()  # per label: the posterior, or (majority vote) the share of votes


@dataclass
class SkillModel:
    """What a project knows about its workers: a Dawid-Skene fit and/or gold accuracies."""
    labels: list[str]
    fit: ds.DawidSkeneModel | None = None
    fit_workers: dict[str, int] = field(default_factory=dict)   # worker id -> index in the fit
    gold_accuracy: dict[str, float] = field(default_factory=dict)

    def confusion_model(self, method: str) -> tuple[ds.DawidSkeneModel, dict[str, int]]:
        """The fit, or a one-coin model from gold accuracies (weighted vote, or before a fit)."""
        if AggregationMethod(method).has_posterior and self.fit is not None:
            return self.fit, self.fit_workers
        k = len(self.labels)
        workers = sorted(self.gold_accuracy)
        accuracy = np.array([self.gold_accuracy[w] for w in workers] or [DEFAULT_ACCURACY])
        confusions = ds.one_coin_confusions(np.clip(accuracy, 1.0 / k + 1e-3, 0.999), k)
        model = ds.DawidSkeneModel(
            class_priors=np.full(k, 1.0 / k), confusions=confusions, posteriors=np.zeros((0, k)),
            default_confusion=ds.one_coin_confusions(np.array([DEFAULT_ACCURACY]), k)[0],
            worker_answers=np.zeros(len(confusions)), method="one_coin", iterations=0, converged=True,
            log_likelihood=0.0)
        return model, {w: i for i, w in enumerate(workers)}


def posterior(skills: SkillModel, method: str, votes: list[tuple[str, str]],
              model_vote: tuple[str, float] | None) -> np.ndarray:
    """[K] posterior over the project's labels from (worker, label) votes and the model's vote."""
    model, workers = skills.confusion_model(method)
    index = {label: i for i, label in enumerate(skills.labels)}
    coded = [(workers.get(worker), index[label]) for worker, label in votes if label in index]
    model_probs = None
    if model_vote is not None and model_vote[0] in index:
        k = len(skills.labels)
        confidence = min(max(model_vote[1], 1.0 / k), 0.999)
        model_probs = np.full(k, (1.0 - confidence) / max(1, k - 1))
        model_probs[index[model_vote[0]]] = confidence
    return ds.posterior_from_votes(model, coded, model_probs)


def decide(method: str, skills: SkillModel, votes: list[tuple[str, str]], model_vote: tuple[str, float] | None,
           required: int, max_votes: int, bound: float) -> Decision:
    """`required` and `max_votes` count every voter, the model included when it votes."""
    voters = len(votes) + (model_vote is not None)
    if method == AggregationMethod.MAJORITY_VOTE:
        labels = [label for _, label in votes] + ([model_vote[0]] if model_vote else [])
        outcome = majority_vote(labels, skills.labels, required, max_votes)
        shares = tuple(labels.count(label) / max(1, len(labels)) for label in skills.labels)
        return Decision(outcome.label, outcome.share, outcome.votes_needed, shares)
    if method not in set(AggregationMethod):
        raise ValueError(f"unknown aggregation {method!r}; use one of {[m.value for m in AggregationMethod]}")
    if voters < required:
        return Decision(None, 0.0, required)
    probs = posterior(skills, method, votes, model_vote)
    best = int(probs.argmax())
    if probs[best] >= bound or voters >= max_votes:
        return Decision(skills.labels[best], float(probs[best]), voters, tuple(float(p) for p in probs))
    return Decision(None, float(probs[best]), voters + 1, tuple(float(p) for p in probs))


@dataclass(frozen=True)
class ProjectFit:
    """An EM fit of a project's votes, with the ids behind its indexes."""
    model: ds.DawidSkeneModel
    workers: dict[str, int]   # worker id -> index in the fit
    items: list[str]          # item ids in the fit's item order
    labels: list[str]

    def labels_by_item(self) -> dict[str, str]:
        return {item: self.labels[k] for item, k in zip(self.items, self.model.labels(), strict=True)}


def fit_project(labels: list[str], votes: list[tuple[str, str, str]], method: str,
                previous: SkillModel | None = None) -> ProjectFit:
    """EM fit on a project's (item, worker, label) votes.
    Workers keep their index from the previous fit (new ones are appended), so it warm-starts."""
    index = {label: i for i, label in enumerate(labels)}
    votes = [v for v in votes if v[2] in index]
    item_ids = sorted({v[0] for v in votes})
    items = {item: i for i, item in enumerate(item_ids)}
    workers = dict(previous.fit_workers) if previous is not None and previous.fit is not None else {}
    for worker in sorted({v[1] for v in votes} - set(workers)):
        workers[worker] = len(workers)
    warm = previous.fit if previous is not None else None
    fit = ds.fit_dawid_skene(
        np.array([items[v[0]] for v in votes], dtype=np.int64),
        np.array([workers[v[1]] for v in votes], dtype=np.int64),
        np.array([index[v[2]] for v in votes], dtype=np.int64), len(items), len(workers), len(labels),
        method="one_coin" if method == "one_coin_dawid_skene" else "full", warm_start=warm)
    return ProjectFit(fit, workers, item_ids, list(labels))
