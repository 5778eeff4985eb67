"""Multi-label answers: aggregation, the final set per item, labels that still need votes, and
the metrics of predicted sets against reference sets. Plain numpy functions, no I/O.

An answer is a set of labels from the project's label set, possibly empty ("none of these").
Items 0..I-1, workers 0..W-1 and labels 0..L-1 are indices in the project's order (the caller maps
ids, as for labelstream.crowd.dawid_skene); answers are parallel arrays `items`, `workers` and
`chosen`, a [N, L] boolean matrix with one row per answer (`encode_sets` builds it).

Every method gives, per item and label, the probability that the label applies ([I, L]); the
final set is then one rule for all (`final_sets`):
- majority: the share of the item's answers that chose the label;
- per_label: one binary Dawid-Skene fit per label (a worker's yes/no on label L is whether L is
  in their set), i.e. a sensitivity and a specificity per worker and label;
- pooled: the same, with each worker's sensitivity and specificity first fitted across all
  labels and then used as the prior of their per-label ones. With many labels a worker sees few
  items of each one, and the per-label fit then knows nothing about a worker who never ticks
  anything (their "no" on a rare label looks like an honest miss); the pooled fit does.
The model (independent calibrated per-label probabilities) is one more voter in the DS methods.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from labelstream.common.projects import multi_label_none_rule
from labelstream.crowd import dawid_skene as ds
from labelstream.v1 import events_pb2

NONE = "none"                       # an answer or final set naming no label
METHODS = ("majority", "per_label", "pooled")
NONE_RULES = ("empty", "top")
# Pseudo-answers per true class that a worker's across-label confusion weighs in each per-label
# fit of the pooled method: chosen on the GoEmotions benchmark (28 labels, 5 answers per item, seed
# 0) among 2, 5, 10, 20, 50: 20 is best on the sparse crowd and within 0.001 macro-F1 of the best
# on the 50-rater pool; see pool_strength_sweep in reports/benchmarks/multilabel_aggregation.json.
POOL_STRENGTH = 20.0


def encode_sets(answers: Sequence[Collection[str]], labels: Sequence[str]) -> np.ndarray:
    """[N, L] boolean: row n says which labels answer n chose. NONE and the empty set choose none;
    a label outside `labels` is an error (the caller validates answers against the project)."""
    index = {label: i for i, label in enumerate(labels)}
    chosen = np.zeros((len(answers), len(labels)), dtype=bool)
    for row, answer in enumerate(answers):
        for label in answer:
            if label == NONE and NONE not in index:
                continue
            if label not in index:
                raise ValueError(f"label {label!r} is not one of the project's labels")
            chosen[row, index[label]] = True
    return chosen


def decode_sets(chosen: np.ndarray, labels: Sequence[str]) -> list[frozenset[str]]:
    """Each row of a [I, L] boolean matrix as the set of its labels (empty: none of these)."""
    return [frozenset(labels[j] for j in np.flatnonzero(row)) for row in np.asarray(chosen, dtype=bool)]


# ---------------------------------------------------------------------------------------------
# Aggregation


@dataclass
class MultiLabelFit:
    posteriors: np.ndarray                    # [I, L] P(label applies | answers)
    method: str
    models: list[ds.DawidSkeneModel] | None   # one binary fit per label (DS methods), class 1 = applies
    shared: ds.DawidSkeneModel | None = None  # pooled: the across-label fit, one confusion per worker

    def sensitivity(self) -> np.ndarray:
        """[W, L] P(worker ticks the label | it applies); DS methods only."""
        return np.stack([m.confusions[:, 1, 1] for m in self._models()], axis=1)

    def specificity(self) -> np.ndarray:
        """[W, L] P(worker leaves the label out | it does not apply); DS methods only."""
        return np.stack([m.confusions[:, 0, 0] for m in self._models()], axis=1)

    def _models(self) -> list[ds.DawidSkeneModel]:
        if not self.models:
            raise ValueError("majority vote has no worker parameters")
        return self.models


def majority_posteriors(items: np.ndarray, chosen: np.ndarray, n_items: int) -> np.ndarray:
    """[I, L] share of each item's answers that chose each label (0 for items without answers)."""
    items = np.asarray(items, dtype=np.int64)
    chosen = np.asarray(chosen, dtype=float)
    counts = np.zeros((n_items, chosen.shape[1]))
    np.add.at(counts, items, chosen)
    answers = np.bincount(items, minlength=n_items)
    return counts / np.maximum(answers, 1)[:, None]


