"""UKPConvArg1 (Habernal & Gurevych, ACL 2016) as crowd data: 3,889 pairs of arguments from one
debate and stance, each judged by 5 Mechanical Turk workers ("which argument is more
convincing?"), with their choices mapped to the preference contract's labels ("1", "2", "tie").

`load_ukp` gives the answers as a `CrowdData`, so the Snow replay (labelstream.simulation.snow)
replays them under the project's worker rules and aggregation unchanged; `load_pairs` keeps each
pair's arguments, for rankings of arguments per debate (labelstream.crowd.preference).
Upstream's gold label is MACE's estimate from these same answers, so "accuracy" here is agreement
with MACE, and 149 pairs have none (their answers still enter every fit).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelstream.common.projects import TIE, choice_labels, reader_text
from labelstream.simulation.snow import REPLAY_POLICY, CrowdData
from labelstream.v1 import events_pb2

UKP_DIR = Path(__file__).resolve().parents[3] / "deploy" / "examples" / "preference" / "ukpconvarg1"
UKP_PAIRS = UKP_DIR / "pairs.jsonl.gz"
UKP_RANKS = UKP_DIR / "ranks.tsv"
LABELS = tuple(choice_labels(2, allow_ties=True))   # "1", "2", "tie"


def _replay_policy() -> events_pb2.WorkerPolicy:
    """The Snow replay's rules with a lower blocking bound. Against this gold, with three labels
    of which one ("tie") is a judgement call, honest workers are right about 0.77 of the time
    (the 146 with 20+ gold pairs, weighted by answers) and a random one 1/3; RTE's bound of 0.7
    blocks 9-16 of the busiest real workers and costs about 2 points of accuracy, while 0.6 still
    stops 99% of random workers within 20 tasks. Chosen on seeds 10-11 among 0.55-0.7 (best
    accuracy with no random vote counted); the tests check seeds 0-2."""
    policy = events_pb2.WorkerPolicy()
    policy.CopyFrom(REPLAY_POLICY)
    policy.block_accuracy = 0.6
    return policy


UKP_REPLAY_POLICY = _replay_policy()


@dataclass(frozen=True)
class Pair:
    pair_id: str
    debate: str
    arg1: str                          # argument ids
    arg2: str
    gold: str | None
    answers: tuple[tuple[str, str], ...]   # (worker, choice) in the file's order


def load_pairs(path: Path = UKP_PAIRS) -> list[Pair]:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: scripts/make_demo_data.py (make_ukpconvarg1) writes it")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [Pair(r["id"], r["debate"], r["arg1"]["id"], r["arg2"]["id"], r["gold"],
                 tuple((worker, choice) for worker, choice in r["answers"])) for r in rows]


def replay_items(path: Path = UKP_PAIRS, limit: int | None = None) -> list[dict]:
    """The pairs as items for the stack (items.raw JSON): the debate's topic and stance as the
    prompt, the two arguments as responses, the five workers who judged the pair as its
    annotators (so that the dispatcher leases it only to them) and upstream's gold label."""
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: scripts/make_demo_data.py (make_ukpconvarg1) writes it")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()][:limit]
    return [{"item_id": r["id"], "prompt": f"{r['topic']} ({r['stance']}): which argument is more convincing?",
             "responses": [r["arg1"]["text"], r["arg2"]["text"]],
             "annotators": [worker for worker, _ in r["answers"]],
             **({"gold_label": r["gold"]} if r["gold"] is not None else {})} for r in rows
            # one pair compares an argument with itself: ingest refuses it, so nobody could answer it
            if reader_text(r["arg1"]["text"]) != reader_text(r["arg2"]["text"])]


def recorded_answers(items: list[dict], path: Path = UKP_PAIRS) -> dict[str, dict[tuple[str, ...], str]]:
    """What each of the items' annotators answered, keyed by the pair's arguments in canonical order
    (what labelstream.simulation.workforce.ReplayWorkforce replays); a worker an item no longer names
    among its annotators gives it no answer."""
    pairs = {p.pair_id: p for p in load_pairs(path)}
    answers: dict[str, dict[tuple[str, ...], str]] = defaultdict(dict)
    for item in items:
        for worker, choice in pairs[item["item_id"]].answers:
            if worker in item["annotators"]:
                answers[worker][tuple(item["responses"])] = choice
    return dict(answers)


def load_ukp(path: Path = UKP_PAIRS) -> CrowdData:
    """Every answer, by worker in the file's order; gold where upstream has it."""
    answers: dict[str, list[tuple[str, str]]] = defaultdict(list)
    gold: dict[str, str] = {}
    for pair in load_pairs(path):
        for worker, choice in pair.answers:
            answers[worker].append((pair.pair_id, choice))
        if pair.gold is not None:
            gold[pair.pair_id] = pair.gold
    return CrowdData(dict(answers), gold, LABELS)


def load_ranks(path: Path = UKP_RANKS) -> dict[str, tuple[str, float]]:
    """argument id -> (debate, upstream's PageRank score: lower is more convincing)."""
    if not path.exists():
        return {}
    with path.open(encoding="utf-8") as handle:
        return {r["argument"]: (r["debate"], float(r["rank"])) for r in csv.DictReader(handle, delimiter="\t")}


@dataclass(frozen=True)
class Comparisons:
    """Every answer as a comparison of two arguments, for labelstream.crowd.preference."""
    arguments: list[str]        # index -> argument id
    debates: list[str]          # index -> its debate
    workers: list[str]          # index -> worker id
    left: np.ndarray            # [M] argument indices (arg1 of the pair)
    right: np.ndarray           # [M] (arg2)
    outcome: np.ndarray         # [M] left's share of the win: 1, 0, or 0.5 for a tie
    worker: np.ndarray          # [M] worker indices


def comparisons(pairs: list[Pair]) -> Comparisons:
    arguments = sorted({a for p in pairs for a in (p.arg1, p.arg2)})
    debate_of = {a: p.debate for p in pairs for a in (p.arg1, p.arg2)}
    workers = sorted({w for p in pairs for w, _ in p.answers})
    a_index = {a: i for i, a in enumerate(arguments)}
    w_index = {w: i for i, w in enumerate(workers)}
    share = {"1": 1.0, "2": 0.0, TIE: 0.5}
    rows = [(a_index[p.arg1], a_index[p.arg2], share[choice], w_index[worker])
            for p in pairs for worker, choice in p.answers]
    left, right, outcome, worker = (np.array(column) for column in zip(*rows, strict=True))
    return Comparisons(arguments, [debate_of[a] for a in arguments], workers, left.astype(np.int64),
                       right.astype(np.int64), outcome.astype(float), worker.astype(np.int64))
