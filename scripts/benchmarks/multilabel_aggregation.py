"""Multi-label aggregation on GoEmotions with simulated raters: this project against crowd-kit, in one process.

Data: deploy/examples/multilabel/goemotions, the dev split (5,426 comments), its agreed label sets
as the reference, over Ekman's 6 groups plus neutral (7 labels) and over all 28 labels. GoEmotions
ships no per-rater rows, so the answers are simulated (labelstream.simulation.multilabel_raters):

- pool: 50 raters, 5 answers per item from 5 distinct raters drawn at random. 45 are honest, with a
  sensitivity in [0.7, 0.9] and a specificity in [0.95, 0.99] drawn per rater and label; 5 (10%)
  take set shortcuts: 2 always answer "none", 1 every label, 2 always just "neutral" (the most
  common label: the shortcut that pays best).
- sparse (28 labels only): the same mix over 300 raters whose activity falls as 1/rank, so most
  raters answer a few dozen items and see a rare label's true items once or never.

Methods on the same answers: labelstream's majority per label, per-label binary Dawid-Skene and
pooled Dawid-Skene (labelstream.crowd.multilabel; final set: posterior >= 0.5, empty when none
passes, as crowd-kit does; "pooled+top" gives an item whose set would be empty its most probable
label, since every GoEmotions item has one), and crowd-kit's BinaryRelevance around MajorityVote
and around DawidSkene(n_iter=100). crowd-kit runs on the pool crowd only (about 30 s per run on 28
labels). Metrics: micro-F1, macro-F1, Hamming loss and exact match against the reference sets,
mean over seeds, and the wall time of each fit (ours include nothing crowd-kit's do not: both
start from answers already in their input form). Also: the MASI-alpha agreement of the simulated
answers, the set fraud signals over each rater's last 20 answers, and the pooled method's strength
sweep that chose POOL_STRENGTH.

Writes reports/benchmarks/multilabel_aggregation.json and multilabel_aggregation.png.
Usage: python scripts/benchmarks/multilabel_aggregation.py [--seeds 3] [--out PATH.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from crowdkit.aggregation import BinaryRelevance, DawidSkene, MajorityVote
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from labelstream.crowd import multilabel as ml
from labelstream.crowd import quality
from labelstream.crowd.agreement import krippendorff_alpha_sets
from labelstream.simulation import goemotions
from labelstream.simulation import multilabel_raters as raters_

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT = REPO_ROOT / "reports" / "benchmarks" / "multilabel_aggregation.json"
PER_ITEM = 5
SHORTCUTS = ("none", "none", "all", "same_set", "same_set")
CROWDS = {"pool": {"raters": 50, "activity": None},
          "sparse": {"raters": 300, "activity": "zipf"}}
SETTINGS = [("ekman", "pool"), ("all", "pool"), ("all", "sparse")]
STRENGTHS = (2.0, 5.0, 10.0, 20.0, 50.0)

Answers = tuple[np.ndarray, np.ndarray, np.ndarray]


def ours(method: str, none_rule: str = "empty") -> Callable[[Answers, int, int], np.ndarray]:
    def run(answers: Answers, n_items: int, n_workers: int) -> np.ndarray:
        items, workers, chosen = answers
        fitted = ml.fit(method, items, workers, chosen, n_items, n_workers)
        return ml.final_sets(fitted.posteriors, none_rule=none_rule)
    return run


def crowdkit(make: Callable[[], Any], labels: tuple[str, ...]) -> Callable[[pd.DataFrame, int], np.ndarray]:
    def run(frame: pd.DataFrame, n_items: int) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # pandas' chained-assignment notes inside BinaryRelevance
            result = BinaryRelevance(make()).fit_predict(frame)
        index = {label: j for j, label in enumerate(labels)}
        predicted = np.zeros((n_items, len(labels)), dtype=bool)
        for task, chosen in result.items():
            for label in chosen:
                predicted[int(task), index[label]] = True
        return predicted
    return run


def as_frame(answers: Answers, labels: tuple[str, ...]) -> pd.DataFrame:
    items, workers, chosen = answers
    return pd.DataFrame({"task": items, "worker": workers,
                         "label": [sorted(s) for s in ml.decode_sets(chosen, labels)]})


def crowd(truth: np.ndarray, labels: tuple[str, ...], name: str, seed: int) -> tuple[list[raters_.SetRater], Answers]:
    spec = CROWDS[name]
    rng = np.random.default_rng(seed)
    neutral = np.array([label == goemotions.NEUTRAL for label in labels])
    pool = raters_.draw_raters(spec["raters"], len(labels), rng, shortcuts=SHORTCUTS, same_set=neutral)
    activity = None
    if spec["activity"] == "zipf":
        # shortcut raters are as active as a typical honest one, not the busiest ones
        activity = 1.0 / np.arange(1, spec["raters"] + 1)
        activity[-len(SHORTCUTS):] = np.median(activity)
    return pool, raters_.simulate(truth, pool, PER_ITEM, rng, activity)


def crowd_facts(pool: list[raters_.SetRater], answers: Answers, labels: tuple[str, ...]) -> dict[str, Any]:
    items, workers, chosen = answers
    sets = ml.decode_sets(chosen, labels)
    per_worker = np.bincount(workers, minlength=len(pool))
    flagged: dict[str, list[int]] = {"honest": [0, 0], "shortcut": [0, 0]}
    for w, rater in enumerate(pool):
        mine = [sets[n] for n in np.flatnonzero(workers == w)]
        kind = "honest" if rater.behaviour == "honest" else "shortcut"
        if len(mine) >= quality.RECENT_ANSWERS:
            flagged[kind][1] += 1
            flagged[kind][0] += bool(quality.set_fraud_signals(mine, labels))
    triples = list(zip(items.tolist(), workers.tolist(), sets, strict=True))
    return {"answers": int(len(items)), "raters": len(pool),
            "answers_per_rater_median": float(np.median(per_worker)),
            "raters_under_20_answers": int((per_worker < 20).sum()),
            "masi_alpha": round(krippendorff_alpha_sets(triples), 4),
            "fraud_signals_flagged": {k: f"{v[0]}/{v[1]} with 20+ answers" for k, v in flagged.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    console = Console(width=140)
    started = time.perf_counter()
    items = goemotions.load_items()
    n_items = len(items)
    rows: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}
    sweep: list[dict[str, Any]] = []
    methods_per = {crowd_name: 4 + (2 if crowd_name == "pool" else 0) for _, crowd_name in SETTINGS}
    total = sum(methods_per[c] for _, c in SETTINGS) * args.seeds + len(STRENGTHS) * 2
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        bar = progress.add_task("fits", total=total)
        for label_set, crowd_name in SETTINGS:
            labels = goemotions.EKMAN_LABELS if label_set == "ekman" else goemotions.ALL_LABELS
            truth = ml.encode_sets(goemotions.label_sets(items, ekman=label_set == "ekman"), labels)
            methods: list[tuple[str, str, Callable[..., np.ndarray]]] = [
                ("labelstream", "majority", ours("majority")), ("labelstream", "per_label_ds", ours("per_label")),
                ("labelstream", "pooled_ds", ours("pooled")), ("labelstream", "pooled_ds+top", ours("pooled", "top"))]
            if crowd_name == "pool":
                methods += [("crowd-kit", "BR(MajorityVote)", crowdkit(MajorityVote, labels)),
                            ("crowd-kit", "BR(DawidSkene)", crowdkit(lambda: DawidSkene(n_iter=100), labels))]
            results: dict[tuple[str, str], list[dict[str, float]]] = {}
            for seed in range(args.seeds):
                pool, answers = crowd(truth, labels, crowd_name, seed)
                if seed == 0:
                    facts[f"{label_set}/{crowd_name}"] = crowd_facts(pool, answers, labels)
                frame = as_frame(answers, labels) if crowd_name == "pool" else None
                for library, method, run in methods:
                    progress.update(bar, description=f"{label_set}/{crowd_name} seed {seed}: {library} {method}")
                    start = time.perf_counter()
                    predicted = run(frame, n_items) if library == "crowd-kit" else run(answers, n_items, len(pool))
                    seconds = time.perf_counter() - start
                    m = ml.set_metrics(predicted, truth)
                    results.setdefault((library, method), []).append(
                        {"micro_f1": m.micro_f1, "macro_f1": m.macro_f1, "hamming_loss": m.hamming_loss,
                         "exact_match": m.exact_match, "wall_ms": seconds * 1000})
                    progress.advance(bar)
            for (library, method), runs in results.items():
                rows.append({"labels": label_set, "n_labels": len(labels), "crowd": crowd_name, "library": library,
                             "method": method, "seeds": len(runs),
                             **{k: round(float(np.mean([r[k] for r in runs])), 4 if k != "wall_ms" else 1)
                                for k in runs[0]},
                             "macro_f1_min": round(min(r["macro_f1"] for r in runs), 4)})
        # the strength of the pooled prior, on seed 0 of both 28-label crowds
        labels = goemotions.ALL_LABELS
        truth = ml.encode_sets(goemotions.label_sets(items), labels)
        for crowd_name in ("pool", "sparse"):
            pool, (it, wk, ch) = crowd(truth, labels, crowd_name, 0)
            for strength in STRENGTHS:
                progress.update(bar, description=f"pool strength {strength} on all/{crowd_name}")
                fitted = ml.fit("pooled", it, wk, ch, n_items, len(pool), pool_strength=strength)
                m = ml.set_metrics(ml.final_sets(fitted.posteriors), truth)
                sweep.append({"crowd": crowd_name, "pool_strength": strength, "micro_f1": round(m.micro_f1, 4),
                              "macro_f1": round(m.macro_f1, 4), "exact_match": round(m.exact_match, 4)})
                progress.advance(bar)
    report = {
        "data": {"items": n_items, "items_with_2plus_labels": sum(len(i.labels) >= 2 for i in items),
                 "reference": "GoEmotions' agreed label sets (at least 2 of its raters chose the label)",
                 "answers_per_item": PER_ITEM, "shortcut_raters": list(SHORTCUTS), "crowds": CROWDS},
        "crowds": facts,
        "results": rows,
        "pool_strength_sweep": sweep, "pool_strength_used": ml.POOL_STRENGTH,
        "notes": ["simulated raters answer each label independently given the reference set; real raters' "
                  "errors correlate across labels (joy vs amusement), which this does not model",
                  "crowd-kit runs on the pool crowd only: about 30 s a run on 28 labels"],
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        **{p: metadata.version(p) for p in ("numpy", "scipy", "pandas", "crowd-kit")}},
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    print_tables(console, rows, facts, sweep)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot(rows, args.out.with_suffix(".png"))
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png').name} in {report['total_seconds']} s")


def print_tables(console: Console, rows: list[dict[str, Any]], facts: dict[str, Any],
                 sweep: list[dict[str, Any]]) -> None:
    table = Table(title=f"GoEmotions dev, simulated raters, {PER_ITEM} answers per item (mean over seeds)")
    for column in ("labels", "crowd", "library", "method", "micro-F1", "macro-F1", "Hamming", "exact", "wall ms"):
        table.add_column(column, justify="left" if column in ("labels", "crowd", "library", "method") else "right")
    for r in rows:
        table.add_row(f"{r['labels']} ({r['n_labels']})", r["crowd"], r["library"], r["method"], f"{r['micro_f1']:.4f}",
                      f"{r['macro_f1']:.4f}", f"{r['hamming_loss']:.4f}", f"{r['exact_match']:.4f}",
                      f"{r['wall_ms']:.0f}")
    console.print(table)
    for name, fact in facts.items():
        console.print(f"{name}: {fact}")
    console.print("pooled strength sweep (seed 0, 28 labels): " + ", ".join(
        f"{s['crowd']} {s['pool_strength']:g}: macro {s['macro_f1']:.4f}" for s in sweep))


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(label_set, crowd_name) for label_set, crowd_name in SETTINGS]
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.3), squeeze=False)
    colours = {"labelstream": "tab:blue", "crowd-kit": "tab:orange"}
    for ax, (label_set, crowd_name) in zip(axes[0], panels, strict=True):
        for r in rows:
            if r["labels"] != label_set or r["crowd"] != crowd_name:
                continue
            ax.scatter(r["wall_ms"], r["macro_f1"], color=colours[r["library"]], s=40)
            ax.annotate(r["method"], (r["wall_ms"], r["macro_f1"]), textcoords="offset points", xytext=(5, 4),
                        fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("wall time per fit (ms, log)")
        ax.set_ylabel("macro-F1 vs GoEmotions sets")
        n = 7 if label_set == "ekman" else 28
        ax.set_title(f"{label_set} ({n} labels), {crowd_name} crowd")
        ax.grid(alpha=0.3)
        ax.margins(x=0.25, y=0.15)
    for library, colour in colours.items():
        axes[0][0].scatter([], [], color=colour, label=library)
    axes[0][0].legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