def model_evidence(model_probs: np.ndarray, base_rates: np.ndarray | None = None,
                   weight: float = 1.0) -> np.ndarray:
    """[I, L, 2] per-label log evidence (class 0 = does not apply, 1 = applies) of a model's
    independent per-label probabilities [I, L], for each binary fit's `item_priors_log`.
    base_rates [L]: each label's rate in the data the model was calibrated on (None: 0.5)."""
    p = np.asarray(model_probs, dtype=float)
    both = np.stack([1.0 - p, p], axis=-1)
    rates = None
    if base_rates is not None:
        r = np.asarray(base_rates, dtype=float)
        rates = np.stack([1.0 - r, r], axis=-1)
    return ds.model_log_evidence(both, rates, weight)


def fit(method: str, items: np.ndarray, workers: np.ndarray, chosen: np.ndarray, n_items: int, n_workers: int, *,
        model_probs: np.ndarray | None = None, model_base_rates: np.ndarray | None = None,
        model_weight: float = 1.0, pool_strength: float = POOL_STRENGTH, **ds_options: float) -> MultiLabelFit:
    """Aggregate multi-label answers with one of METHODS. `model_probs` [I, L], when given, is one
    more voter (DS methods; majority vote ignores it, as its shares count answers only).
    `ds_options` go to every fit_dawid_skene call (max_iter, tol, smoothing, diagonal_prior)."""
    items, workers = np.asarray(items, dtype=np.int64), np.asarray(workers, dtype=np.int64)
    chosen = np.asarray(chosen, dtype=bool)
    if chosen.ndim != 2 or chosen.shape[0] != items.shape[0]:
        raise ValueError("chosen must be [answers, labels]")
    if method == "majority":
        return MultiLabelFit(majority_posteriors(items, chosen, n_items), method, None)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    evidence = None if model_probs is None else model_evidence(model_probs, model_base_rates, model_weight)
    shared = None
    prior = None
    if method == "pooled":
        shared = fit_across_labels(items, workers, chosen, n_items, n_workers, evidence, **ds_options)
        prior = pool_strength * shared.confusions
    models = [ds.fit_dawid_skene(items, workers, chosen[:, label].astype(np.int64), n_items, n_workers, 2,
                                 item_priors_log=None if evidence is None else evidence[:, label],
                                 prior_confusions=prior, **ds_options)
              for label in range(chosen.shape[1])]
    posteriors = np.stack([m.posteriors[:, 1] for m in models], axis=1)
    return MultiLabelFit(posteriors, method, models, shared)


def fit_across_labels(items: np.ndarray, workers: np.ndarray, chosen: np.ndarray, n_items: int, n_workers: int,
                      evidence: np.ndarray | None = None, **ds_options: float) -> ds.DawidSkeneModel:
    """One binary DS fit over every (item, label) pair: a sensitivity and a specificity per worker,
    shared by all labels. Labels differ a lot in how often they apply (GoEmotions: neutral on a
    third of the items, grief on 0.2%), which one shared class prior cannot hold; each label's own
    log prior odds, from the answers' vote shares, enter as fixed per-pair evidence instead."""
    n_labels = chosen.shape[1]
    pair_items = (items[:, None] * n_labels + np.arange(n_labels)[None, :]).ravel()
    pair_workers = np.repeat(workers, n_labels)
    shares = majority_posteriors(items, chosen, n_items)
    rate = np.clip(shares.mean(axis=0), 1e-3, 1 - 1e-3)              # [L]
    # DS adds its own fitted prior, about the mean rate over labels: each label's evidence is its
    # rate relative to that mean, so the prior is not counted twice.
    mean = rate.mean()
    log_rates = np.log(np.stack([(1.0 - rate) / (1.0 - mean), rate / mean], axis=-1))   # [L, 2]
    extra = np.broadcast_to(log_rates, (n_items, n_labels, 2)).copy()
    if evidence is not None:
        extra += evidence
    return ds.fit_dawid_skene(pair_items, pair_workers, chosen.ravel().astype(np.int64), n_items * n_labels,
                              n_workers, 2, item_priors_log=extra.reshape(n_items * n_labels, 2), **ds_options)


