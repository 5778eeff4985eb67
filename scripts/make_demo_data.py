"""Build deploy/examples/sst2 (the demo project and its items) from shared/datasets.

Usage: python scripts/make_demo_data.py [--shared ../shared]
The output is committed; this script documents exactly how it was made.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "deploy" / "examples" / "sst2"
LABELS = ["negative", "positive"]
EXAMPLES_PER_CLASS = 16
ITEMS = 872  # the whole dev set; the demo takes the first 500
POOL = 4000  # train sentences of 10+ words for routing evaluation (verified vs held-out splits)


def read_tsv(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(text, LABELS[int(label)]) for text, label in rows[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    options = parser.parse_args()
    sst2 = options.shared / "datasets" / "classification" / "sst2"
    rng = random.Random(0)
    train = [row for row in read_tsv(sst2 / "train.tsv") if len(row[0].split()) >= 8]
    rng.shuffle(train)
    examples = [{"text": t, "label": label} for label in LABELS
                for t, _ in [r for r in train if r[1] == label][:EXAMPLES_PER_CLASS]]
    dev = list(enumerate(read_tsv(sst2 / "dev.tsv")))
    rng.shuffle(dev)
    OUT.mkdir(parents=True, exist_ok=True)
    project = {
        "project_id": "sst2-demo", "name": "SST-2 movie review sentiment", "task": "single_label",
        "labels": LABELS,
        "instructions": "Is the sentiment of this movie review sentence negative or positive?",
        "auto_accept_threshold": 0.7, "overlap": 3, "max_overlap": 5, "model": "encoder_fewshot",
        "examples": examples,
    }
    (OUT / "project.yaml").write_text(yaml.safe_dump(project, sort_keys=False, allow_unicode=True, width=120))
    with (OUT / "items.jsonl").open("w", encoding="utf-8") as handle:
        for index, (text, label) in dev[:ITEMS]:
            handle.write(json.dumps({"item_id": f"sst2-dev-{index:04d}", "text": text, "gold_label": label}) + "\n")
    used = {e["text"] for e in examples}
    pool = [row for row in train if row[0] not in used and len(row[0].split()) >= 10][:POOL]
    with (OUT / "pool.jsonl").open("w", encoding="utf-8") as handle:
        for number, (text, label) in enumerate(pool):
            handle.write(json.dumps({"item_id": f"sst2-train-{number:05d}", "text": text, "gold_label": label}) + "\n")
    print(f"wrote pool.jsonl ({len(pool)} items)")
    print(f"wrote {OUT}/project.yaml ({len(examples)} examples) and items.jsonl ({min(ITEMS, len(dev))} items)")


if __name__ == "__main__":
    main()
