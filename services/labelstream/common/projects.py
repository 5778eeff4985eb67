"""The project contract: its vocabularies, its defaults and its validation, in one place.

A project is resolved (every unset field given its default) and validated once, when it is
applied (ingest's ApplyProject, which the command line calls too), and stored resolved: every
service reads the same values and none re-applies a default of its own. proto3 cannot tell an
unset scalar from one set to zero, so a default here is only ever given to a field whose zero is
not a meaningful choice (an overlap of 0, a target accuracy of 0...).

The vocabularies are StrEnums: a value stored or sent as a string compares equal to its member,
and a typo in code is an AttributeError instead of a silent mismatch. A new task kind is a new
`TaskKind` member with its rules in `_TASK_RULES`, not a fork of this module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import Any

from labelstream.common.inputs import MAX_LABEL_CHARS, PROJECT_ID_PATTERN, shown, text_problem, unsafe_character
from labelstream.v1 import events_pb2


class TaskKind(StrEnum):
    SINGLE_LABEL = "single_label"  # one label of a text
    PAIRWISE = "pairwise"          # which of two responses to a prompt is better (or a tie)
    BEST_OF_N = "best_of_n"        # which of N responses to a prompt is best (or a tie)
    MULTI_LABEL = "multi_label"    # a set of the labels of a text (possibly empty: see none_label)

    @property
    def is_preference(self) -> bool:
        """Whether items compare responses: the labels are then the canonical choices."""
        return self in (TaskKind.PAIRWISE, TaskKind.BEST_OF_N)


TIE = "tie"  # the answer "no response is better" where a preference project allows ties
MAX_RESPONSES = 8
DEFAULT_BEST_OF_N = 4
PREFERENCE_MODEL = "causal_lm"


def choice_labels(responses: int, allow_ties: bool) -> list[str]:
    """A preference project's labels: the canonical responses "1".."N", then "tie" if allowed.
    Choices are labels to everything downstream (routing, votes, Dawid-Skene, gold)."""
    return [str(i + 1) for i in range(responses)] + ([TIE] if allow_ties else [])


def reader_text(text: str) -> str:
    """A response as a reader tells it apart: whitespace and case make no difference, so two
    responses equal under this are one response (ingest refuses such an item)."""
    return " ".join(text.split()).casefold()


def response_index(label: str) -> int | None:
    """The 0-based canonical response a choice label names; None for a tie."""
    return None if label == TIE else int(label) - 1


def is_preference(spec: events_pb2.ProjectSpec) -> bool:
    return spec.task in set(TaskKind) and TaskKind(spec.task).is_preference


def is_multi_label(spec: events_pb2.ProjectSpec) -> bool:
    return spec.task == TaskKind.MULTI_LABEL


# A multi-label answer is a set. It travels in the same `label` fields as a single label does, as
# its key: the JSON array of its labels, sorted and without spaces, e.g. ["anger","joy"] ("[]" is the
# empty set, "none of these"). One string per set means every path that compares, counts or stores
# answers (agreement, constant-answer streaks, exact-set gold, the store's documents) takes a set as
# one answer without a branch of its own; JSON keeps any label name unambiguous, and sorting makes
# equal sets equal keys whatever order a worker ticked them in.
def label_set_key(labels: Iterable[str]) -> str:
    """The key of a set of labels (sorted, duplicates dropped)."""
    return json.dumps(sorted(set(labels)), ensure_ascii=False, separators=(",", ":"))


def parse_label_set(key: str) -> list[str] | None:
    """The sorted labels of a set's key (or of any JSON array of distinct strings); None when
    `key` is not one. A worker's page may send the labels in the order they were ticked."""
    if not key.startswith("["):
        return None
    try:
        value = json.loads(key)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(set(value)) != len(value):
        return None
    return sorted(value)


def label_set_problem(labels: Sequence[str], spec: events_pb2.ProjectSpec) -> tuple[str, str] | None:
    """What is wrong with a set of labels for a multi_label project, as (a DeadLetterReason value:
    "unknown_label", "too_many_labels" or "bad_label_set"; a sentence), or None. Ingest (gold),
    the dispatcher (answers, gold) and the contract (examples) all check sets with this."""
    unknown = [label for label in labels if label not in spec.labels]
    if unknown:
        return "unknown_label", f"{shown(unknown[0])} is not one of the labels {list(spec.labels)}"
    if len(set(labels)) != len(labels):
        return "bad_label_set", "a label is given twice"
    if spec.max_labels_per_item and len(labels) > spec.max_labels_per_item:
        return "too_many_labels", f"{len(labels)} labels; the project allows at most {spec.max_labels_per_item}"
    if not labels and not spec.none_label:
        return "bad_label_set", "no label: every item of this project holds at least one (it has no none_label)"
    return None


