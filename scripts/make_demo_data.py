"""Build deploy/examples/sst2 (the demo project and its items) and the other example projects from
shared/datasets (GoEmotions from the repository's own copy of it).

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
    parser.add_argument("--ukp-ranking", type=Path, help="UKPConvArg1-Ranking-CSV folder (see make_ukpconvarg1)")
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
    make_carer(options.shared)
    make_agnews(options.shared)
    make_ukpconvarg1(options.shared, options.ukp_ranking)
    make_hh_rlhf(options.shared)
    make_pandalm(options.shared)
    make_goemotions()


CARER_LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]
CARER_POOL = 3000


def make_carer(shared: Path) -> None:
    """A six-class emotion project (CARER) whose few-shot model is poorly calibrated across classes."""
    out = ROOT / "deploy" / "examples" / "carer"
    lines = (shared / "datasets" / "classification" / "carer" / "train.txt").read_text(encoding="utf-8").splitlines()
    rows = [tuple(line.rsplit(";", 1)) for line in lines if ";" in line]
    random.Random(0).shuffle(rows)
    examples = [{"text": t, "label": label} for label in CARER_LABELS
                for t, _ in [r for r in rows if r[1] == label][:EXAMPLES_PER_CLASS]]
    used = {e["text"] for e in examples}
    pool = [r for r in rows if r[0] not in used][:CARER_POOL]
    out.mkdir(parents=True, exist_ok=True)
    project = {
        "project_id": "carer-emotions", "name": "CARER emotions", "task": "single_label", "labels": CARER_LABELS,
        "instructions": "Which emotion does the writer express?", "routing_strategy": "calibrated",
        "target_accuracy": 0.9, "min_verified": 200, "refit_every": 100, "overlap": 3, "max_overlap": 5,
        "model": "encoder_fewshot", "examples": examples,
    }
    (out / "project.yaml").write_text(yaml.safe_dump(project, sort_keys=False, allow_unicode=True, width=120))
    with (out / "pool.jsonl").open("w", encoding="utf-8") as handle:
        for number, (text, label) in enumerate(pool):
            handle.write(json.dumps({"item_id": f"carer-train-{number:05d}", "text": text, "gold_label": label}) + "\n")
    (out / "SOURCE.md").write_text(
        "Made by scripts/make_demo_data.py from shared/datasets/classification/carer/train.txt (seed 0):\n"
        f"{EXAMPLES_PER_CLASS} few-shot examples per class and a pool of {CARER_POOL} other items.\n\n"
        "Source: trsree/harvardschool_DeepLearning @b74de6bf67be : emotion_dataset/ (CARER, Saravia et al.,\n"
        "EMNLP 2018); research data, no licence file seen.\n")
    print(f"wrote {out}/project.yaml and pool.jsonl ({len(pool)} items)")


AGNEWS_LABELS = ["World", "Sports", "Business", "Sci/Tech"]
AGNEWS_POOL = 4000


def make_agnews(shared: Path) -> None:
    """The demo's project: AG News sections, where the few-shot encoder is strong enough on its
    most confident items (about 94% right on the top half) for a guarantee at 0.90 to pay off."""
    out = ROOT / "deploy" / "examples" / "agnews"
    lines = (shared / "datasets" / "classification" / "agnews" / "test.tsv").read_text(encoding="utf-8").splitlines()
    pairs = (line.rsplit("\t", 1) for line in lines if "\t" in line)
    rows = [(text.replace("\\", " "), label) for text, label in pairs]  # the source marks line breaks with a backslash
    random.Random(0).shuffle(rows)
    examples = [{"text": t, "label": label} for label in AGNEWS_LABELS
                for t, _ in [r for r in rows if r[1] == label][:EXAMPLES_PER_CLASS]]
    used = {e["text"] for e in examples}
    pool = [r for r in rows if r[0] not in used][:AGNEWS_POOL]
    out.mkdir(parents=True, exist_ok=True)
    project = {
        "project_id": "agnews-sections", "name": "AG News sections", "task": "single_label", "labels": AGNEWS_LABELS,
        "instructions": "Which news section does this article belong to: World, Sports, Business or Sci/Tech?",
        "auto_accept_threshold": 0.7, "overlap": 3, "max_overlap": 5, "model": "encoder_fewshot", "examples": examples,
    }
    (out / "project.yaml").write_text(yaml.safe_dump(project, sort_keys=False, allow_unicode=True, width=120))
    with (out / "pool.jsonl").open("w", encoding="utf-8") as handle:
        for number, (text, label) in enumerate(pool):
            handle.write(json.dumps({"item_id": f"agnews-{number:05d}", "text": text, "gold_label": label}) + "\n")
    (out / "SOURCE.md").write_text(
        "Made by scripts/make_demo_data.py from shared/datasets/classification/agnews/test.tsv (seed 0):\n"
        f"{EXAMPLES_PER_CLASS} few-shot examples per class and a pool of {AGNEWS_POOL} other articles.\n\n"
        "Source: forest-snow/alps @3c7ef2c98249 : data/agnews/test.tsv (AG News, Zhang et al. 2015), MIT licence.\n")
    print(f"wrote {out}/project.yaml and pool.jsonl ({len(pool)} items)")


UKP_CHOICES = {"a1": "1", "a2": "2", "equal": "tie"}   # the preference contract's labels (choice_labels(2, True))


def make_ukpconvarg1(shared: Path, ranking: Path | None = None) -> None:
    """UKPConvArg1 (Habernal & Gurevych, ACL 2016): real Mechanical Turk workers' choices of the
    more convincing of two arguments, 5 per pair, as one gzip'd JSON-lines file of pairs: the
    crowd replay and the preference benchmarks need every worker's answer, and the texts make
    the pairs a demo project's items. The workers' free-text reasons, times and MACE
    competences are left out to keep the file small enough for git. With `ranking` (a checkout of
    the upstream data/UKPConvArg1-Ranking-CSV, which shared/datasets does not hold) it also
    writes ranks.tsv: UKP's convincingness score of every argument of these debates."""
    import gzip
    import xml.etree.ElementTree as ElementTree

    source = shared / "datasets" / "preference" / "ukpconvarg1"
    out = ROOT / "deploy" / "examples" / "preference" / "ukpconvarg1"
    out.mkdir(parents=True, exist_ok=True)
    lines, answers, arguments = [], 0, set()
    for path in sorted(source.glob("*.xml")):
        for pair in ElementTree.parse(path).getroot().iter("annotatedArgumentPair"):
            arg1, arg2 = pair.find("arg1"), pair.find("arg2")
            gold = pair.findtext("goldLabel")
            votes = [[a.findtext("turkID"), UKP_CHOICES[a.findtext("value")]]
                     for a in pair.iter("mTurkAssignment")]
            answers += len(votes)
            arguments.update((arg1.findtext("id"), arg2.findtext("id")))
            lines.append(json.dumps({
                "id": pair.findtext("id"), "debate": path.stem, "topic": pair.find("debateMetaData").findtext("title"),
                "stance": arg1.findtext("stance"),
                "arg1": {"id": arg1.findtext("id"), "text": arg1.findtext("text").strip()},
                "arg2": {"id": arg2.findtext("id"), "text": arg2.findtext("text").strip()},
                "gold": UKP_CHOICES[gold] if gold else None, "answers": votes,
            }, ensure_ascii=False, separators=(",", ":")))
    # mtime 0 and no file name in the header: the same input gives the same bytes
    with (out / "pairs.jsonl.gz").open("wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as handle:
        handle.write(("\n".join(lines) + "\n").encode("utf-8"))
    if ranking is not None:
        rows = ["debate\targument\trank"]
        for path in sorted(ranking.glob("*.csv")):
            if (source / f"{path.stem}.xml").exists():
                rows += ["\t".join([path.stem, *line.split("\t")[:2]])   # id, rank (the text is in the pairs)
                         for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
        (out / "ranks.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        print(f"wrote {out}/ranks.tsv ({len(rows) - 1} arguments)")
    (out / "SOURCE.md").write_text(
        "Made by scripts/make_demo_data.py (make_ukpconvarg1) from shared/datasets/preference/ukpconvarg1/*.xml.\n\n"
        "Source: UKPLab/acl2016-convincing-arguments @ca9d24e41b88 : data/UKPConvArg1-full-XML/ (the 8 debate/stance\n"
        "files of 32 copied to shared/datasets). Habernal and Gurevych, \"Which argument is more convincing?\n"
        "Analyzing and predicting convincingness of Web arguments using bidirectional LSTM\", ACL 2016.\n"
        "Licence (upstream readme): the data are CC-BY 4.0; the arguments come from createdebate.com\n"
        "(CC-BY 3.0) and convinceme.net (public domain).\n\n"
        f"pairs.jsonl.gz: {len(lines)} argument pairs (same debate, same stance), {answers} Mechanical Turk answers,\n"
        f"{len(arguments)} arguments. One JSON object a line: `id` (arg1_arg2), `debate` (the upstream file name),\n"
        "`topic` (debate title), `stance`, `arg1` / `arg2` (`id`, `text`), `gold` and `answers`, a list of\n"
        "[turkID, choice] in the file's order. Choices are the preference contract's labels: a1 -> \"1\",\n"
        "a2 -> \"2\", equal -> \"tie\". `gold` is upstream's goldLabel, itself MACE's estimate from these same\n"
        "answers, mapped the same way; null on the pairs that have none. Left out: the workers' free-text\n"
        "reasons, HIT and assignment ids, times, turkRank / turkCompetence / workerStance, authors, votes and\n"
        "the original HTML.\n\n"
        "ranks.tsv: upstream's score (`rank`) of each of the 252 arguments of these 8 debates, from\n"
        "UKPLab/acl2016-convincing-arguments @ca9d24e41b88 : data/UKPConvArg1-Ranking-CSV/ (not in\n"
        "shared/datasets; written when the script is given --ukp-ranking, a folder extracted with\n"
        "`git archive ca9d24e data/UKPConvArg1-Ranking-CSV`). Upstream computed it with PageRank over the\n"
        "argument graph of the cleaned (Strict) pairs. Lower means more convincing here: the score has\n"
        "Spearman -0.94 with each argument's share of the crowd's wins in pairs.jsonl.gz.\n")
    print(f"wrote {out}/pairs.jsonl.gz ({len(lines)} pairs, {answers} answers)")


HH_PAIRS = 500
HH_TURN = "\n\nAssistant:"


def comparable(texts: list[str]) -> bool:
    """Whether ingest takes these as one item's texts (prompt, then responses): valid text, no
    empty or repeated response."""
    from labelstream.common.inputs import text_problem

    normalized = [" ".join(t.split()).casefold() for t in texts[1:]]
    return (all(text_problem(t) is None for t in texts) and all(normalized)
            and len(set(normalized)) == len(normalized))


def make_hh_rlhf(shared: Path) -> None:
    """500 HH-RLHF helpful-base test pairs as pairwise items: the prompt is the dialogue up to its
    last assistant turn, the responses the two last assistant turns, the chosen one at a seeded
    random canonical position (gold_label its number). No source: "chosen"/"rejected" would leak
    the answer."""
    import gzip

    out = ROOT / "deploy" / "examples" / "preference" / "hh-rlhf"
    source = shared / "datasets" / "preference" / "hh-rlhf" / "helpful-base" / "test.jsonl.gz"
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    order = list(range(len(rows)))
    rng = random.Random(0)
    rng.shuffle(order)
    items, skipped = [], 0
    for index in order:
        (prompt, _, chosen), (other_prompt, _, rejected) = (
            rows[index][key].rpartition(HH_TURN) for key in ("chosen", "rejected"))
        prompt, chosen, rejected = prompt.strip(), chosen.strip(), rejected.strip()
        if prompt != other_prompt.strip() or not prompt or not comparable([prompt, chosen, rejected]):
            skipped += 1  # the two dialogues end in the same turn, or in an empty one
            continue
        first = rng.random() < 0.5
        responses = [chosen, rejected] if first else [rejected, chosen]
        items.append({"item_id": f"hh-helpful-test-{index:04d}", "text": prompt,
                      "responses": [{"text": t} for t in responses], "gold_label": "1" if first else "2"})
        if len(items) == HH_PAIRS:
            break
    out.mkdir(parents=True, exist_ok=True)
    with (out / "items.jsonl").open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    first_share = sum(i["gold_label"] == "1" for i in items) / len(items)
    (out / "SOURCE.md").write_text(
        "Made by scripts/make_demo_data.py (make_hh_rlhf) from shared/datasets/preference/hh-rlhf/helpful-base/\n"
        f"test.jsonl.gz: {len(items)} pairwise items, from the file's rows shuffled with seed 0 ({skipped} rows\n"
        "passed over on the way: the two dialogues end in the same turn, or in an empty one). An item's text\n"
        '(the prompt) is the dialogue up to its last "Assistant:" turn; its two responses are the last\n'
        "assistant turns of the chosen and the rejected dialogue, the chosen one at a seeded random canonical\n"
        f"position, which gold_label names (\"1\" on {first_share:.1%} of the items). The gold is one crowdworker's\n"
        "choice of the more helpful response. Responses carry no source: \"chosen\"/\"rejected\" would give\n"
        "the answer away.\n\n"
        "Source: anthropics/hh-rlhf @354e5c3cb896 : helpful-base/test.jsonl.gz (Bai et al. 2022), MIT licence\n"
        "(the bytes via DaehanKim/EasyRLHF @45eccb72ddb8 : data/helpful-base/test.jsonl.gz, sha256 8be3fc1a...).\n")
    print(f"wrote {out}/items.jsonl ({len(items)} pairs, gold 1 on {first_share:.1%})")


PANDALM_VERDICTS = {"0": "tie", "1": "1", "2": "2", "Tie": "tie"}  # upstream's -> ours; others: no verdict


def make_pandalm(shared: Path) -> None:
    """PandaLM's test set as pairwise items with ties: prompt = instruction (+ input), the two
    responses (source: the model that wrote each, from cmp_key), gold_label the three annotators'
    majority, and in metadata each annotator's label, the majority and GPT-3.5's and PandaLM-7B's
    verdicts, all as the project's labels ("1", "2", "tie"; a verdict that is none is kept as is)."""
    from collections import Counter

    folder = shared / "datasets" / "preference" / "pandalm"
    out = ROOT / "deploy" / "examples" / "preference" / "pandalm"
    tests = json.loads((folder / "testset-v1.json").read_text(encoding="utf-8"))
    verdicts = {}
    for name, file, key in (("gpt-3.5-turbo", "gpt-3.5-turbo-testset-v1.json", "gpt_result"),
                            ("pandalm-7b", "pandalm-7b-testset-v1.json", "pandalm_result")):
        rows = json.loads((folder / file).read_text(encoding="utf-8"))
        verdicts[name] = {r["idx"]: PANDALM_VERDICTS.get(str(r[key]), str(r[key])) for r in rows}
    items, unusable = [], 0
    for row in tests:
        # 6 responses are JSON true upstream (a model that answered "True", parsed on the way): as text
        row = {k: "True" if v is True else v for k, v in row.items()}
        votes = [PANDALM_VERDICTS[str(row[f"annotator{k}"])] for k in (1, 2, 3)]
        majority, count = Counter(votes).most_common(1)[0]
        prompt = row["instruction"].strip() + (f"\n\n{row['input'].strip()}" if row["input"].strip() else "")
        models = row["cmp_key"].split("_")
        if not comparable([prompt, row["response1"], row["response2"]]):
            unusable += 1
        item = {"item_id": f"pandalm-test-{row['idx']:04d}", "text": prompt,
                "responses": [{"text": row[f"response{k + 1}"], "source": models[k] if len(models) == 2 else ""}
                              for k in (0, 1)],
                "metadata": {"pandalm_idx": str(row["idx"]), "motivation_app": row["motivation_app"],
                             "cmp_key": row["cmp_key"], "annotator1": votes[0], "annotator2": votes[1],
                             "annotator3": votes[2], "majority": majority if count >= 2 else "none",
                             **{name: v[row["idx"]] for name, v in verdicts.items()}}}
        if count >= 2:
            item["gold_label"] = majority
        items.append(item)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "items.jsonl").open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    golds = dict(Counter(i.get("gold_label", "none") for i in items))
    agreement = {name: sum(v[r["idx"]] == i.get("gold_label") for r, i in zip(tests, items, strict=True)) / len(items)
                 for name, v in verdicts.items()}
    (out / "SOURCE.md").write_text(
        f"Made by scripts/make_demo_data.py (make_pandalm) from shared/datasets/preference/pandalm: all {len(items)}\n"
        "pairs of testset-v1.json, in its order, as pairwise items with ties. text (the prompt) is the\n"
        "instruction, then a blank line and the input when there is one; the responses are response1 and\n"
        "response2, each with the 7B model that wrote it (from cmp_key) as its source (6 responses are the\n"
        "JSON value true upstream, idx 157-164: written here as the text \"True\"). Labels are the\n"
        'preference contract\'s: upstream 1 -> "1", 2 -> "2", 0 -> "tie". gold_label is the three annotators\'\n'
        f"majority ({', '.join(f'{k}: {v}' for k, v in golds.items())}); metadata keeps pandalm_idx,\n"
        "motivation_app, cmp_key, annotator1..3, majority and the verdicts of gpt-3.5-turbo\n"
        "(gpt-3.5-turbo-testset-v1.json: its \"Tie\" -> \"tie\", its 10 \"garbage\" kept as they are: no verdict)\n"
        'and pandalm-7b (pandalm-7b-testset-v1.json). Agreement with\n'
        f"the majority over the three classes, a missing verdict counted wrong: gpt-3.5-turbo "
        f"{agreement['gpt-3.5-turbo']:.3f},\npandalm-7b {agreement['pandalm-7b']:.3f} (upstream quotes .70 and .67).\n"
        + (f"{unusable} items have an empty (or repeated) response, which ingest refuses; they are kept so that\n"
           "figures on this file compare with upstream's on all pairs.\n" if unusable else "")
        + "\nSource: WeOpenML/PandaLM @3871806e72b4 : data/testset-v1.json, data/gpt-3.5-turbo-testset-v1.json,\n"
        "data/pandalm-7b-testset-v1.json (Wang et al., PandaLM, 2023), Apache-2.0.\n")
    print(f"wrote {out}/items.jsonl ({len(items)} pairs, gold {golds}, {unusable} break an ingest rule)")


GOEMOTIONS_ITEMS = 600       # the demo takes the first 500
GOEMOTIONS_EXAMPLES_PER_LABEL = 8
GOEMOTIONS_GUIDELINES = {
    "anger": "anger, annoyance or disapproval",
    "disgust": "disgust: revulsion at something or someone",
    "fear": "fear or nervousness",
    "joy": "joy, amusement, approval, excitement, gratitude, love, optimism, relief, pride, admiration, desire "
           "or caring",
    "sadness": "sadness, disappointment, embarrassment, grief or remorse",
    "surprise": "surprise, realization, confusion or curiosity",
    "neutral": "no clear emotion is expressed",
}
GOEMOTIONS_HEADER = """\
# GoEmotions (Ekman's 6 groups + neutral) as a multi_label project, made by scripts/make_demo_data.py
# (make_goemotions); the demo's multi-label project:
#   labelstream demo --project deploy/examples/multilabel/goemotions/project.yaml \\
#     --items-file deploy/examples/multilabel/goemotions/items.jsonl --items 500
# The encoder's one-vs-rest head gives each label its own probability and learns from the sets people
# verify; the router auto-accepts an item only when every label is decided under the per-label
# guarantee (precision, NPV and recall at target_accuracy, 95% confidence, routing/multilabel.py);
# simulated raters tick the rest, settled with pooled Dawid-Skene per label.
"""


def make_goemotions() -> None:
    """GoEmotions dev (the repository's copy) as a multi_label project over the Ekman groups +
    neutral: in a seed-0 shuffle, the first rows as the demo's items (each with its reference set
    as gold_label: a random sample, whose label rates are the data's) and few-shot examples from
    the rows after them (the first holding each label)."""
    from labelstream.simulation import goemotions

    out = goemotions.GOEMOTIONS_DIR
    labels = list(goemotions.EKMAN_LABELS)
    data = goemotions.load_items()
    rows = list(zip(data, goemotions.label_sets(data, ekman=True), strict=True))
    random.Random(0).shuffle(rows)
    items = [{"item_id": f"goemotions-dev-{item.item_id}", "text": item.text,
              "gold_label": [name for name in labels if name in held]} for item, held in rows[:GOEMOTIONS_ITEMS]]
    used: set[str] = set()
    examples = []
    for label in labels:
        holding = [(item, held) for item, held in rows[GOEMOTIONS_ITEMS:] if label in held and item.item_id not in used]
        for item, held in holding[:GOEMOTIONS_EXAMPLES_PER_LABEL]:
            used.add(item.item_id)
            examples.append({"text": item.text, "labels": [name for name in labels if name in held]})
    project = {
        "project_id": "goemotions-ekman", "name": "GoEmotions: Ekman emotion groups and neutral",
        "task": "multi_label", "labels": labels, "max_labels_per_item": max(len(held) for _, held in rows),
        "instructions": "Tick every emotion the writer of this Reddit comment expresses, and neutral where no "
                        "clear emotion is expressed.",
        "label_guidelines": GOEMOTIONS_GUIDELINES, "model": "encoder_fewshot",
        "routing_strategy": "calibrated", "target_accuracy": 0.9, "confidence_level": 0.95, "min_verified": 100,
        "refit_every": 50, "explore_fraction": 0.1, "overlap": 3, "max_overlap": 5, "aggregation": "dawid_skene",
        "posterior_bound": 0.9, "pay_per_answer": 0.04, "workers": {"min_hourly_wage": 12.0}, "examples": examples,
    }
    (out / "project.yaml").write_text(
        GOEMOTIONS_HEADER + yaml.safe_dump(project, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    with (out / "items.jsonl").open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    several = sum(len(i["gold_label"]) > 1 for i in items) / len(items)
    print(f"wrote {out}/project.yaml ({len(examples)} examples) and items.jsonl ({len(items)} items, "
          f"{several:.1%} with two or more labels)")


if __name__ == "__main__":
    main()
