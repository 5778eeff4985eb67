"""Answer aggregation on Snow et al. (2008) RTE and TEMP: this project against crowd-kit, in one process.

1. Accuracy against gold and wall time of majority vote, skill-weighted vote, one-coin and full
   Dawid-Skene (labelstream.crowd.dawid_skene) and of crowd-kit's MajorityVote,
   OneCoinDawidSkene and DawidSkene, with all answers and with 1, 3 and 5 answers per item (the
   first k answers of a seeded random order per item; the same rows for both libraries; averaged
   over seeds). Our times include turning the string ids into indices; crowd-kit's start from its
   DataFrame input.
2. The per-vote incremental posterior update (ItemPosterior.add_vote) over every vote of RTE, with
   confusions from a full fit: p50/p99 in microseconds.
3. Dynamic overlap on an RTE replay: each item's answers arrive in the seeded order; every item
   starts with `min` answers; in rounds, DS is re-fitted (warm-started) on everything collected so
   far (no gold anywhere in the loop), items whose top posterior reaches the bound stop with that
   label, the rest get one more answer, up to 10. Compared with a fixed overlap of 5 (DS on the
   first 5 answers). The bound is chosen on TEMP (fewest answers with accuracy >= TEMP's fixed-5),
   then applied to RTE, so RTE's headline figure is not tuned on RTE's gold; both sweeps are shown.

Writes reports/benchmarks/aggregation.json and prints tables.
Usage: python scripts/benchmarks/aggregation.py [--seeds 5] [--out reports/benchmarks/aggregation.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from crowdkit.aggregation import DawidSkene, MajorityVote, OneCoinDawidSkene
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from labelstream.crowd import dawid_skene as ds

REPO_ROOT = Path(__file__).resolve().parents[2]
SNOW = REPO_ROOT / "deploy" / "examples" / "crowd" / "snow2008"
OUT = REPO_ROOT / "reports" / "benchmarks" / "aggregation.json"
DATASETS = ("rte", "temp")
SETTINGS = (0, 1, 3, 5)            # answers per item; 0 = all
BOUNDS = (0.9, 0.95, 0.99, 0.995, 0.999, 0.9999)
MIN_ANSWERS = (2, 3)
MAX_ANSWERS = 10
FIXED_OVERLAP = 5


@dataclass
class Crowd:
    """One Snow data set as string columns (one row per answer) plus gold per item."""
    tasks: np.ndarray
    workers: np.ndarray
    labels: np.ndarray
    gold: dict[str, str]

    def rows(self, keep: np.ndarray) -> Crowd:
        return Crowd(self.tasks[keep], self.workers[keep], self.labels[keep], self.gold)


def load(name: str) -> Crowd:
    with (SNOW / f"{name}.standardized.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    gold = {r["orig_id"]: r["gold"] for r in rows}
    return Crowd(np.array([r["orig_id"] for r in rows]), np.array([r["!amt_worker_ids"] for r in rows]),
                 np.array([r["response"] for r in rows]), gold)


def arrival_rank(tasks: np.ndarray, seed: int) -> np.ndarray:
    """Per answer, its position in a seeded random arrival order within its item (0 = first)."""
    rng = np.random.default_rng(seed)
    _, items = np.unique(tasks, return_inverse=True)
    order = rng.permutation(len(tasks))
    order = order[np.argsort(items[order], kind="stable")]      # grouped by item, random within
    sorted_items = items[order]
    starts = np.searchsorted(sorted_items, sorted_items, side="left")
    rank = np.empty(len(tasks), dtype=np.int64)
    rank[order] = np.arange(len(tasks)) - starts
    return rank


# ---------------------------------------------------------------------------------------------
# The two libraries, each from its natural input, returning {task: label}


@dataclass
class Encoded:
    item_ids: np.ndarray
    classes: np.ndarray
    items: np.ndarray
    workers: np.ndarray
    labels: np.ndarray
    n_workers: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.item_ids), self.n_workers, len(self.classes)


def encode(crowd: Crowd) -> Encoded:
    item_ids, items = np.unique(crowd.tasks, return_inverse=True)
    worker_ids, workers = np.unique(crowd.workers, return_inverse=True)
    classes, labels = np.unique(crowd.labels, return_inverse=True)
    return Encoded(item_ids, classes, items, workers, labels, len(worker_ids))


def ours(method: str) -> Callable[[Crowd], dict[str, str]]:
    def run(crowd: Crowd) -> dict[str, str]:
        e = encode(crowd)
        n_items, n_workers, n_classes = e.shape
        if method == "majority_vote":
            predicted = ds.majority_vote_labels(e.items, e.labels, n_items, n_classes)
        elif method == "weighted_vote":
            reference = ds.leave_one_out_majority(e.items, e.labels, n_items, n_classes)
            accuracy = ds.accuracy_against(e.workers, e.labels, reference, n_workers)
            weights = ds.skill_weights(accuracy, n_classes)[e.workers]
            predicted = ds.weighted_vote_labels(e.items, e.labels, weights, n_items, n_classes)
        else:
            model = ds.fit_dawid_skene(e.items, e.workers, e.labels, n_items, n_workers, n_classes, method=method)
            predicted = model.labels()
        return dict(zip(e.item_ids.tolist(), e.classes[predicted].tolist(), strict=True))
    return run


def crowdkit(make: Callable[[], Any]) -> Callable[[pd.DataFrame], dict[str, str]]:
    def run(frame: pd.DataFrame) -> dict[str, str]:
        return make().fit_predict(frame).to_dict()
    return run


METHODS: list[tuple[str, str, Callable]] = [
    ("labelstream", "majority_vote", ours("majority_vote")),
    ("labelstream", "weighted_vote", ours("weighted_vote")),
    ("labelstream", "one_coin_ds", ours("one_coin")),
    ("labelstream", "full_ds", ours("full")),
    ("crowd-kit", "majority_vote", crowdkit(MajorityVote)),
    ("crowd-kit", "one_coin_ds", crowdkit(lambda: OneCoinDawidSkene(n_iter=100))),
    ("crowd-kit", "full_ds", crowdkit(lambda: DawidSkene(n_iter=100))),
]


def accuracy(predicted: dict[str, str], gold: dict[str, str]) -> float:
    return float(np.mean([predicted.get(task) == label for task, label in gold.items() if task in predicted]))


def compare(crowds: dict[str, Crowd], seeds: int, progress: Progress) -> list[dict[str, Any]]:
    runs: dict[tuple[str, int, str, str], list[tuple[float, float]]] = {}
    task = progress.add_task("aggregation", total=len(crowds) * len(SETTINGS) * seeds)
    for name, crowd in crowds.items():
        for seed in range(seeds):
            rank = arrival_rank(crowd.tasks, seed)
            for k in SETTINGS:
                subset = crowd.rows(rank < k) if k else crowd
                frame = pd.DataFrame({"task": subset.tasks, "worker": subset.workers, "label": subset.labels})
                for library, method, run in METHODS:
                    data = frame if library == "crowd-kit" else subset
                    start = time.perf_counter()
                    predicted = run(data)
                    elapsed = time.perf_counter() - start
                    runs.setdefault((name, k, library, method), []).append((accuracy(predicted, crowd.gold), elapsed))
                progress.advance(task)
    rows = []
    for (name, k, library, method), values in runs.items():
        acc, secs = np.array(values).T
        rows.append({"dataset": name, "answers_per_item": k or "all", "library": library, "method": method,
                     "accuracy": round(float(acc.mean()), 4), "accuracy_std": round(float(acc.std()), 4),
                     "wall_ms": round(float(np.median(secs)) * 1000, 2), "runs": len(values)})
    return rows


def warm_up(crowd: Crowd) -> None:
    """First calls pay for imports and caches in both libraries; keep that out of the timings."""
    frame = pd.DataFrame({"task": crowd.tasks, "worker": crowd.workers, "label": crowd.labels})
    for library, _, run in METHODS:
        run(frame if library == "crowd-kit" else crowd)


# ---------------------------------------------------------------------------------------------
# Per-vote incremental update


def incremental_latency(crowd: Crowd, seed: int = 0) -> dict[str, Any]:
    e = encode(crowd)
    n_items, n_workers, n_classes = e.shape
    model = ds.fit_dawid_skene(e.items, e.workers, e.labels, n_items, n_workers, n_classes, method="full")
    order = np.lexsort((arrival_rank(crowd.tasks, seed), e.items))
    states = [ds.ItemPosterior(model) for _ in range(n_items)]
    votes: list[list[tuple[int, int]]] = [[] for _ in range(n_items)]
    add_ns, recompute_ns = [], []
    clock = time.perf_counter_ns
    for j in order.tolist():
        item, worker, label = int(e.items[j]), int(e.workers[j]), int(e.labels[j])
        state = states[item]
        start = clock()
        state.add_vote(worker, label)
        add_ns.append(clock() - start)
        votes[item].append((worker, label))
        start = clock()
        ds.posterior_from_votes(model, votes[item])
        recompute_ns.append(clock() - start)
    incremental = np.array([s.probabilities for s in states])
    batch = ds.predict_posteriors(model, e.items, e.workers, e.labels, n_items)

    def summary(ns: list[int]) -> dict[str, float]:
        us = np.array(ns) / 1000
        return {"p50": round(float(np.percentile(us, 50)), 2), "p99": round(float(np.percentile(us, 99)), 2),
                "max": round(float(us.max()), 2), "votes": len(ns)}

    return {"incremental_update_us": summary(add_ns), "posterior_from_votes_us": summary(recompute_ns),
            "max_abs_diff_incremental_vs_batch": float(np.abs(incremental - batch).max())}


# ---------------------------------------------------------------------------------------------
# Dynamic overlap


def fixed_overlap(e: Encoded, rank: np.ndarray, gold: np.ndarray, k: int) -> dict[str, Any]:
    n_items, n_workers, n_classes = e.shape
    keep = rank < k
    model = ds.fit_dawid_skene(e.items[keep], e.workers[keep], e.labels[keep], n_items, n_workers, n_classes)
    return {"accuracy": float((model.labels() == gold).mean()), "answers": int(keep.sum())}


def dynamic_overlap(e: Encoded, rank: np.ndarray, gold: np.ndarray, bound: float, min_answers: int,
                    max_answers: int = MAX_ANSWERS) -> dict[str, Any]:
    """Rounds of: re-fit DS on all answers collected so far (warm start), stop items whose top
    posterior reaches `bound` (or that hit `max_answers` or ran out of answers) with their current
    label, give every other item one more answer."""
    n_items, n_workers, n_classes = e.shape
    available = np.bincount(e.items, minlength=n_items)
    taken = np.minimum(available, min_answers)
    final = np.full(n_items, -1)
    model = None
    rounds = 0
    while (final < 0).any():
        rounds += 1
        keep = rank < taken[e.items]
        model = ds.fit_dawid_skene(e.items[keep], e.workers[keep], e.labels[keep], n_items, n_workers, n_classes,
                                   warm_start=model)
        open_ = final < 0
        stop = open_ & ((model.posteriors.max(axis=1) >= bound) | (taken >= np.minimum(available, max_answers)))
        final[stop] = model.labels()[stop]
        taken[open_ & ~stop] += 1
    keep = rank < taken[e.items]
    return {"accuracy": float((final == gold).mean()), "accuracy_final_refit": float((model.labels() == gold).mean()),
            "answers": int(keep.sum()), "rounds": rounds}


def overlap_study(crowd: Crowd, seeds: int) -> dict[str, Any]:
    e = encode(crowd)
    gold = np.searchsorted(e.classes, np.array([crowd.gold[t] for t in e.item_ids]))
    ranks = [arrival_rank(crowd.tasks, seed) for seed in range(seeds)]

    def mean(results: list[dict[str, Any]]) -> dict[str, Any]:
        return {key: round(float(np.mean([r[key] for r in results])), 4) for key in results[0]}

    fixed = mean([fixed_overlap(e, rank, gold, FIXED_OVERLAP) for rank in ranks])
    sweep = []
    for min_answers in MIN_ANSWERS:
        for bound in BOUNDS:
            result = mean([dynamic_overlap(e, rank, gold, bound, min_answers) for rank in ranks])
            sweep.append({"bound": bound, "min_answers": min_answers, "max_answers": MAX_ANSWERS, **result,
                          "answers_per_item": round(result["answers"] / len(e.item_ids), 3)})
    return {"fixed": {"overlap": FIXED_OVERLAP, **fixed, "answers_per_item": FIXED_OVERLAP}, "sweep": sweep}


def choose(study: dict[str, Any]) -> dict[str, Any] | None:
    """The setting with the fewest answers whose accuracy is at least the fixed overlap's."""
    good = [s for s in study["sweep"] if s["accuracy"] >= study["fixed"]["accuracy"]
            and s["answers"] < study["fixed"]["answers"]]
    return min(good, key=lambda s: (s["answers"], -s["accuracy"])) if good else None