def multi_label_none_rule(spec: events_pb2.ProjectSpec) -> str:
    """How a final set is made when no label reaches its bar (labelstream.crowd.multilabel.final_sets):
    "empty" (none of these) when the project names the empty set, else "top" (its most probable
    label: every item holds at least one)."""
    return "empty" if spec.none_label else "top"


def response_ranking(spec: events_pb2.ProjectSpec, scores: Sequence[float], chosen: str) -> list[str]:
    """A best_of_n item's canonical responses, best first: the chosen one, then the others by
    their score (a probability or posterior per label, in the project's label order). Empty for
    other tasks (a pairwise choice is its own ranking) and for a tie (no response is best)."""
    if spec.task != TaskKind.BEST_OF_N or chosen == TIE or len(scores) != len(spec.labels):
        return []
    others = sorted((label for label in spec.labels if label not in (chosen, TIE)),
                    key=lambda label: (-scores[list(spec.labels).index(label)], int(label)))
    return [chosen, *others]


class RoutingStrategy(StrEnum):
    THRESHOLD = "threshold"     # the raw top probability against auto_accept_threshold
    CALIBRATED = "calibrated"   # the calibrated confidence against its class's threshold
    META = "meta"               # a classifier of "is the model right?"


class AccuracyBound(StrEnum):
    WILSON = "wilson"
    CLOPPER_PEARSON = "clopper_pearson"


class AggregationMethod(StrEnum):
    MAJORITY_VOTE = "majority_vote"
    WEIGHTED_VOTE = "weighted_vote"
    DAWID_SKENE = "dawid_skene"
    ONE_COIN_DAWID_SKENE = "one_coin_dawid_skene"

    @property
    def has_posterior(self) -> bool:
        """Whether the method gives each item a posterior (final once it reaches posterior_bound)."""
        return self in (AggregationMethod.DAWID_SKENE, AggregationMethod.ONE_COIN_DAWID_SKENE)


# How a multi_label project's aggregation is done, label by label (labelstream.crowd.multilabel):
# majority per label, or Dawid-Skene per label pooled across labels (each worker's across-label
# sensitivity and specificity as the prior of their per-label ones), which beat per-label DS and
# crowd-kit's BinaryRelevance(DawidSkene) on every GoEmotions crowd measured
# (reports/benchmarks/multilabel_aggregation.json).
MULTI_LABEL_AGGREGATIONS: dict[str, str] = {
    AggregationMethod.MAJORITY_VOTE.value: "majority", AggregationMethod.DAWID_SKENE.value: "pooled"}


class Overflow(StrEnum):
    """What happens to an item for people when the human fraction cap or the budget binds."""
    AUTO = "auto"      # accept the model's label
    WAIT = "wait"      # hold it back, release most-uncertain-first as the budget allows
    PEOPLE = "people"  # send it anyway


class PayPolicy(StrEnum):
    RAISE = "raise"    # raise pay per answer to the minimum wage
    ALERT = "alert"    # report it (a low_pay quality event)


class QualityEventKind(StrEnum):
    """`QualityEvent.kind` on quality.events."""
    VERIFIED_LABEL = "verified_label"            # people settled an item's label (monitor)
    WORKER_BLOCKED = "worker_blocked"            # a worker's answers stop counting (dispatcher)
    LOW_PAY = "low_pay"                          # median effective hourly pay below the floor (dispatcher)
    GOLD_MINED = "gold_mined"                    # an item trusted workers agree on, as hidden gold (monitor)
    WORKER_QUALITY = "worker_quality"            # a snapshot of a worker's record on a project (dispatcher)
    LOW_AGREEMENT = "low_agreement"              # the monitor's quality alerts (monitor/alerts.py)
    LOW_WORKER_ACCURACY = "low_worker_accuracy"
    LOW_MODEL_ACCURACY = "low_model_accuracy"
    LOW_THROUGHPUT = "low_throughput"
    SLOW_TASKS = "slow_tasks"
    RUSHED_TASKS = "rushed_tasks"


