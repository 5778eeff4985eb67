"""Replay of real crowd workers (Snow et al. 2008, RTE): each simulated worker answers exactly as
the real one did, on the items they answered, under this project's worker rules (qualification,
hidden gold at a dynamic rate, Beta blocking with exclusion) and aggregation; optionally with
extra workers who answer at random. Any data set of (item, worker, answer) with gold replays the
same way: build a `CrowdData` with its labels (labelstream.simulation.ukp does, for UKPConvArg1's
preference choices).

It runs in process on the same rule code as the dispatcher (labelstream.crowd.quality) and
the aggregator (labelstream.crowd.decide), so thousands of answers replay in seconds; the
gRPC path is exercised by the synthetic workforce (labelstream.simulation.workforce).
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelstream.crowd import quality
from labelstream.crowd.dawid_skene import majority_vote_labels
from labelstream.crowd.decide import fit_project
from labelstream.v1 import events_pb2

SNOW_RTE = Path(__file__).resolve().parents[3] / "deploy" / "examples" / "crowd" / "snow2008" / \
    "rte.standardized.tsv"
LABELS = ["0", "1"]
FIRST_TASKS = 20  # "stopped within their first 20 tasks"

# New workers see only gold until they have answered 20 (a probation); blocking needs 12 gold
# answers and P(accuracy < 0.7) above 0.7. Chosen by a sweep on seeds 10-11 over bound, confidence,
# evidence, gold rate and probation length; the tests check it on seeds 0-2. A real worker whose
# items hold fewer than 12 gold ones is never blocked here: the replay cannot ask them more.
REPLAY_POLICY = events_pb2.WorkerPolicy(
    block_accuracy=0.7, block_confidence=0.7, min_gold_to_block=12, gold_rate_new=1.0, gold_rate_trusted=0.1,
    gold_rate_suspect=0.6, trusted_after=20)


@dataclass(frozen=True)
class CrowdData:
    answers: dict[str, list[tuple[str, str]]]   # worker -> [(item, label)] in the file's order
    gold: dict[str, str]                        # item -> true label; items without one are answered, not scored
    labels: tuple[str, ...] = tuple(LABELS)     # the label set, in the project's order


def load_snow(path: Path = SNOW_RTE) -> CrowdData:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the Snow 2008 crowd data ships in deploy/examples/crowd")
    answers: dict[str, list[tuple[str, str]]] = defaultdict(list)
    gold: dict[str, str] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            answers[row["!amt_worker_ids"]].append((row["orig_id"], row["response"]))
            gold[row["orig_id"]] = row["gold"]
    return CrowdData(dict(answers), gold)


@dataclass
class ReplayWorker:
    worker_id: str
    real: bool
    items: list[tuple[str, str]] = field(default_factory=list)  # real workers: what they answered
    record: dict = field(default_factory=dict)
    tasks: int = 0
    stopped_at: int | None = None   # tasks done when blocked


@dataclass
class ReplayResult:
    accuracy: float
    majority_accuracy: float
    answers_used: int
    gold_answers: int
    real_workers: int
    real_blocked: int
    extra_workers: int
    extra_stopped_within_20: int
    extra_stopped: int
    extra_votes_counted: int

    def as_dict(self) -> dict:
        return {**self.__dict__,
                "real_blocked_fraction": self.real_blocked / self.real_workers if self.real_workers else 0.0,
                "extra_stopped_within_20_fraction": (self.extra_stopped_within_20 / self.extra_workers
                                                     if self.extra_workers else 1.0)}


def replay(data: CrowdData, policy: events_pb2.WorkerPolicy = REPLAY_POLICY, extra_fraction: float = 0.0,
           gold_fraction: float = 0.2, method: str = "dawid_skene", seed: int = 0) -> ReplayResult:
    """Replay every real answer once through the rules; returns accuracy on the non-gold items."""
    rng = random.Random(seed)
    items = sorted(data.gold)
    gold_items = hidden_gold(data, gold_fraction, rng)
    workers = [ReplayWorker(w, True, rng.sample(a, len(a))) for w, a in sorted(data.answers.items())]
    extra = round(extra_fraction * len(workers))
    workers += [ReplayWorker(f"random-{i:03d}", False) for i in range(extra)]
    for worker in workers:
        worker.record = quality.new_record("replay", worker.worker_id, policy)
    votes: list[tuple[str, str, str]] = []
    gold_answers = 0
    active = list(workers)
    while active:
        worker = rng.choice(active)
        task = next_task(worker, gold_items, items, policy, rng)
        if task is None:
            active.remove(worker)
            continue
        item, is_gold = task
        label = answer_of(worker, item, rng, data.labels)
        worker.tasks += 1
        if is_gold:
            gold_answers += 1
            worker.record.update(quality.record_gold(worker.record, label == data.gold[item], policy))
            if worker.record["status"] == quality.BLOCKED:
                worker.stopped_at = worker.tasks
                active.remove(worker)
                continue
        else:
            votes.append((item, worker.worker_id, label))
        if not worker.real and worker.tasks >= 200:  # a random worker nobody stopped gives up eventually
            active.remove(worker)
    blocked = {w.worker_id for w in workers if w.stopped_at is not None}
    counted = [v for v in votes if v[1] not in blocked]   # excluded retroactively
    return ReplayResult(
        accuracy=aggregate_accuracy(counted, data.gold, method, data.labels),
        majority_accuracy=aggregate_accuracy(counted, data.gold, "majority_vote", data.labels),
        answers_used=len(counted), gold_answers=gold_answers,
        real_workers=sum(w.real for w in workers), real_blocked=sum(w.real and w.stopped_at is not None
                                                                   for w in workers),
        extra_workers=extra,
        extra_stopped_within_20=sum(not w.real and w.stopped_at is not None and w.stopped_at <= FIRST_TASKS
                                    for w in workers),
        extra_stopped=sum(not w.real and w.stopped_at is not None for w in workers),
        extra_votes_counted=sum(1 for v in counted if v[1].startswith("random-")))


def hidden_gold(data: CrowdData, gold_fraction: float, rng: random.Random) -> set[str]:
    """The items a replay uses as hidden gold, and so does not score: `replay(seed=s)` draws them
    first from `random.Random(s)`, so this with a fresh `random.Random(s)` gives the same set
    (to compare the replay with plain aggregation on the very items it scores)."""
    items = sorted(data.gold)
    return set(rng.sample(items, int(gold_fraction * len(items))))


def next_task(worker: ReplayWorker, gold_items: set[str], items: list[str], policy: events_pb2.WorkerPolicy,
              rng: random.Random) -> tuple[str, bool] | None:
    """What the dispatcher hands this worker next: hidden gold at the worker's gold rate, else
    real work. A replayed worker can only be given items the real one answered."""
    wants_gold = quality.wants_gold(worker.record, policy, rng)
    if worker.real:
        gold = [i for i, (item, _) in enumerate(worker.items) if item in gold_items]
        real = [i for i, (item, _) in enumerate(worker.items) if item not in gold_items]
        qualifying = worker.record["status"] == quality.QUALIFYING
        pool = gold if (wants_gold and gold) or qualifying else real or gold
        if not pool:
            if qualifying and worker.record["gold_correct"] + worker.record["gold_wrong"] > 0:
                # ran out of gold items before the qualification count: judge on what there was
                answered = worker.record["gold_correct"] + worker.record["gold_wrong"]
                ok = worker.record["gold_correct"] / answered >= policy.qualification_accuracy
                worker.record["status"] = quality.ACTIVE if ok else quality.BLOCKED
                if ok and real:
                    return next_task(worker, gold_items, items, policy, rng)
                if not ok:
                    worker.stopped_at = worker.tasks
            return None
        index = pool[0]
        item = worker.items[index][0]
        return item, item in gold_items
    if wants_gold or worker.record["status"] == quality.QUALIFYING:
        return rng.choice(sorted(gold_items)), True
    return rng.choice([i for i in items if i not in gold_items]), False


def answer_of(worker: ReplayWorker, item: str, rng: random.Random, labels: Sequence[str] = LABELS) -> str:
    if not worker.real:
        return rng.choice(list(labels))
    for index, (answered, label) in enumerate(worker.items):
        if answered == item:
            del worker.items[index]
            return label
    raise KeyError(f"{worker.worker_id} never answered item {item}")


def aggregate_accuracy(votes: list[tuple[str, str, str]], gold: dict[str, str], method: str,
                       labels: Sequence[str] = LABELS) -> float:
    """Accuracy against gold of the labels `method` gives the voted items; every vote enters the
    aggregation (Dawid-Skene learns from items without gold too), only items with gold are scored."""
    labels = list(labels)
    items = sorted({v[0] for v in votes})
    scored = [item for item in items if item in gold]
    if not scored:
        return float("nan")
    if method == "majority_vote":
        index = {item: i for i, item in enumerate(items)}
        predicted = majority_vote_labels(np.array([index[v[0]] for v in votes]),
                                         np.array([labels.index(v[2]) for v in votes]), len(items), len(labels))
        chosen = {item: labels[p] for p, item in zip(predicted, items, strict=True)}
    else:
        chosen = fit_project(labels, votes, method).labels_by_item()
    return float(np.mean([chosen[item] == gold[item] for item in scored]))
