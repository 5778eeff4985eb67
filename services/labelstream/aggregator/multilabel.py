"""A multi_label project's answers to a final set, label by label (labelstream.crowd.multilabel).

Every answer is a whole set (the router sends whole items: router/multilabel.py), read as a row of
yes/no on every label. Per label, the item's posterior that the label applies comes from:
- majority_vote: the share of answers that ticked it; a label is undecided only on an exact tie;
- dawid_skene: the project's pooled Dawid-Skene fit (a sensitivity and a specificity per worker and
  label, each worker's across-label ones as their prior), the best of the methods measured on
  GoEmotions (reports/benchmarks/multilabel_aggregation.json); re-fitted in the background as for
  single-label projects, each new answer updating the item under the fit's fixed parameters. Before
  the first fit the vote shares stand in.
Dynamic overlap is per label: an item is final once no label's posterior lies strictly between
1 - posterior_bound and posterior_bound (or max_overlap answers are in); otherwise one more answer
is requested. The final set is then the labels at posterior 0.5 or more, capped at
max_labels_per_item, with the project's none rule (projects.multi_label_none_rule).

The model does not vote here: the multi-label router auto-accepts or sends whole items to people
and has no near-threshold band where the model would vote beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelstream.common.projects import MULTI_LABEL_AGGREGATIONS, label_set_key, multi_label_none_rule, parse_label_set
from labelstream.crowd import multilabel
from labelstream.crowd.decide import Decision
from labelstream.v1 import events_pb2

TIE_MARGIN = 1e-9  # majority: a share this close to 1/2 is a tie (the only undecided share)


@dataclass(frozen=True)
class MultiLabelSkill:
    """A project's pooled fit and the ids behind its worker indexes."""
    fit: multilabel.MultiLabelFit
    workers: dict[str, int]


def answer_rows(labels: list[str], answers: list[str]) -> np.ndarray:
    """[N, L] boolean rows of answers given as set keys; a key that names no valid set is a row
    of its valid labels (the dispatcher checked every answer; this only never raises)."""
    index = set(labels)
    sets = [[name for name in (parse_label_set(key) or []) if name in index] for key in answers]
    return multilabel.encode_sets(sets, labels)


def fit_project(spec: events_pb2.ProjectSpec, votes: list[tuple[str, str, str]],
                previous: MultiLabelSkill | None = None) -> MultiLabelSkill | None:
    """The pooled fit of a project's (item, worker, set key) votes; None for majority vote."""
    method = MULTI_LABEL_AGGREGATIONS.get(spec.aggregation, "majority")
    if method == "majority" or not votes:
        return None
    items = {item: i for i, item in enumerate(sorted({v[0] for v in votes}))}
    workers = dict(previous.workers) if previous is not None else {}
    for worker in sorted({v[1] for v in votes} - set(workers)):
        workers[worker] = len(workers)
    rows = answer_rows(list(spec.labels), [v[2] for v in votes])
    fit = multilabel.fit(method, np.array([items[v[0]] for v in votes]), np.array([workers[v[1]] for v in votes]),
                         rows, len(items), len(workers))
    return MultiLabelSkill(fit, workers)


def decide(spec: events_pb2.ProjectSpec, skill: MultiLabelSkill | None, votes: list[tuple[str, str]],
           required: int, max_votes: int) -> Decision:
    """The item's decision on its (worker, set key) votes. `label` is the final set's key;
    `posterior` the certainty of its least certain label (max(p, 1 - p)); `scores` the per-label
    posteriors in the project's order."""
    labels = list(spec.labels)
    if len(votes) < required:
        return Decision(None, 0.0, required)
    rows = answer_rows(labels, [key for _, key in votes])
    if skill is None:
        posteriors = rows.mean(axis=0) if len(rows) else np.zeros(len(labels))
        low, high = 0.5 - TIE_MARGIN, 0.5 + TIE_MARGIN
    else:
        posteriors = multilabel.item_posteriors(skill.fit, [(skill.workers.get(w), row)
                                                            for (w, _), row in zip(votes, rows, strict=True)])
        low, high = 1.0 - spec.posterior_bound, spec.posterior_bound
    set_decision = multilabel.decide_set(posteriors, labels, len(votes), max_votes, low=low, high=high,
                                         max_labels=spec.max_labels_per_item or None,
                                         none_rule=multi_label_none_rule(spec))
    certainty = float(np.min(np.maximum(posteriors, 1.0 - posteriors))) if len(posteriors) else 1.0
    scores = tuple(float(p) for p in posteriors)
    if set_decision.labels is None:
        return Decision(None, certainty, len(votes) + 1, scores)
    return Decision(label_set_key(set_decision.labels), certainty, len(votes), scores)
