"""Quality of the models behind the Triton contract, per dataset, model and examples per class.

For SST-2, AG News, CARER and TREC (shared/datasets): accuracy, expected calibration error and
accuracy of the 50% most confident items with 1, 4 and 16 examples per class, for each model
(run in-process: the same code and weights Triton serves), and the encoder head's learning
curve as human-verified labels are added. One PNG per dataset and one JSON report in
reports/benchmarks/.

Usage: python scripts/benchmarks/model_quality.py [--items 300] [--models encoder_fewshot,causal_lm]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from labelstream.cli.stack import REPO_ROOT
from labelstream.models import local as local_model
from labelstream.routing.calibration import expected_calibration_error

SHARED = REPO_ROOT.parent / "shared" / "datasets" / "classification"
OUT = REPO_ROOT / "reports" / "benchmarks"
SHOTS = (1, 4, 16)
LEARNING = (0, 50, 100, 200, 400, 800)
INSTRUCTIONS = {
    "sst2": "Is the sentiment of this movie review negative or positive?",
    "agnews": "Which news section does this article belong to: World, Sports, Business or Sci/Tech?",
    "carer": "Which emotion does the writer express: sadness, joy, love, anger, fear or surprise?",
    "trec": "What kind of answer does this question ask for: ABBR (abbreviation), DESC (description), "
            "ENTY (entity), HUM (person), LOC (location) or NUM (number)?",
}


def read(path: Path, delimiter: str, text_first: bool, header: bool = False) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8") as handle:
        if delimiter == ";":
            rows = [tuple(line.rsplit(";", 1)) for line in handle.read().splitlines() if ";" in line]
        else:
            rows = [tuple(r) for r in csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE) if len(r) == 2]
    rows = rows[1:] if header else rows
    return [(r[0], r[1]) if text_first else (r[1], r[0]) for r in rows]


def datasets() -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]]:
    """name -> (evaluation rows, rows to draw examples and verified labels from, labels)."""
    sst_names = {"0": "negative", "1": "positive"}
    sst_dev = [(t, sst_names[y]) for t, y in read(SHARED / "sst2" / "dev.tsv", "\t", True, header=True)]
    sst_train = [(t, sst_names[y]) for t, y in read(SHARED / "sst2" / "train.tsv", "\t", True, header=True)
                 if len(t.split()) >= 10]
    agnews = read(SHARED / "agnews" / "test.tsv", "\t", True)
    carer_test = read(SHARED / "carer" / "test.txt", ";", True)
    carer_train = read(SHARED / "carer" / "train.txt", ";", True)
    trec = read(SHARED / "trec" / "test.tsv", "\t", False)
    out = {}
    for name, evaluation, source in (("sst2", sst_dev, sst_train), ("agnews", agnews, None),
                                     ("carer", carer_test, carer_train), ("trec", trec, None)):
        rng = random.Random(0)
        rows = list(evaluation)
        rng.shuffle(rows)
        if source is None:  # one file: split it
            cut = len(rows) // 2
            rows, source = rows[:cut], rows[cut:]
        else:
            source = list(source)
            rng.shuffle(source)
        labels = sorted({label for _, label in rows + source})
        out[name] = (rows, source, labels)
    return out


def examples_for(source: list[tuple[str, str]], labels: list[str], per_class: int) -> list[dict[str, str]]:
    chosen = []
    for label in labels:
        chosen += [{"text": t, "label": label} for t, y in source if y == label][:per_class]
    return chosen


def scores(probabilities: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    correct = predicted == gold
    top = np.argsort(-confidence)[: max(1, len(gold) // 2)]
    return {"accuracy": round(float(correct.mean()), 4),
            "ece": round(expected_calibration_error(confidence, correct), 4),
            "accuracy_top50_confident": round(float(correct[top].mean()), 4)}


def plot(name: str, result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    for model, by_shots in result["few_shot"].items():
        shots = sorted(int(k) for k in by_shots)
        left.plot(shots, [by_shots[str(s)]["accuracy"] for s in shots], "o-", label=f"{model} accuracy")
        left.plot(shots, [by_shots[str(s)]["accuracy_top50_confident"] for s in shots], "o--",
                  label=f"{model} accuracy, 50% most confident")
    left.axhline(1 / len(result["labels"]), color="grey", lw=0.8, label="chance")
    left.set_xscale("log", base=2)
    left.set_xlabel("examples per class")
    left.set_ylabel("accuracy")
    left.set_title("few-shot")
    left.legend(fontsize=8)
    curve = result["learning_curve"]
    counts = sorted(int(k) for k in curve)
    right.plot(counts, [curve[str(c)]["accuracy"] for c in counts], "o-", label="accuracy")
    right.plot(counts, [curve[str(c)]["ece"] for c in counts], "s--", label="ECE")
    right.set_xlabel("human-verified labels added to 16 examples per class")
    right.set_title("encoder head learning curve")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{name}: {result['items']} evaluation items")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=300, help="evaluation items per dataset")
    parser.add_argument("--models", default="encoder_fewshot,causal_lm")
    parser.add_argument("--datasets", default="sst2,agnews,carer,trec")
    options = parser.parse_args()
    loaders = {"encoder_fewshot": local_model.load_encoder_classifier,
               "causal_lm": getattr(local_model, "load_causal_classifier", None)}
    models = {}
    for name in options.models.split(","):
        if loaders.get(name) is None:
            raise SystemExit(f"unknown model {name!r}; choose from {[k for k, v in loaders.items() if v]}")
        models[name] = loaders[name]()
    report: dict[str, Any] = {"items_per_dataset": options.items, "datasets": {}}
    OUT.mkdir(parents=True, exist_ok=True)
    data = datasets()
    wanted = options.datasets.split(",")
    with Progress() as progress:
        task = progress.add_task("runs", total=len(wanted) * (len(models) * len(SHOTS) + len(LEARNING)))
        for name in wanted:
            rows, source, labels = data[name]
            rows = rows[: options.items]
            texts = [t for t, _ in rows]
            gold = np.array([labels.index(y) for _, y in rows])
            result: dict[str, Any] = {"labels": labels, "items": len(rows), "few_shot": defaultdict(dict),
                                      "seconds": {}}
            for model_name, model in models.items():
                for shots in SHOTS:
                    project = {"project_id": f"bench-{name}", "labels": labels,
                               "instructions": INSTRUCTIONS[name], "examples": examples_for(source, labels, shots)}
                    started = time.perf_counter()
                    probabilities = model.predict(texts, project)
                    result["seconds"][f"{model_name}/{shots}"] = round(time.perf_counter() - started, 2)
                    result["few_shot"][model_name][str(shots)] = scores(np.asarray(probabilities), gold)
                    progress.advance(task)
            used = {e["text"] for e in examples_for(source, labels, 16)}
            extra = [(t, y) for t, y in source if t not in used]
            result["learning_curve"] = {}
            for count in LEARNING:
                project = {"project_id": f"bench-{name}", "labels": labels, "instructions": INSTRUCTIONS[name],
                           "examples": examples_for(source, labels, 16)
                           + [{"text": t, "label": y} for t, y in extra[:count]]}
                probabilities = models.get("encoder_fewshot", local_model.load_encoder_classifier()).predict(
                    texts, project)
                result["learning_curve"][str(count)] = {**scores(np.asarray(probabilities), gold),
                                                        "verified_available": min(count, len(extra))}
                progress.advance(task)
            result["few_shot"] = dict(result["few_shot"])
            report["datasets"][name] = result
            plot(name, result, OUT / f"model_quality_{name}.png")
            print(name, json.dumps({m: v for m, v in result["few_shot"].items()}))
    (OUT / "model_quality.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {OUT / 'model_quality.json'} and one PNG per dataset")


if __name__ == "__main__":
    main()