def item_posteriors(fit_: MultiLabelFit, votes: Sequence[tuple[int | None, np.ndarray]],
                    model_probs: np.ndarray | None = None, model_base_rates: np.ndarray | None = None,
                    model_weight: float = 1.0) -> np.ndarray:
    """[L] one item's posteriors from its (worker index or None, chosen row [L]) votes under a
    fitted model's fixed parameters, between re-fits (as ds.posterior_from_votes per label).
    Majority: the vote shares."""
    rows = np.array([row for _, row in votes], dtype=bool).reshape(len(votes), -1)
    if fit_.models is None:
        return rows.mean(axis=0) if len(votes) else np.zeros(fit_.posteriors.shape[1])
    out = np.empty(len(fit_.models))
    for label, model in enumerate(fit_.models):
        probs = None
        if model_probs is not None:
            probs = np.array([1.0 - model_probs[label], model_probs[label]])
        rates = None if model_base_rates is None else np.array([1 - model_base_rates[label],
                                                                 model_base_rates[label]])
        coded = [(worker, int(row[label])) for (worker, _), row in zip(votes, rows, strict=True)]
        out[label] = ds.posterior_from_votes(model, coded, probs, model_base_rates=rates,
                                             model_weight=model_weight)[1]
    return out


# ---------------------------------------------------------------------------------------------
# Decisions


def final_sets(posteriors: np.ndarray, threshold: float = 0.5, max_labels: int | None = None,
               none_rule: str = "empty") -> np.ndarray:
    """[I, L] boolean final sets: the labels whose posterior is at least `threshold`; with
    `max_labels`, only that many of the most probable. When no label passes, `none_rule` says what
    the item gets: "empty" (none of these; for tasks where that is an answer) or "top" (its single
    most probable label; for tasks where every item has one, such as GoEmotions with "neutral")."""
    if none_rule not in NONE_RULES:
        raise ValueError(f"none_rule must be one of {NONE_RULES}, got {none_rule!r}")
    posteriors = np.atleast_2d(np.asarray(posteriors, dtype=float))
    chosen = posteriors >= threshold
    if max_labels is not None:
        if max_labels < 1:
            raise ValueError("max_labels must be at least 1")
        # rank within each row, most probable first (stable: ties go to the earlier label)
        order = np.argsort(-posteriors, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(posteriors.shape[1])[None, :].repeat(len(order), 0), axis=1)
        chosen &= rank < max_labels
    if none_rule == "top":
        empty = ~chosen.any(axis=1)
        chosen[empty, posteriors[empty].argmax(axis=1)] = True
    return chosen


def model_set(probabilities: np.ndarray, spec: events_pb2.ProjectSpec) -> list[str]:
    """The model's own best set for a project (labels at p >= 0.5, capped, with the project's none
    rule): what a human task shows as the model's label, what the aggregator counts when the model
    votes, and what trusting the model alone would label (the demo's model-only figures)."""
    chosen = final_sets(np.asarray(probabilities, dtype=float)[None, :], 0.5, spec.max_labels_per_item or None,
                        multi_label_none_rule(spec))[0]
    return [spec.labels[j] for j in np.flatnonzero(chosen)]


