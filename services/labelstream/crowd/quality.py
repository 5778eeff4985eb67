"""Worker quality: qualification, hidden-gold rate, Bayesian accuracy, blocking and anti-fraud
signals. Plain functions on a worker's record; no I/O, so the service, the Snow replay and the
tests all run the same rules.

A worker's record per project is a flat dict of counters (stored as one document, updated with
$set/$inc only), so the same code works on the store's document and on an in-memory one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from scipy.stats import beta

from labelstream.common.projects import resolve
from labelstream.v1 import events_pb2

QUALIFYING, ACTIVE, BLOCKED = "qualifying", "active", "blocked"
RECENT_GOLD = 10       # gold outcomes remembered for "recent accuracy dipped"
RECENT_ANSWERS = 20    # answers remembered for position and shortcut signals
PRIOR = (1.0, 1.0)     # Beta prior on a worker's accuracy: uniform, so gold decides



def effective_policy(spec: events_pb2.ProjectSpec | None) -> events_pb2.WorkerPolicy:
    """The project's worker policy, its unset fields given the contract's defaults (a project is
    stored resolved; this also covers a spec built in code, e.g. a replay's)."""
    return resolve(spec if spec is not None else events_pb2.ProjectSpec()).workers


def new_record(project_id: str, worker_id: str, policy: events_pb2.WorkerPolicy) -> dict:
    return {
        "project_id": project_id, "worker_id": worker_id,
        "status": QUALIFYING if policy.qualification_tasks > 0 else ACTIVE,
        "gold_correct": 0, "gold_wrong": 0, "recent_gold": "",
        "anti_gold_correct": 0, "anti_gold_wrong": 0,
        "tasks_done": 0, "work_ms": 0, "earnings": 0.0, "fast_answers": 0,
        "last_label": "", "streak": 0, "recent_positions": "", "recent_shortcut": "", "recent_shortest": "",
        "fraud_signals": [], "flags": [], "blocked_reason": "",
    }


def accuracy_posterior(record: dict) -> tuple[float, float]:
    """Beta posterior (a, b) of the worker's accuracy on gold."""
    return PRIOR[0] + record["gold_correct"], PRIOR[1] + record["gold_wrong"]


def gold_accuracy(record: dict) -> float:
    a, b = accuracy_posterior(record)
    return a / (a + b) if record["gold_correct"] + record["gold_wrong"] else math.nan


def is_suspect(record: dict, policy: events_pb2.WorkerPolicy) -> bool:
    """Recent gold accuracy dipped below the block bound, or a fraud signal is on."""
    # fraud_signals are recomputed on every answer; flags come from outside (the monitor's alerts)
    if record["fraud_signals"] or record.get("flags"):
        return True
    recent = record["recent_gold"]
    return (policy.block_accuracy > 0 and len(recent) >= 4
            and recent.count("1") / len(recent) < policy.block_accuracy)


def gold_rate(record: dict, policy: events_pb2.WorkerPolicy) -> float:
    """Share of this worker's leases that are hidden gold."""
    if record["status"] == QUALIFYING:
        return 1.0
    if is_suspect(record, policy):
        return max(policy.gold_rate_suspect, policy.gold_rate_new)
    answered = record["gold_correct"] + record["gold_wrong"]
    return policy.gold_rate_new if answered < policy.trusted_after else policy.gold_rate_trusted


def wants_gold(record: dict, policy: events_pb2.WorkerPolicy, rng: random.Random) -> bool:
    return rng.random() < gold_rate(record, policy)


def record_gold(record: dict, correct: bool, policy: events_pb2.WorkerPolicy,
                anti_shortcut: bool = False) -> dict:
    """The fields to $set after a gold answer (status may become active or blocked).
    `anti_shortcut`: the gold item is one no shortcut answers right (answers_no_shortcut)."""
    gold_correct = record["gold_correct"] + int(correct)
    gold_wrong = record["gold_wrong"] + int(not correct)
    anti = {"anti_gold_correct": record.get("anti_gold_correct", 0) + int(anti_shortcut and correct),
            "anti_gold_wrong": record.get("anti_gold_wrong", 0) + int(anti_shortcut and not correct)}
    updated = {**record, **anti, "gold_correct": gold_correct, "gold_wrong": gold_wrong,
               "recent_gold": (record["recent_gold"] + ("1" if correct else "0"))[-RECENT_GOLD:]}
    answered = gold_correct + gold_wrong
    status, reason = record["status"], record["blocked_reason"]
    if status != BLOCKED and follows_shortcut(updated, policy):
        status, reason = BLOCKED, (
            f"gold against the shortcuts {anti['anti_gold_correct']}/{sum(anti.values())} right: the answers "
            f"follow the first, longest or shortest option, not the content (P(accuracy < "
            f"{SHORTCUT_BLOCK_BELOW:.2f}) above {SHORTCUT_BLOCK_CONFIDENCE:.2f} on those items)")
    elif status == QUALIFYING and answered >= policy.qualification_tasks:
        if gold_correct / answered >= policy.qualification_accuracy:
            status = ACTIVE
        else:
            status, reason = BLOCKED, (f"failed qualification: {gold_correct}/{answered} gold answers right, "
                                       f"{policy.qualification_accuracy:.0%} needed")
    elif status == ACTIVE and should_block(updated, policy):
        status, reason = BLOCKED, (f"gold accuracy {gold_correct}/{answered}: P(accuracy < "
                                   f"{policy.block_accuracy:.2f}) above {policy.block_confidence:.2f}")
    return {"gold_correct": gold_correct, "gold_wrong": gold_wrong, "recent_gold": updated["recent_gold"],
            **anti, "status": status, "blocked_reason": reason}


# A worker who follows a shortcut answers the gold items that no shortcut answers right nearly
# never: their accuracy there sits far under chance, where an honest worker's sits near their
# overall accuracy. Blocking on that subset alone catches them within a few such items, and at
# chance with 95% confidence an honest worker at 0.8 is almost never caught (0 of 4, 1 of 7...).
SHORTCUT_BLOCK_BELOW = 0.5
SHORTCUT_BLOCK_CONFIDENCE = 0.95


def follows_shortcut(record: dict, policy: events_pb2.WorkerPolicy) -> bool:
    """Confidently under chance on the gold items no shortcut answers right (in any status, so
    that a shortcut cannot pass qualification on the gold it happens to answer right)."""
    right, wrong = record.get("anti_gold_correct", 0), record.get("anti_gold_wrong", 0)
    if policy.block_accuracy <= 0 or right + wrong < max(1, policy.min_gold_to_block):
        return False
    return float(beta.cdf(SHORTCUT_BLOCK_BELOW, PRIOR[0] + right, PRIOR[1] + wrong)) > SHORTCUT_BLOCK_CONFIDENCE


def should_block(record: dict, policy: events_pb2.WorkerPolicy) -> bool:
    """Block once the posterior is confident the worker is below the project's bound."""
    if policy.block_accuracy <= 0:
        return False
    answered = record["gold_correct"] + record["gold_wrong"]
    if answered < max(1, policy.min_gold_to_block):
        return False
    a, b = accuracy_posterior(record)
    return float(beta.cdf(policy.block_accuracy, a, b)) > policy.block_confidence


@dataclass(frozen=True)
class AnswerFacts:
    """What the dispatcher knows about one answer, for the fraud signals.

    The signals are about what the worker saw: `position` is the displayed position of the chosen
    option (0-based; -1 when the answer is none of the options, such as a tie) and
    `option_lengths` the length of each displayed option. Both default to the label list itself
    (a classification task shows its labels in the project's order); a preference task shows the
    responses in an order drawn per worker and task, and passes both."""
    label: str
    labels: list[str]
    duration_ms: int
    position: int | None = None
    option_lengths: list[int] | None = None
    # A multi-label answer's set (its labels); `label` is then the set's key. The set signals
    # (always none, always all, always the same set) watch these; position and option-length
    # signals do not apply (a set has no position).
    label_set: list[str] | None = None

    def shown(self) -> tuple[int, list[int]]:
        position = self.position if self.position is not None else (
            self.labels.index(self.label) if self.label in self.labels else -1)
        lengths = self.option_lengths if self.option_lengths is not None else [len(x) for x in self.labels]
        return position, lengths


@dataclass
class AnswerUpdate:
    fields: dict = field(default_factory=dict)
    increments: dict = field(default_factory=dict)

    def applied_to(self, record: dict) -> dict:
        """The record as it reads once the update is written ($set fields, $inc increments)."""
        return {**record, **self.fields, **{key: record[key] + value for key, value in self.increments.items()}}


def _shortcut_history(history: str, position: int, lengths: list[int], pick: Callable[[list[int]], int]) -> str:
    """Append whether the answer took the shortcut (the one option of extreme length) when the
    options had exactly one; an answer that is no option (a tie) or options without one leave it."""
    if position < 0 or len(lengths) < 2:
        return history
    extreme = pick(lengths)
    if sum(length == extreme for length in lengths) != 1:
        return history
    return (history + ("1" if lengths[position] == extreme else "0"))[-RECENT_ANSWERS:]


def record_answer(record: dict, facts: AnswerFacts, pay: float,
                  policy: events_pb2.WorkerPolicy) -> AnswerUpdate:
    """Counters and fraud signals after any answer (real or gold)."""
    position, lengths = facts.shown()
    streak = record["streak"] + 1 if facts.label == record["last_label"] else 1
    positions = (record["recent_positions"] + ("1" if position == 0 else "0"))[-RECENT_ANSWERS:]
    longest = _shortcut_history(record["recent_shortcut"], position, lengths, max)
    shortest = _shortcut_history(record.get("recent_shortest", ""), position, lengths, min)
    fast = policy.min_seconds_per_task > 0 and facts.duration_ms < policy.min_seconds_per_task * 1000
    increments = {"tasks_done": 1, "work_ms": facts.duration_ms, "earnings": pay, "fast_answers": int(fast)}
    state = {**record, "streak": streak, "recent_positions": positions, "recent_shortcut": longest,
             "recent_shortest": shortest, "fast_answers": record["fast_answers"] + int(fast),
             "tasks_done": record["tasks_done"] + 1}
    fields = {"last_label": facts.label, "streak": streak, "recent_positions": positions,
              "recent_shortcut": longest, "recent_shortest": shortest,
              "fraud_signals": fraud_signals(state, len(lengths), policy)}
    if facts.label_set is not None:
        # the last answers as lists of labels (a $set of the whole list: no $push, see STACK.md)
        recent = [*record.get("recent_sets", []), sorted(facts.label_set)][-RECENT_ANSWERS:]
        fields["recent_sets"] = recent
        fields["fraud_signals"] += set_fraud_signals(recent, facts.labels,
                                                     policy.max_shortcut_share or SET_SHORTCUT_SHARE)
    return AnswerUpdate(fields, increments)


def fraud_signals(record: dict, n_labels: int, policy: events_pb2.WorkerPolicy) -> list[str]:
    signals = []
    done = record["tasks_done"]
    if policy.min_seconds_per_task > 0 and done >= 5 and record["fast_answers"] / done > 0.5:
        signals.append("too_fast")
    if policy.max_constant_streak > 0 and record["streak"] >= policy.max_constant_streak:
        signals.append("constant_answers")
    positions = record["recent_positions"]
    # With k options an honest worker picks the first about 1/k of the time.
    if (policy.max_position_share > 0 and len(positions) >= RECENT_ANSWERS and n_labels > 1
            and positions.count("1") / len(positions) > policy.max_position_share):
        signals.append("position_bias")
    for history, signal in ((record["recent_shortcut"], "longest_option"),
                            (record.get("recent_shortest", ""), "shortest_option")):
        if (policy.max_shortcut_share > 0 and len(history) >= RECENT_ANSWERS
                and history.count("1") / len(history) > policy.max_shortcut_share):
            signals.append(signal)
    return signals


def hourly_rate(record: dict) -> float:
    hours = record["work_ms"] / 3_600_000
    return record["earnings"] / hours if hours > 0 else math.nan


def adjusted_pay(pay: float, median_rate: float, policy: events_pb2.WorkerPolicy) -> float | None:
    """The raised pay per answer when the median hourly rate is under the minimum wage; None
    when no change is due."""
    if policy.min_hourly_wage <= 0 or not median_rate or math.isnan(median_rate):
        return None
    if median_rate >= policy.min_hourly_wage:
        return None
    return round(pay * policy.min_hourly_wage / median_rate, 4)


# -- shortcuts and gold ------------------------------------------------------------------------
# Scale's lesson from labeling GPT-2 preferences: "pick the longest" was right often enough to
# pass the quality bar and paid far better than honest work. Gold drawn like the pool rewards any
# answer that tracks the pool's bias, so the draw is balanced against the shortcuts.
ANTI_SHORTCUT_SHARE = 0.5   # of gold draws, at least, on items a shortcut gets wrong (when there are any)


def shortcut_answers(labels: list[str]) -> set[str]:
    """A classification task's shortcuts: its first option and its longest one."""
    return {labels[0], max(labels, key=len)} if labels else set()


def item_shortcuts(labels: list[str], responses: Sequence[str] = ()) -> set[str]:
    """The answers a shortcut gives on this item: a preference item's longest response, and with
    three or more its shortest (each when it is unique), else the task's first and longest
    options. The first shown response is drawn per worker, so it is no fixed answer. With two
    responses the shortest is the other one: gold balanced against the longest is balanced
    against both."""
    if not responses:
        return shortcut_answers(labels)
    lengths = [len(r) for r in responses]
    extremes = [max(lengths)] + ([min(lengths)] if len(lengths) >= 3 else [])
    return {str(lengths.index(extreme) + 1) for extreme in extremes if lengths.count(extreme) == 1}


def answers_no_shortcut(gold: dict) -> bool:
    """Whether no shortcut gives this gold item's answer ({label, labels, responses?})."""
    return gold["label"] not in item_shortcuts(list(gold["labels"]), gold.get("responses") or ())


def gold_draw_weights(golds: Sequence[dict], share: float = ANTI_SHORTCUT_SHARE) -> list[float]:
    """Draw weights for gold items ({label, labels, weight, responses?}): each item's own weight,
    with the items no shortcut answers scaled up together until they take at least `share` of
    the draws. With a pool whose best response is the longest 75% of the time, gold drawn as the
    pool is answers 75% right for a worker who always picks the longest; balanced at 0.5, the
    longest- and the shortest-picker both answer gold at chance."""
    return balanced_weights([float(g.get("weight") or 1.0) for g in golds],
                            [answers_no_shortcut(g) for g in golds], share)


def balanced_weights(weights: Sequence[float], anti: Sequence[bool], share: float) -> list[float]:
    anti_total = sum(w for w, a in zip(weights, anti, strict=True) if a)
    rest = sum(weights) - anti_total
    if anti_total <= 0 or rest <= 0 or anti_total / (anti_total + rest) >= share:
        return list(weights)
    scale = share * rest / ((1 - share) * anti_total)
    return [w * scale if a else w for w, a in zip(weights, anti, strict=True)]


# -- multi-label shortcuts ----------------------------------------------------------------------
# On a multi-label task (each answer a set of labels) the cheap answers are "none of these", every
# label, or one set whatever the item (e.g. always the most common label). Over a worker's last
# RECENT_ANSWERS answers an honest worker's shares stay far from 1: on GoEmotions (7 or 28 labels)
# with per-label sensitivity 0.7-0.9 and specificity 0.95-0.99, "none" is about a tenth of their
# answers, "all" never, and their most frequent set (just "neutral") a third at most.
SET_SHORTCUT_SHARE = 0.8   # default bound for the set signals when the project sets none


def _last(answers: Sequence[Collection[str]], last: int) -> list[frozenset[str]]:
    return [frozenset(a) for a in list(answers)[-last:]] if last > 0 else []


def none_share(answers: Sequence[Collection[str]], last: int = RECENT_ANSWERS) -> float:
    """Share of the last `last` answers that name no label (NaN without answers)."""
    recent = _last(answers, last)
    return sum(not a or a == {"none"} for a in recent) / len(recent) if recent else math.nan


def all_share(answers: Sequence[Collection[str]], labels: Collection[str], last: int = RECENT_ANSWERS) -> float:
    """Share of the last `last` answers that name every one of the project's labels."""
    recent = _last(answers, last)
    every = frozenset(labels)
    return sum(a >= every for a in recent) / len(recent) if recent else math.nan


def same_set_share(answers: Sequence[Collection[str]], last: int = RECENT_ANSWERS) -> float:
    """Share of the last `last` answers taken by the worker's most frequent set among them."""
    recent = _last(answers, last)
    if not recent:
        return math.nan
    counts: dict[frozenset[str], int] = {}
    for answer in recent:
        counts[answer] = counts.get(answer, 0) + 1
    return max(counts.values()) / len(recent)


def set_fraud_signals(answers: Sequence[Collection[str]], labels: Collection[str],
                      max_share: float = SET_SHORTCUT_SHARE, last: int = RECENT_ANSWERS) -> list[str]:
    """The set shortcuts a worker's last `last` answers show ("none_answers", "all_labels",
    "same_set"); nothing until `last` answers are in, as with the other share signals. A worker
    who always answers "none" also gives one set throughout: both signals are raised."""
    if max_share <= 0 or len(answers) < last:
        return []
    signals = []
    if none_share(answers, last) > max_share:
        signals.append("none_answers")
    if len(labels) > 1 and all_share(answers, labels, last) > max_share:
        signals.append("all_labels")
    if same_set_share(answers, last) > max_share:
        signals.append("same_set")
    return signals