# Top-level defaults: given to a field left unset (zero) when a project is applied.
DEFAULTS: dict[str, Any] = {
    "task": TaskKind.SINGLE_LABEL.value, "overlap": 3, "model": "encoder_fewshot", "auto_accept_threshold": 0.9,
    "routing_strategy": RoutingStrategy.THRESHOLD.value, "target_accuracy": 0.95, "confidence_level": 0.95,
    "accuracy_bound": AccuracyBound.WILSON.value, "min_verified": 100, "refit_every": 50,
    "overflow": Overflow.PEOPLE.value, "overlap_near_threshold": 2,
    "aggregation": AggregationMethod.MAJORITY_VOTE.value, "posterior_bound": 0.95, "head_refit_growth": 1.0,
}
EXTRA_OVERLAP = 2  # max_overlap, unset, is overlap + this: room for dynamic overlap
# The worker policy's defaults (qualification, gold, blocking, fraud, pay, breaks): the fields
# not named here default to zero, which means "off".
DEFAULT_WORKER_POLICY = events_pb2.WorkerPolicy(
    block_confidence=0.9, min_gold_to_block=4, trusted_after=20, pay_policy=PayPolicy.ALERT.value,
    break_minutes=10.0)


def resolve(spec: events_pb2.ProjectSpec) -> events_pb2.ProjectSpec:
    """A copy of `spec` with every unset field given its default (idempotent)."""
    resolved = events_pb2.ProjectSpec()
    resolved.CopyFrom(spec)
    resolved.schema_version = events_pb2.SCHEMA_VERSION_1
    if is_preference(resolved) and not resolved.model:
        # The language model judges preferences; the encoder's head learns classes (and, for
        # multi_label projects, one-vs-rest label sets: the DEFAULTS model).
        resolved.model = PREFERENCE_MODEL
    for name, default in DEFAULTS.items():
        if not getattr(resolved, name):
            setattr(resolved, name, default)
    if not resolved.max_overlap:
        resolved.max_overlap = resolved.overlap + EXTRA_OVERLAP
    for field, default in DEFAULT_WORKER_POLICY.ListFields():
        if not getattr(resolved.workers, field.name):
            setattr(resolved.workers, field.name, default)
    if is_preference(resolved):
        if not resolved.responses_per_item:
            resolved.responses_per_item = 2 if resolved.task == TaskKind.PAIRWISE else DEFAULT_BEST_OF_N
        if not resolved.labels and 2 <= resolved.responses_per_item <= MAX_RESPONSES:
            resolved.labels.extend(choice_labels(resolved.responses_per_item, resolved.allow_ties))
    return resolved


def label_problem(label: str) -> str | None:
    """What is wrong with a label name (a phrase to follow the field's name), or None."""
    if not label.strip():
        return "is empty: name the label"
    if len(label) > MAX_LABEL_CHARS:
        return f"is {len(label)} characters; the limit is {MAX_LABEL_CHARS}: use a shorter name"
    unsafe = unsafe_character(label, identifier=False)
    if unsafe is not None:
        return f"{shown(label)} contains {unsafe}: remove it"
    return None


def validate(spec: events_pb2.ProjectSpec) -> list[str]:
    """Every problem with a (resolved) project spec, as sentences; empty when it is valid."""
    problems = []
    if not PROJECT_ID_PATTERN.fullmatch(spec.project_id):
        problems.append("project_id must be 1-64 letters, digits, '_' or '-', starting with a letter or digit")
    if spec.task not in set(TaskKind):
        problems.append(f"task must be one of {[t.value for t in TaskKind]}, not {shown(spec.task)}")
    else:
        problems += _TASK_RULES[TaskKind(spec.task)](spec)
    for name in ("name", "instructions"):
        problem = text_problem(getattr(spec, name))
        if problem is not None:
            problems.append(f"{name} {problem}")
    if not 0.0 < spec.auto_accept_threshold <= 1.0:
        problems.append("auto_accept_threshold must be in (0, 1]")
    if spec.overlap < 1:
        problems.append("overlap must be at least 1")
    if spec.max_overlap < spec.overlap:
        problems.append("max_overlap must be at least overlap")
    if not spec.model:
        problems.append("model must name a Triton model, e.g. encoder_fewshot")
    if spec.max_text_bytes < 0:
        problems.append("max_text_bytes must not be negative")
    if (spec.responses_per_item or spec.allow_ties) and not is_preference(spec):
        problems.append(f"responses_per_item and allow_ties are for pairwise and best_of_n projects, not "
                        f"{shown(spec.task)}")
    if (spec.max_labels_per_item or spec.none_label) and not is_multi_label(spec):
        problems.append(f"max_labels_per_item and none_label are for multi_label projects, not {shown(spec.task)}")
    for label, guideline in spec.label_guidelines.items():
        if label not in spec.labels:
            problems.append(f"label_guidelines names {shown(label)}, which is not one of the labels")
        problem = text_problem(guideline)
        if problem is not None:
            problems.append(f"label_guidelines[{shown(label)}] {problem}")
    return problems + _routing_problems(spec) + _worker_problems(spec)