def uncertain_labels(posteriors: np.ndarray, low: float = 0.1, high: float = 0.9) -> np.ndarray:
    """Boolean, same shape: labels whose posterior lies strictly between the bounds. Dynamic
    overlap asks more votes on these only (a yes/no question per label is cheaper than the whole
    set again), and an item is final once none is left."""
    if not 0.0 <= low < high <= 1.0:
        raise ValueError("need 0 <= low < high <= 1")
    p = np.asarray(posteriors, dtype=float)
    return (p > low) & (p < high)


@dataclass(frozen=True)
class SetDecision:
    labels: frozenset[str] | None   # None: not final yet
    posteriors: tuple[float, ...]   # per label, in the project's order
    ask: tuple[str, ...]            # labels to ask more votes on (empty when final)


def decide_set(posteriors: np.ndarray, labels: Sequence[str], votes: int, max_votes: int, *, low: float = 0.1,
               high: float = 0.9, threshold: float = 0.5, max_labels: int | None = None,
               none_rule: str = "empty") -> SetDecision:
    """One item: final when no label is uncertain or `max_votes` answers are in; else the
    uncertain labels to ask about."""
    p = np.asarray(posteriors, dtype=float)
    unsure = uncertain_labels(p, low, high)
    scores = tuple(float(x) for x in p)
    if unsure.any() and votes < max_votes:
        return SetDecision(None, scores, tuple(labels[j] for j in np.flatnonzero(unsure)))
    final = final_sets(p[None], threshold, max_labels, none_rule)[0]
    return SetDecision(frozenset(labels[j] for j in np.flatnonzero(final)), scores, ())


# ---------------------------------------------------------------------------------------------
# Metrics of predicted sets against reference sets


@dataclass(frozen=True)
class SetMetrics:
    precision: np.ndarray    # [L] per label (NaN: never predicted)
    recall: np.ndarray       # [L] (NaN: never in the reference)
    f1: np.ndarray           # [L] (0 when the label is in neither: see macro_f1)
    micro_f1: float
    macro_f1: float          # mean F1 over labels present in the reference or the prediction
    hamming_loss: float      # share of (item, label) cells that differ
    exact_match: float       # share of items whose set is exactly right
    support: np.ndarray      # [L] items whose reference has the label

    def as_dict(self, labels: Sequence[str] | None = None) -> dict:
        out: dict = {"micro_f1": self.micro_f1, "macro_f1": self.macro_f1, "hamming_loss": self.hamming_loss,
                     "exact_match": self.exact_match}
        if labels is not None:
            out["per_label"] = {label: {"precision": _nan_none(self.precision[j]), "recall": _nan_none(self.recall[j]),
                                        "f1": float(self.f1[j]), "support": int(self.support[j])}
                                for j, label in enumerate(labels)}
        return out


def _nan_none(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def set_metrics(predicted: np.ndarray, reference: np.ndarray) -> SetMetrics:
    """Metrics of [I, L] boolean predicted sets against [I, L] reference sets. Macro-F1 averages
    the labels that occur in the reference or the prediction (a label in neither has no F1;
    scikit-learn counts it as 0 with a warning)."""
    pred, ref = np.asarray(predicted, dtype=bool), np.asarray(reference, dtype=bool)
    if pred.shape != ref.shape or pred.ndim != 2:
        raise ValueError("predicted and reference must both be [items, labels]")
    tp = (pred & ref).sum(axis=0).astype(float)
    fp = (pred & ~ref).sum(axis=0).astype(float)
    fn = (~pred & ref).sum(axis=0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    present = (tp + fp + fn) > 0
    total = 2 * tp.sum() + fp.sum() + fn.sum()
    return SetMetrics(
        precision=precision, recall=recall, f1=f1,
        micro_f1=float(2 * tp.sum() / total) if total else 1.0,
        macro_f1=float(f1[present].mean()) if present.any() else 1.0,
        hamming_loss=float((pred != ref).mean()) if pred.size else 0.0,
        exact_match=float((pred == ref).all(axis=1).mean()) if len(pred) else 1.0,
        support=ref.sum(axis=0).astype(np.int64))