# ---------------------------------------------------------------------------------------------


def print_tables(console: Console, rows: list[dict[str, Any]], latency: dict[str, Any],
                 overlap: dict[str, Any]) -> None:
    table = Table(title="Snow 2008: accuracy vs gold (mean over seeds), median wall ms; ours vs crowd-kit (ck)")
    for column in ("data", "k", "method", "ours acc", "ck acc", "ours ms", "ck ms"):
        table.add_column(column, justify="left" if column in ("data", "method") else "right", no_wrap=True)
    index = {(r["dataset"], r["answers_per_item"], r["library"], r["method"]): r for r in rows}
    for name in DATASETS:
        for k in SETTINGS:
            for method in ("majority_vote", "weighted_vote", "one_coin_ds", "full_ds"):
                mine = index[(name, k or "all", "labelstream", method)]
                theirs = index.get((name, k or "all", "crowd-kit", method))
                table.add_row(name, str(k or "all"), method, f"{mine['accuracy']:.4f}",
                              f"{theirs['accuracy']:.4f}" if theirs else "-", f"{mine['wall_ms']:.2f}",
                              f"{theirs['wall_ms']:.2f}" if theirs else "-")
    console.print(table)
    inc, rec = latency["incremental_update_us"], latency["posterior_from_votes_us"]
    console.print(f"incremental update (ItemPosterior.add_vote, {inc['votes']} RTE votes): p50 {inc['p50']} us, "
                  f"p99 {inc['p99']} us; posterior_from_votes recompute: p50 {rec['p50']} us, p99 {rec['p99']} us")
    for name, study in overlap.items():
        if name == "chosen":
            continue
        table = Table(title=f"Dynamic overlap on {name.upper()} (fixed {FIXED_OVERLAP}: accuracy "
                            f"{study['fixed']['accuracy']:.4f}, {study['fixed']['answers']:.0f} answers)")
        for column in ("min", "bound", "accuracy at stop", "accuracy final re-fit", "answers", "answers/item"):
            table.add_column(column, justify="right")
        for s in study["sweep"]:
            table.add_row(str(s["min_answers"]), str(s["bound"]), f"{s['accuracy']:.4f}",
                          f"{s['accuracy_final_refit']:.4f}", f"{s['answers']:.0f}", f"{s['answers_per_item']:.2f}")
        console.print(table)
    console.print(f"chosen on TEMP, applied to RTE: {overlap['chosen']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="random arrival orders to average over")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    console = Console()
    started = time.perf_counter()
    crowds = {name: load(name) for name in DATASETS}
    warm_up(crowds["temp"])
    with Progress(console=console, transient=True) as progress:
        rows = compare(crowds, args.seeds, progress)
        step = progress.add_task("incremental update and dynamic overlap", total=3)
        latency = incremental_latency(crowds["rte"])
        progress.advance(step)
        overlap: dict[str, Any] = {}
        for name in ("temp", "rte"):
            overlap[name] = overlap_study(crowds[name], args.seeds)
            progress.advance(step)
    chosen_on_temp = choose(overlap["temp"])
    applied = None
    if chosen_on_temp:
        applied = next(s for s in overlap["rte"]["sweep"] if s["bound"] == chosen_on_temp["bound"]
                       and s["min_answers"] == chosen_on_temp["min_answers"])
    overlap["chosen"] = {
        "rule": "fewest answers with accuracy >= fixed overlap, chosen on TEMP, applied to RTE",
        "bound": chosen_on_temp and chosen_on_temp["bound"],
        "min_answers": chosen_on_temp and chosen_on_temp["min_answers"],
        "rte": applied, "rte_fixed": overlap["rte"]["fixed"],
        "rte_meets_target": bool(applied and applied["accuracy"] >= overlap["rte"]["fixed"]["accuracy"]
                                 and applied["answers"] < overlap["rte"]["fixed"]["answers"]),
        "best_on_rte_itself": choose(overlap["rte"]),
    }

    def pick(name: str, library: str, method: str) -> dict[str, Any]:
        return next(r for r in rows if r["dataset"] == name and r["answers_per_item"] == "all"
                    and r["library"] == library and r["method"] == method)

    targets = {}
    for name in DATASETS:
        mine, theirs = pick(name, "labelstream", "full_ds"), pick(name, "crowd-kit", "full_ds")
        targets[f"{name}_all_full_ds"] = {
            "labelstream_accuracy": mine["accuracy"], "crowdkit_accuracy": theirs["accuracy"],
            "labelstream_ms": mine["wall_ms"], "crowdkit_ms": theirs["wall_ms"],
            "accuracy_met": mine["accuracy"] >= theirs["accuracy"], "time_met": mine["wall_ms"] <= theirs["wall_ms"]}
    report = {
        "data": {name: {"answers": len(c.tasks), "items": len(c.gold), "workers": len(set(c.workers.tolist()))}
                 for name, c in crowds.items()},
        "seeds": args.seeds, "aggregation": rows, "targets": targets, **latency, "dynamic_overlap": overlap,
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        **{p: metadata.version(p) for p in ("numpy", "scipy", "pandas", "crowd-kit")}},
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    print_tables(console, rows, latency, overlap)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(f"targets: {json.dumps(targets)}")
    console.print(f"wrote {args.out} in {report['total_seconds']} s")


if __name__ == "__main__":
    main()