def _label_list_problems(spec: events_pb2.ProjectSpec) -> list[str]:
    problems = []
    if len(spec.labels) < 2 or len(set(spec.labels)) != len(spec.labels):
        problems.append("labels must list at least two distinct labels")
    for i, label in enumerate(spec.labels):
        problem = label_problem(label)
        if problem is not None:
            problems.append(f"labels[{i}] {problem}")
    return problems


def _example_text_problems(spec: events_pb2.ProjectSpec) -> list[str]:
    problems = []
    for i, example in enumerate(spec.examples):
        problem = text_problem(example.text)
        if problem is not None:
            problems.append(f"examples[{i}].text {problem}")
        elif not example.text.strip():
            problems.append(f"examples[{i}].text is empty")
    return problems


def _single_label_problems(spec: events_pb2.ProjectSpec) -> list[str]:
    problems = _label_list_problems(spec)
    for i, example in enumerate(spec.examples):
        if example.label not in spec.labels:
            problems.append(f"examples[{i}].label {shown(example.label)} is not one of the labels")
        if example.labels:
            problems.append(f"examples[{i}].labels is for multi_label projects; give one label")
    return problems + _example_text_problems(spec)


def _multi_label_problems(spec: events_pb2.ProjectSpec) -> list[str]:
    problems = _label_list_problems(spec)
    if spec.max_labels_per_item < 0:
        problems.append("max_labels_per_item must not be negative (0: no cap)")
    if spec.none_label:
        problem = label_problem(spec.none_label)
        if problem is not None:
            problems.append(f"none_label {problem}")
        elif spec.none_label in spec.labels:
            problems.append(f"none_label {shown(spec.none_label)} names the empty set; it must not be one of the "
                            "labels")
    if spec.model == PREFERENCE_MODEL or PREFERENCE_MODEL in spec.models:
        # The causal LM scores one label among several (softmax); it has no per-label yes/no yet.
        problems.append(f"multi_label projects need independent per-label probabilities: use encoder_fewshot "
                        f"(its one-vs-rest head), not {PREFERENCE_MODEL}")
    if spec.aggregation not in MULTI_LABEL_AGGREGATIONS:
        problems.append(f"aggregation of a multi_label project must be one of {list(MULTI_LABEL_AGGREGATIONS)} "
                        f"(per label), not {shown(spec.aggregation)}")
    for i, example in enumerate(spec.examples):
        if example.label:
            problems.append(f"examples[{i}].label: a multi_label example gives its set as labels, not label")
            continue
        problem = label_set_problem(list(example.labels), spec)
        if problem is not None:
            problems.append(f"examples[{i}].labels: {problem[1]}")
    return problems + _example_text_problems(spec)


def _preference_problems(spec: events_pb2.ProjectSpec) -> list[str]:
    problems = []
    n = spec.responses_per_item
    if spec.task == TaskKind.PAIRWISE and n != 2:
        problems.append(f"responses_per_item is {n}; a pairwise project compares 2 (use best_of_n for more)")
    elif not 2 <= n <= MAX_RESPONSES:
        problems.append(f"responses_per_item is {n}; best_of_n compares 2 to {MAX_RESPONSES} responses")
    else:
        expected = choice_labels(n, spec.allow_ties)
        if list(spec.labels) != expected:
            problems.append(f"labels of a {spec.task} project are its choices {expected}; leave labels out "
                            "(they follow from responses_per_item and allow_ties)")
    if spec.examples:
        problems.append(f"examples are for single_label projects; a {spec.task} project takes none")
    return problems


# The rules of each task kind's own fields.
_TASK_RULES: dict[TaskKind, Callable[[events_pb2.ProjectSpec], list[str]]] = {
    TaskKind.SINGLE_LABEL: _single_label_problems,
    TaskKind.PAIRWISE: _preference_problems,
    TaskKind.BEST_OF_N: _preference_problems,
    TaskKind.MULTI_LABEL: _multi_label_problems,
}


