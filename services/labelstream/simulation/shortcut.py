"""Scale's case, simulated: a preference pool where the best response is usually the longest,
and workers who always pick the longest. It runs the dispatcher's rule code in process
(labelstream.crowd.quality: qualification, the gold rate, Beta blocking, fraud signals, and the
balanced gold draw), as the Snow replay does, so that thousands of workers take seconds.

Each worker leases tasks one after another: gold while qualifying, then gold at the policy's
rate (raised when a fraud signal is on); every task shows the responses in an order drawn for
that worker. An honest worker picks the best response with their accuracy; a shortcut worker
picks the longest one shown. What is measured: the share of shortcut workers blocked within
their first `horizon` tasks, and of honest workers blocked at all, with the gold draw balanced
against the shortcut (quality.gold_draw_weights) and drawn as the pool is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from labelstream.common.projects import choice_labels
from labelstream.crowd import quality
from labelstream.v1 import events_pb2

# Qualification on 10 gold (6 right), gold on 70% of a new worker's tasks, blocking once
# P(accuracy < 0.7) > 0.8 after 4 gold; a longest-response share over 70% of 20 answers is a
# fraud signal (it raises the gold rate). Chosen on seeds 1 and 3 from sweeps of these settings
# before the block on gold against the shortcuts (quality.follows_shortcut) existed: 91.3% caught
# at 2.3% honest there. With that block, 99% are caught (benchmarks/shortcut_gold.py); the tests
# and benchmark use other seeds.
SCALE_POLICY = events_pb2.WorkerPolicy(
    qualification_tasks=10, qualification_accuracy=0.6, block_accuracy=0.7, block_confidence=0.8,
    min_gold_to_block=4, gold_rate_new=0.7, gold_rate_trusted=0.1, gold_rate_suspect=0.7, trusted_after=30,
    max_position_share=0.8, max_shortcut_share=0.7)


@dataclass(frozen=True)
class PreferenceItem:
    responses: tuple[str, str]
    best: str  # "1" or "2"


@dataclass(frozen=True)
class ShortcutOutcome:
    shortcut_workers: int
    shortcut_blocked_in_horizon: int
    honest_workers: int
    honest_blocked: int
    shortcut_answers_counted: int   # real (non-gold) answers of shortcut workers before they were blocked
    gold_share_anti_shortcut: float  # of gold draws, on items the longest response gets wrong

    @property
    def shortcut_caught(self) -> float:
        return self.shortcut_blocked_in_horizon / max(1, self.shortcut_workers)

    @property
    def honest_blocked_share(self) -> float:
        return self.honest_blocked / max(1, self.honest_workers)


def make_pool(n: int, longest_is_best: float, rng: random.Random) -> list[PreferenceItem]:
    """Pairs whose better response is the longer one in `longest_is_best` of the items."""
    items = []
    for i in range(n):
        short, long = "s" * rng.randint(20, 120), "l" * rng.randint(140, 600)
        best_long = rng.random() < longest_is_best
        long_first = rng.random() < 0.5
        responses = (long, short) if long_first else (short, long)
        best = ("1" if long_first else "2") if best_long else ("2" if long_first else "1")
        items.append(PreferenceItem((responses[0] + f"#{i}", responses[1] + f"#{i}"), best))
    return items


def simulate(seed: int = 0, items: int = 2000, gold_items: int = 200, longest_is_best: float = 0.8,
             honest: int = 400, shortcut: int = 100, tasks: int = 60, horizon: int = 20,
             honest_accuracy: tuple[float, float] = (0.8, 0.95), balanced: bool = True,
             policy: events_pb2.WorkerPolicy = SCALE_POLICY) -> ShortcutOutcome:
    rng = random.Random(seed)
    pool = make_pool(items, longest_is_best, rng)
    labels = choice_labels(2, False)
    golds = [{"label": item.best, "labels": labels, "weight": 1.0, "responses": item.responses,
              "index": i} for i, item in enumerate(pool[:gold_items])]
    for gold in golds:  # once, not on every draw as the dispatcher does (same rule)
        gold["anti"] = quality.answers_no_shortcut(gold)
    real = pool[gold_items:]
    share = quality.ANTI_SHORTCUT_SHARE if balanced else 0.0
    anti_draws = gold_draws = 0
    outcome = {"shortcut_blocked": 0, "honest_blocked": 0, "shortcut_answers": 0}
    for w in range(honest + shortcut):
        is_shortcut = w >= honest
        accuracy = rng.uniform(*honest_accuracy)
        record = quality.new_record("scale", f"w{w}", policy)
        seen: set[int] = set()
        for task in range(tasks):
            gold = None
            if quality.wants_gold(record, policy, rng):
                fresh = [g for g in golds if g["index"] not in seen]
                if fresh:
                    weights = quality.balanced_weights([1.0] * len(fresh), [g["anti"] for g in fresh], share)
                    gold = rng.choices(fresh, weights=weights)[0]
                    seen.add(gold["index"])
            item = PreferenceItem(gold["responses"], gold["label"]) if gold else rng.choice(real)
            order = rng.sample([0, 1], 2)
            shown_lengths = [len(item.responses[i]) for i in order]
            if is_shortcut:
                position = shown_lengths.index(max(shown_lengths))
            else:
                best_position = order.index(int(item.best) - 1)
                position = best_position if rng.random() < accuracy else 1 - best_position
            label = str(order[position] + 1)
            update = quality.record_answer(record, quality.AnswerFacts(label, labels, 8000, position,
                                                                       shown_lengths), 0.0, policy)
            record = update.applied_to(record)
            if gold is not None:
                gold_draws += 1
                anti_draws += gold["anti"]
                record.update(quality.record_gold(record, label == gold["label"], policy, gold["anti"]))
            elif is_shortcut:
                outcome["shortcut_answers"] += 1
            if record["status"] == quality.BLOCKED:
                if is_shortcut and task < horizon:
                    outcome["shortcut_blocked"] += 1
                elif not is_shortcut:
                    outcome["honest_blocked"] += 1
                break
    return ShortcutOutcome(shortcut, outcome["shortcut_blocked"], honest, outcome["honest_blocked"],
                           outcome["shortcut_answers"], anti_draws / max(1, gold_draws))
