"""Routing at stream scale: how much a sound router auto-accepts as verified items accumulate,
against what hindsight allows (issue 14, "What to build" 1; metrics in routing/evaluation.py).

Per data set the encoder model's predictions are computed once, in process (the code and weights
Triton serves: labelstream.models.local), and cached under the cache folder (embeddings, the
expensive part, then each head's probabilities). The head is the few-shot head on the project's
examples (deploy/examples/<set>/project.yaml); with --refit-items K it is refit on those examples
plus the first K items of the stream (a fixed shuffle), which then leave the pool: the head a
stream has once K items are verified, held fixed while the router's verified items grow.

Then, per verified size n, run (seed), target and strategy, routing/evaluation.py:evaluate_scale
draws n verified items at random, fits the routing model with the production code
(fit_routing_model, default threshold method) and applies it to every other item of the pool
(the held-out), reporting the chosen auto fraction, oracle, same-guarantee limit, efficiency,
payoff and runs meeting the target. Sizes that would leave fewer than --min-held-out held-out
items are skipped.

Data sets (shared/datasets/classification): sst2 (train.tsv, every phrase: 60,614 rows, so 50,000
verified items leave ~10,000 held out; --min-words 8 keeps sentences of 8+ words, ~28,000), carer
(train.txt, 16,000), agnews (test.tsv, 7,600). Texts equal to one of the project's examples are
dropped, and duplicate texts kept once (their first gold label).

Writes reports/routing/scale/<set>-<head>.json and .png.
Usage: PYTHONPATH=services python scripts/benchmarks/routing_scale.py --dataset sst2
           [--sizes 500,2000,10000,50000] [--targets 0.90,0.95] [--seeds 20] [--refit-items 0]
           [--min-words 0] [--cache ~/.cache/labelstream/routing_scale]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from labelstream.cli.projects import load_project
from labelstream.cli.stack import REPO_ROOT
from labelstream.models import local as local_model
from labelstream.routing.evaluation import evaluate_scale, plot_scale

SHARED = REPO_ROOT.parent / "shared" / "datasets" / "classification"
EXAMPLES = REPO_ROOT / "deploy" / "examples"
OUT = REPO_ROOT / "reports" / "routing" / "scale"
CACHE = Path(os.environ.get("LABELSTREAM_CACHE", Path.home() / ".cache" / "labelstream")) / "routing_scale"
EMBED_CHUNK = 512
console = Console()


@dataclass
class Source:
    path: Path
    delimiter: str        # ";": the label follows the last semicolon (CARER)
    text_first: bool
    header: bool
    label_names: dict[str, str]  # the file's label -> the project's; empty: the same


SOURCES = {
    "sst2": Source(SHARED / "sst2" / "train.tsv", "\t", True, True, {"0": "negative", "1": "positive"}),
    "carer": Source(SHARED / "carer" / "train.txt", ";", True, False, {}),
    "agnews": Source(SHARED / "agnews" / "test.tsv", "\t", True, False, {}),
}


def read_rows(source: Source) -> list[tuple[str, str]]:
    with source.path.open(encoding="utf-8") as handle:
        if source.delimiter == ";":
            rows = [tuple(line.rsplit(";", 1)) for line in handle.read().splitlines() if ";" in line]
        else:
            rows = [tuple(r) for r in csv.reader(handle, delimiter=source.delimiter, quoting=csv.QUOTE_NONE)
                    if len(r) == 2]
    rows = rows[1:] if source.header else rows
    rows = [(r[0], r[1]) if source.text_first else (r[1], r[0]) for r in rows]
    return [(text, source.label_names.get(label, label)) for text, label in rows]


@dataclass
class Pool:
    texts: list[str]
    labels: np.ndarray  # index into project["labels"]
    project: dict[str, Any]


def load_pool(dataset: str, min_words: int) -> Pool:
    project = local_model.project_dict(load_project(EXAMPLES / dataset / "project.yaml"))
    names = list(project["labels"])
    # An example in the pool would be scored by a head fit on it: nearly always right, and not
    # what a stream's new items are.
    examples = {e["text"] for e in project["examples"]}
    seen: dict[str, str] = {}
    for text, label in read_rows(SOURCES[dataset]):
        if label in names and text not in examples and text not in seen and len(text.split()) >= min_words:
            seen[text] = label
    return Pool(list(seen), np.array([names.index(label) for label in seen.values()]), project)


def _key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def embeddings(classifier: Any, texts: list[str], cache: Path) -> np.ndarray:
    """The encoder's embeddings of `texts`, computed once and cached (keyed by the texts and the
    model code). Computed longest-first in chunks: a batch is padded to its longest text, so
    texts of similar length together take a fraction of the time."""
    model_code = (local_model.MODEL_DIR / "1" / "model.py").read_bytes()
    path = cache / f"embeddings-{_key(hashlib.sha256(model_code).hexdigest(), *texts)}.npy"
    if path.exists():
        return np.load(path)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    vectors = np.zeros((len(texts), 384), dtype=np.float32)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task(f"embedding {len(texts)} texts", total=len(texts))
        for start in range(0, len(order), EMBED_CHUNK):
            chunk = order[start:start + EMBED_CHUNK]
            # the classifier's own embed (its cache keeps only recent texts; ours keeps them all)
            vectors[chunk] = classifier.embed([texts[i] for i in chunk])
            progress.advance(task, len(chunk))
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def head_probabilities(classifier: Any, project: dict[str, Any], vectors: np.ndarray) -> np.ndarray:
    """What FewShotEncoderClassifier.predict returns for a single-label project, from embeddings
    already computed: the project's head (fit on its examples) applied to them."""
    labels, model = classifier.head(project)
    probabilities = np.zeros((len(vectors), len(labels)))
    probabilities[:, model.classes_] = model.predict_proba(vectors.astype(np.float64))
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def predictions(dataset: str, min_words: int, refit_items: int, cache: Path) -> tuple[Pool, np.ndarray, str]:
    """The pool (without the items the head was refit on) and the model's probabilities on it."""
    pool = load_pool(dataset, min_words)
    head = "fewshot" if not refit_items else f"refit{refit_items}"
    path = cache / f"{dataset}-{_key(str(min_words), head, json.dumps(pool.project, sort_keys=True), *pool.texts)}.npz"
    keep = np.arange(len(pool.texts))
    project = pool.project
    if refit_items:
        # A fixed shuffle, independent of the runs' seeds: the stream's first items.
        first = np.random.default_rng(12345).permutation(len(pool.texts))[:refit_items]
        keep = np.setdiff1d(keep, first)
        extra = [{"text": pool.texts[i], "label": project["labels"][pool.labels[i]]} for i in first]
        project = {**project, "examples": list(project["examples"]) + extra}
    if path.exists():
        probabilities = np.load(path)["probabilities"]
    else:
        console.log(f"{dataset}: {len(pool.texts)} items; encoder predictions with the {head} head")
        classifier = local_model.load_encoder_classifier()
        vectors = embeddings(classifier, pool.texts, cache)
        probabilities = head_probabilities(classifier, project, vectors[keep])
        np.savez_compressed(path, probabilities=probabilities)
    pool = Pool([pool.texts[i] for i in keep], pool.labels[keep], pool.project)
    return pool, probabilities, head