def _choices(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


def _worker_problems(spec: events_pb2.ProjectSpec) -> list[str]:
    problems = []
    if spec.aggregation not in set(AggregationMethod):
        problems.append(f"aggregation must be one of {_choices(AggregationMethod)}, not {shown(spec.aggregation)}")
    if not 0.5 <= spec.posterior_bound < 1.0:
        problems.append("posterior_bound must be in [0.5, 1)")
    w = spec.workers
    shares = {"qualification_accuracy": w.qualification_accuracy, "block_accuracy": w.block_accuracy,
              "block_confidence": w.block_confidence, "gold_rate_new": w.gold_rate_new,
              "gold_rate_trusted": w.gold_rate_trusted, "gold_rate_suspect": w.gold_rate_suspect,
              "max_position_share": w.max_position_share, "max_shortcut_share": w.max_shortcut_share}
    problems += [f"workers.{name} must be in [0, 1]" for name, value in shares.items() if not 0.0 <= value <= 1.0]
    counts = {"qualification_tasks": w.qualification_tasks, "min_gold_to_block": w.min_gold_to_block,
              "trusted_after": w.trusted_after, "max_constant_streak": w.max_constant_streak}
    problems += [f"workers.{name} must not be negative" for name, value in counts.items() if value < 0]
    amounts = {"min_seconds_per_task": w.min_seconds_per_task, "min_hourly_wage": w.min_hourly_wage,
               "max_continuous_minutes": w.max_continuous_minutes, "break_minutes": w.break_minutes}
    problems += [f"workers.{name} must not be negative" for name, value in amounts.items() if value < 0]
    if w.pay_policy not in set(PayPolicy):
        problems.append(f"workers.pay_policy must be one of {_choices(PayPolicy)}")
    if w.min_hourly_wage and not spec.pay_per_answer:
        problems.append("workers.min_hourly_wage needs pay_per_answer (the pay it adjusts)")
    return problems


def _routing_problems(spec: events_pb2.ProjectSpec) -> list[str]:
    problems = []
    if spec.routing_strategy not in set(RoutingStrategy):
        problems.append(f"routing_strategy must be one of {_choices(RoutingStrategy)}, "
                        f"not {shown(spec.routing_strategy)}")
    elif spec.routing_strategy != RoutingStrategy.THRESHOLD:
        if not 0.5 <= spec.target_accuracy < 1.0:
            problems.append("target_accuracy must be in [0.5, 1)")
        if not 0.5 <= spec.confidence_level < 1.0:
            problems.append("confidence_level must be in [0.5, 1)")
        if spec.accuracy_bound not in set(AccuracyBound):
            problems.append(f"accuracy_bound must be one of {_choices(AccuracyBound)}")
        if spec.min_verified < 10:
            problems.append("min_verified must be at least 10: thresholds need verified items")
        if spec.refit_every < 1:
            problems.append("refit_every must be at least 1")
    if not 0.0 <= spec.explore_fraction <= 0.5:
        problems.append("explore_fraction must be in [0, 0.5]")
    if not 0.0 <= spec.human_fraction_cap <= 1.0:
        problems.append("human_fraction_cap must be in [0, 1] (0: no cap)")
    if spec.budget_per_hour < 0 or spec.pay_per_answer < 0:
        problems.append("budget_per_hour and pay_per_answer must not be negative")
    if spec.budget_per_hour and not spec.pay_per_answer:
        problems.append("budget_per_hour needs pay_per_answer to count spend")
    if spec.overflow not in set(Overflow):
        problems.append(f"overflow must be one of {_choices(Overflow)}")
    if not 0.0 <= spec.overlap_margin < 1.0:
        problems.append("overlap_margin must be in [0, 1) (0: the model never votes beside people)")
    if spec.models and (len(set(spec.models)) != len(spec.models) or not all(spec.models)):
        problems.append("models must list distinct Triton model names (two or more voters)")
    if spec.model_version and not spec.model_version.isdigit():
        problems.append("model_version must be a Triton version number, or empty for the latest")
    if spec.head_refit_every < 0:
        problems.append("head_refit_every must not be negative (0: never refit)")
    if spec.head_refit_growth < 1.0:
        problems.append("head_refit_growth must be at least 1 (1: a refit every head_refit_every labels)")
    if spec.overlap_margin and spec.overlap_near_threshold < 2:
        problems.append("overlap_near_threshold must be at least 2 (the model and one person)")
    return problems