def print_table(summary: dict[str, Any]) -> None:
    table = Table(title=f"{summary['dataset']} ({summary['head']} head, model accuracy "
                        f"{summary['model_accuracy']:.3f}), {summary['seeds']} runs per cell")
    for column in ("target", "strategy", "verified", "held-out", "chosen", "oracle", "limit", "efficiency",
                   "payoff", "runs meeting", "auto acc.", "single test"):
        table.add_column(column, justify="right")
    for cell in summary["cells"]:
        efficiency = "-" if cell["efficiency"] is None else f"{cell['efficiency']:.2f}"
        payoff = "-" if cell["payoff"] is None else f"{cell['payoff']:.2f}"
        table.add_row(f"{cell['target']:.2f}", cell["strategy"], str(cell["verified"]), str(cell["held_out"]),
                      f"{cell['chosen_auto_fraction']:.3f}", f"{cell['oracle_auto_fraction']:.3f}",
                      f"{cell['same_guarantee_limit']:.3f}", efficiency, payoff,
                      f"{cell['runs_meeting_target']}/{cell['runs']}", f"{cell['mean_auto_accuracy']:.3f}",
                      f"{cell['single_test_reference']:.3f}")
    Console(width=160).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(SOURCES), required=True)
    parser.add_argument("--sizes", default="500,2000,10000,50000", help="verified items per run")
    parser.add_argument("--targets", default="0.90,0.95")
    parser.add_argument("--strategies", default="calibrated,meta")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--confidence-level", type=float, default=0.95)
    parser.add_argument("--refit-items", type=int, default=0,
                        help="refit the encoder head on this many of the stream's first items (0: few-shot)")
    parser.add_argument("--min-words", type=int, default=0, help="keep only texts of at least this many words")
    parser.add_argument("--min-held-out", type=int, default=5000)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out", type=Path, default=OUT)
    options = parser.parse_args()
    started = time.perf_counter()
    pool, probabilities, head = predictions(options.dataset, options.min_words, options.refit_items, options.cache)
    lengths = np.array([len(t) for t in pool.texts], dtype=float)
    sizes = [int(s) for s in options.sizes.split(",")]
    usable = [n for n in sizes if len(pool.texts) - n >= options.min_held_out]
    if len(usable) < len(sizes):
        console.log(f"{len(pool.texts)} items: skipping sizes {sorted(set(sizes) - set(usable))} "
                    f"(fewer than {options.min_held_out} held-out items)")
    targets = [float(t) for t in options.targets.split(",")]
    strategies = options.strategies.split(",")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("routing fits", total=len(usable) * options.seeds * len(targets) * len(strategies))
        advance: Callable[[], None] = lambda: progress.advance(task)  # noqa: E731
        summary = evaluate_scale(probabilities, pool.labels, lengths, usable, targets, strategies, options.seeds,
                                 options.confidence_level, progress=advance)
    summary = {"dataset": options.dataset, "head": head, "items": len(pool.texts),
               "min_words": options.min_words, "refit_items": options.refit_items,
               "seconds": round(time.perf_counter() - started, 1), **summary}
    options.out.mkdir(parents=True, exist_ok=True)
    name = f"{options.dataset}-{head}" + (f"-{options.min_words}words" if options.min_words else "")
    (options.out / f"{name}.json").write_text(json.dumps(summary, indent=2))
    plot_scale(summary, str(options.out / f"{name}.png"),
               f"{options.dataset}, encoder ({head} head, accuracy {summary['model_accuracy']:.3f})")
    print_table(summary)
    console.print(f"wrote {options.out / (name + '.json')} and {options.out / (name + '.png')}")


if __name__ == "__main__":
    main()
