"""Multi-label routing per label, evaluated offline on GoEmotions (issue 17).

GoEmotions dev (5,426 Reddit comments) with its 28 labels, and mapped to Ekman's 6 groups plus
"neutral" (7 labels). Each run (seed) splits the items at random into verified items (what people
labelled; the one-vs-rest head learns from them and thresholds are chosen on their out-of-fold
probabilities, and the stream is scored by the same fold heads) and held-out stream items, on
which the per-label guarantee is checked against the reference label sets: precision of every
label's auto "present" and NPV of its auto "absent" (and, for the "npv_recall" form, the share of
the label's occurrences auto-marked absent). Items not fully
decided go to people, either whole or as yes/no questions on their uncertain labels only; the
baseline routes whole items by one fixed-sequence threshold on an item-level confidence (product
of the calibrated per-label max(p, 1 - p)) for exact-set accuracy.

Cost model: one unit is one yes/no judgement of one label on one item. Showing a whole item costs
one unit per label (the person decides every label); asking about the uncertain labels costs one
unit per uncertain label. People are taken to be right (as in `labelstream evaluate-routing`).

Embeddings are computed once (the encoder served by Triton, run in-process) and cached in
runs/benchmarks/. Writes reports/routing/multilabel_routing.json and .png.

Usage: python scripts/benchmarks/multilabel_routing.py [--seeds 20] [--targets 0.90,0.95]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sklearn.model_selection import KFold

from labelstream.cli.stack import REPO_ROOT
from labelstream.models import local as local_model
from labelstream.routing.multilabel import (
    ABSENT,
    PRESENT,
    UNCERTAIN,
    AbsentGuarantee,
    calibrated_probabilities,
    choose_item_threshold,
    choose_label_thresholds,
    decide_labels,
    fit_label_calibrators,
    item_confidence,
)
from labelstream.simulation import goemotions

CACHE = REPO_ROOT / "runs" / "benchmarks"
OUT = REPO_ROOT / "reports" / "routing"
console = Console()


@dataclass
class LabelledItems:
    texts: list[str]
    names: list[str]
    targets: np.ndarray  # (items, labels) multi-hot reference


def read_goemotions(ekman: bool) -> LabelledItems:
    """GoEmotions dev as texts and a multi-hot reference over EKMAN_LABELS (7) or ALL_LABELS (28)."""
    items = goemotions.load_items()
    names = list(goemotions.EKMAN_LABELS if ekman else goemotions.ALL_LABELS)
    sets = goemotions.label_sets(items, ekman=ekman)
    targets = np.array([[name in labels for name in names] for labels in sets], dtype=bool)
    return LabelledItems([item.text for item in items], names, targets)


def embeddings(texts: list[str]) -> np.ndarray:
    """The encoder's sentence embeddings, computed once and cached by the texts' hash."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"goemotions-dev-minilm-{digest}.npy"
    if path.exists():
        return np.load(path)
    classifier = local_model.load_encoder_classifier()
    rows = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("embedding GoEmotions dev", total=len(texts))
        for start in range(0, len(texts), 128):
            rows.append(classifier.embed(texts[start:start + 128]))
            progress.advance(task, len(rows[-1]))
    vectors = np.concatenate(rows).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


COST_MODEL = ("one unit is one yes/no judgement of one label on one item; a whole item shown to a person costs "
              "one unit per label, the uncertain labels asked as yes/no questions one unit each; people are right")
CASES = {"ekman": True, "all28": False}  # name -> Ekman groups + neutral (7 labels) or all 28
# 3 folds, not the router's 5: a 28-label head takes ~8 s to fit on busy cores, and 20 runs must
# stay within ~10 minutes. The stream is scored by these fold heads too (out_of_fold_probabilities).
FOLDS = 3
VERIFIED_FRACTION = 0.5
CONFIDENCE = 0.95


def out_of_fold_probabilities(head: Any, vectors: np.ndarray, targets: np.ndarray, fit: np.ndarray,
                              seed: int) -> np.ndarray:
    """The one-vs-rest head's probabilities after learning from the verified items `fit`, cross-fit:
    each verified item's from the head fit on the other folds (a head never grades itself), each
    stream item's from one of those same fold heads drawn at random. Scoring the stream with the
    head refit on all verified items instead, as scoring.py does for single labels, breaks the
    guarantee here: that head is sharper than the fold heads the thresholds were chosen on, so
    "p <= absent" reaches further into a label's occurrences (20 runs, Ekman, target 0.90: the
    per-label target met in 14/20 runs, the recall clause in 15/20). With a fold head the verified
    and stream scores are exchangeable, at the price of a head fit on (FOLDS - 1) / FOLDS of them."""
    probabilities = np.zeros(targets.shape)
    rest = np.setdiff1d(np.arange(len(targets)), fit)
    fold_of_rest = np.random.default_rng(seed + 1_000_003).integers(0, FOLDS, len(rest))
    for fold, (train, held) in enumerate(KFold(n_splits=FOLDS, shuffle=True, random_state=seed).split(fit)):
        fitted = head.fit(vectors[fit[train]], targets[fit[train]])
        probabilities[fit[held]] = fitted.predict(vectors[fit[held]])
        probabilities[rest[fold_of_rest == fold]] = fitted.predict(vectors[rest[fold_of_rest == fold]])
    return probabilities


def out_of_fold_calibrated(probabilities: np.ndarray, targets: np.ndarray, seed: int) -> np.ndarray:
    """Per-label calibrated probabilities of the verified items, each from calibrators fit without it."""
    out = np.zeros_like(probabilities)
    for train, held in KFold(n_splits=FOLDS, shuffle=True, random_state=seed).split(probabilities):
        out[held] = calibrated_probabilities(probabilities[held],
                                             fit_label_calibrators(probabilities[train], targets[train], seed))
    return out


def macro_f1(predicted: np.ndarray, reference: np.ndarray) -> float:
    tp = (predicted & reference).sum(axis=0)
    denominator = predicted.sum(axis=0) + reference.sum(axis=0)
    return float(np.mean(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 1.0)))


def nanmean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def rate(hits: np.ndarray) -> float:
    return float(hits.mean()) if hits.size else float("nan")


def per_label_run(decisions: np.ndarray, reference: np.ndarray, target: float) -> dict[str, Any]:
    """The guarantee checked on held-out items, and what each way of asking people costs."""
    labels = reference.shape[1]
    rows = []
    for k in range(labels):
        present, absent, held = decisions[:, k] == PRESENT, decisions[:, k] == ABSENT, reference[:, k]
        precision, npv = rate(held[present]), rate(~held[absent])
        missed = rate(absent[held])
        rows.append({"auto_present": int(present.sum()), "precision": precision,
                     "auto_absent": int(absent.sum()), "npv": npv, "occurrences": int(held.sum()),
                     "missed_share": missed, "decided_share": float((decisions[:, k] != UNCERTAIN).mean()),
                     # an empty decision cannot be wrong; NaN compares False, so test emptiness first
                     "precision_met": bool(not present.any() or precision >= target),
                     "npv_met": bool(not absent.any() or npv >= target),
                     "recall_met": bool(not held.any() or missed <= 1 - target)})
    uncertain = decisions == UNCERTAIN
    to_people = uncertain.any(axis=1)
    only_uncertain = np.where(uncertain, reference, decisions == PRESENT)  # people answer the uncertain labels
    whole = np.where(to_people[:, None], reference, decisions == PRESENT)  # people label the whole item
    auto = ~to_people
    return {
        "labels": rows,
        "precision_npv_met": all(r["precision_met"] and r["npv_met"] for r in rows),
        "recall_met": all(r["recall_met"] for r in rows),
        "human_fraction": float(to_people.mean()),
        "auto_exact_set_accuracy": rate((only_uncertain[auto] == reference[auto]).all(axis=1)),
        # Cost model: one unit = one yes/no judgement of one label on one item.
        "cost_whole_item": float(labels * to_people.mean()),
        "cost_uncertain_labels": float(uncertain.sum(axis=1).mean()),
        "final_uncertain_labels": {"exact_set_accuracy": float((only_uncertain == reference).all(axis=1).mean()),
                                   "label_accuracy": float((only_uncertain == reference).mean()),
                                   "macro_f1": macro_f1(only_uncertain, reference),
                                   "occurrences_lost": float((~only_uncertain & reference).sum() / reference.sum())},
        "final_whole_item": {"exact_set_accuracy": float((whole == reference).all(axis=1).mean()),
                             "label_accuracy": float((whole == reference).mean()),
                             "macro_f1": macro_f1(whole, reference),
                             "occurrences_lost": float((~whole & reference).sum() / reference.sum())},
    }


def exact_accuracy_curve(scores: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Final exact-set accuracy after sending the h lowest-scored items to people, h = 0..n."""
    right = exact[np.argsort(scores, kind="stable")].astype(float)
    auto_right_after = np.concatenate([np.cumsum(right[::-1])[::-1], [0.0]])
    return (auto_right_after + np.arange(len(right) + 1)) / len(right)


def run_case(vectors: np.ndarray, items: LabelledItems, seeds: int, targets: list[float],
             progress: Any, task: Any) -> dict[str, Any]:
    head = local_model.load_encoder_module().OneVsRestHead
    reference = items.targets
    labels = reference.shape[1]
    runs = []
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(len(reference))
        cut = int(len(reference) * VERIFIED_FRACTION)
        fit, test = np.sort(order[:cut]), np.sort(order[cut:])
        probabilities = out_of_fold_probabilities(head, vectors, reference, fit, seed)
        verified, held_out = probabilities[fit], probabilities[test]
        # The baseline's item-level score: calibrated per label, out-of-fold on the verified items
        # (a calibrator fit on every verified item then scores the stream: a monotone map per label
        # fit on scores exchangeable with the stream's, so no sharper-head mismatch there).
        calibrated_fit = out_of_fold_calibrated(verified, reference[fit], seed)
        calibrated_test = calibrated_probabilities(held_out, fit_label_calibrators(verified, reference[fit], seed))
        item_scores = item_confidence(calibrated_test)
        exact_test = ((calibrated_test >= 0.5) == reference[test]).all(axis=1)
        run: dict[str, Any] = {"seed": seed, "model": {
            "exact_set_accuracy": float(exact_test.mean()),
            "macro_f1": macro_f1(calibrated_test >= 0.5, reference[test])},
            "exact_accuracy_curve": exact_accuracy_curve(item_scores, exact_test), "targets": {}}
        for target in targets:
            at: dict[str, Any] = {}
            for form in AbsentGuarantee:
                thresholds = choose_label_thresholds(verified, reference[fit], target, CONFIDENCE, form)
                at[form.value] = per_label_run(decide_labels(held_out, thresholds), reference[test], target)
            threshold = choose_item_threshold(item_confidence(calibrated_fit),
                                              ((calibrated_fit >= 0.5) == reference[fit]).all(axis=1), target,
                                              CONFIDENCE)
            accepted = item_scores >= threshold.threshold
            at["item_level"] = {
                "human_fraction": float(1 - accepted.mean()), "cost_whole_item": float(labels * (1 - accepted.mean())),
                "auto_exact_set_accuracy": rate(exact_test[accepted]),
                "met": bool(not accepted.any() or exact_test[accepted].mean() >= target),
                "final_exact_set_accuracy": float((exact_test | ~accepted).mean())}
            run["targets"][f"{target:.2f}"] = at
        runs.append(run)
        progress.advance(task)
    return summarise(runs, items.names, reference.mean(axis=0), targets)


def summarise(runs: list[dict[str, Any]], names: list[str], prevalence: np.ndarray,
              targets: list[float]) -> dict[str, Any]:
    labels = len(names)
    curves = np.mean([r["exact_accuracy_curve"] for r in runs], axis=0)
    summary: dict[str, Any] = {
        "labels": names, "seeds": len(runs),
        "model_exact_set_accuracy": float(np.mean([r["model"]["exact_set_accuracy"] for r in runs])),
        "model_macro_f1": float(np.mean([r["model"]["macro_f1"] for r in runs])),
        # The item-level routing as a curve (lowest item confidence to people first), for equal quality.
        "item_level_curve": {"cost": (labels * np.linspace(0, 1, len(curves))).tolist()[::25],
                             "final_exact_set_accuracy": curves.tolist()[::25]},
        "targets": {}}
    for target in targets:
        key = f"{target:.2f}"
        out: dict[str, Any] = {}
        for form in AbsentGuarantee:
            points = [r["targets"][key][form.value] for r in runs]
            met_key = [p["precision_npv_met"] and (form == AbsentGuarantee.NPV or p["recall_met"]) for p in points]

            def mean(path: tuple[str, ...], points: list[dict[str, Any]] = points) -> float:
                values = []
                for p in points:
                    for step in path:
                        p = p[step]
                    values.append(p)
                return nanmean(values)

            # Equal quality: the item-level routing's cost (from its mean curve, each run's would
            # be noisier) to reach the same final exact-set accuracy as asking only uncertain labels.
            goal = mean(("final_uncertain_labels", "exact_set_accuracy"))
            reached = np.flatnonzero(curves >= goal - 1e-12)
            item_cost = float(labels * reached[0] / (len(curves) - 1)) if reached.size else float(labels)
            out[form.value] = {
                "runs_meeting_per_label_target": int(sum(met_key)),
                "runs_meeting_precision_and_npv": int(sum(p["precision_npv_met"] for p in points)),
                "runs_meeting_recall_clause": int(sum(p["recall_met"] for p in points)),
                "human_fraction": mean(("human_fraction",)),
                "auto_exact_set_accuracy": mean(("auto_exact_set_accuracy",)),
                "cost_whole_item": mean(("cost_whole_item",)),
                "cost_uncertain_labels": mean(("cost_uncertain_labels",)),
                "final_uncertain_labels": {m: mean(("final_uncertain_labels", m)) for m in
                                           ("exact_set_accuracy", "label_accuracy", "macro_f1", "occurrences_lost")},
                "final_whole_item": {m: mean(("final_whole_item", m)) for m in
                                     ("exact_set_accuracy", "label_accuracy", "macro_f1", "occurrences_lost")},
                "item_level_cost_at_equal_exact_set_accuracy": item_cost,
                "per_label": [{
                    "label": names[k],
                    "prevalence": float(prevalence[k]),
                    "decided_share": float(np.mean([p["labels"][k]["decided_share"] for p in points])),
                    "auto_present": float(np.mean([p["labels"][k]["auto_present"] for p in points])),
                    "precision": float(np.nanmean([p["labels"][k]["precision"] for p in points])
                                       if any(p["labels"][k]["auto_present"] for p in points) else float("nan")),
                    "auto_absent": float(np.mean([p["labels"][k]["auto_absent"] for p in points])),
                    "npv": float(np.nanmean([p["labels"][k]["npv"] for p in points])
                                 if any(p["labels"][k]["auto_absent"] for p in points) else float("nan")),
                    "missed_share": nanmean([p["labels"][k]["missed_share"] for p in points]),
                    "runs_met": int(sum(p["labels"][k]["precision_met"] and p["labels"][k]["npv_met"]
                                        and (form == AbsentGuarantee.NPV or p["labels"][k]["recall_met"])
                                        for p in points))} for k in range(labels)],
                "runs": points}
        items = [r["targets"][key]["item_level"] for r in runs]
        out["item_level"] = {
            "runs_meeting_target": int(sum(p["met"] for p in items)),
            "human_fraction": float(np.mean([p["human_fraction"] for p in items])),
            "cost_whole_item": float(np.mean([p["cost_whole_item"] for p in items])),
            "auto_exact_set_accuracy": nanmean([p["auto_exact_set_accuracy"] for p in items]),
            "final_exact_set_accuracy": float(np.mean([p["final_exact_set_accuracy"] for p in items])),
            "runs": items}
        summary["targets"][key] = out
    return summary


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = report["cases"]
    fig, axes = plt.subplots(2, len(cases), figsize=(7 * len(cases), 10), dpi=110, squeeze=False)
    colours = {"0.90": "tab:blue", "0.95": "tab:red"}
    for column, (name, case) in enumerate(cases.items()):
        top, bottom = axes[0][column], axes[1][column]
        curve = case["item_level_curve"]
        top.plot(curve["cost"], curve["final_exact_set_accuracy"], "k-", lw=1.5,
                 label="whole items by item-level confidence (curve)")
        for key, at in case["targets"].items():
            colour = colours.get(key, "tab:green")
            for form, marker in (("npv", "^"), ("npv_recall", "o")):
                point = at[form]
                top.plot(point["cost_uncertain_labels"], point["final_uncertain_labels"]["exact_set_accuracy"], marker,
                         color=colour, ms=9, mec="black",
                         label=f"{key} {form}: uncertain labels only ({point['runs_meeting_per_label_target']}/"
                               f"{case['seeds']} runs meet)")
                top.plot(point["cost_whole_item"], point["final_whole_item"]["exact_set_accuracy"], marker,
                         color=colour, ms=9, mfc="none", mew=2, label=f"{key} {form}: whole uncertain items")
            item = at["item_level"]
            top.plot(item["cost_whole_item"], item["final_exact_set_accuracy"], "s", color=colour, ms=9, mec="black",
                     label=f"{key} item-level threshold ({item['runs_meeting_target']}/{case['seeds']} runs meet)")
        top.set_xlabel("people's yes/no label judgements per item (whole item = one per label)")
        top.set_ylabel("final exact-set accuracy (people right)")
        top.set_title(f"{name}: {len(case['labels'])} labels")
        top.grid(alpha=0.3)
        top.legend(fontsize=6.5, loc="lower right")
        key = min(case["targets"])
        rows = case["targets"][key]["npv_recall"]["per_label"]
        x = np.arange(len(rows))
        present = [r["auto_present"] / max(1.0, r["auto_present"] + r["auto_absent"]) * r["decided_share"]
                   for r in rows]
        bottom.bar(x, [r["decided_share"] for r in rows], color="tab:grey", label="decided without people")
        bottom.bar(x, present, color="tab:orange", label="of which auto 'present'")
        bottom.plot(x, [r["prevalence"] for r in rows], "k_", ms=12, mew=2, label="prevalence")
        bottom.set_xticks(x, [r["label"] for r in rows], rotation=70, fontsize=7)
        bottom.set_ylabel("share of held-out items")
        bottom.set_title(f"per label, target {key}, npv_recall")
        bottom.legend(fontsize=7)
        bottom.grid(alpha=0.3, axis="y")
    fig.suptitle(f"GoEmotions dev: per-label routing (confidence {report['confidence_level']}), "
                 f"{report['seeds']} random verified/held-out splits")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_tables(report: dict[str, Any]) -> None:
    out = Console(width=200)
    for name, case in report["cases"].items():
        table = Table(title=f"{name} ({len(case['labels'])} labels): model exact-set accuracy "
                            f"{case['model_exact_set_accuracy']:.3f}, macro F1 {case['model_macro_f1']:.3f}")
        for column in ("target", "routing", "runs meeting", "human fraction", "auto exact-set acc.",
                       "cost: uncertain labels", "cost: whole items", "final exact (uncertain / whole)",
                       "occurrences lost", "item-level cost at equal exact acc."):
            table.add_column(column)
        for key, at in case["targets"].items():
            for form in ("npv", "npv_recall"):
                p = at[form]
                table.add_row(key, f"per label, {form}", f"{p['runs_meeting_per_label_target']}/{case['seeds']}",
                              f"{p['human_fraction']:.3f}", f"{p['auto_exact_set_accuracy']:.3f}",
                              f"{p['cost_uncertain_labels']:.2f}", f"{p['cost_whole_item']:.2f}",
                              f"{p['final_uncertain_labels']['exact_set_accuracy']:.3f} / "
                              f"{p['final_whole_item']['exact_set_accuracy']:.3f}",
                              f"{p['final_uncertain_labels']['occurrences_lost']:.3f}",
                              f"{p['item_level_cost_at_equal_exact_set_accuracy']:.2f}")
            item = at["item_level"]
            table.add_row(key, "item-level threshold", f"{item['runs_meeting_target']}/{case['seeds']}",
                          f"{item['human_fraction']:.3f}", f"{item['auto_exact_set_accuracy']:.3f}", "-",
                          f"{item['cost_whole_item']:.2f}", f"{item['final_exact_set_accuracy']:.3f}", "-", "-")
        out.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--targets", default="0.90,0.95")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--embed-only", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    started = time.monotonic()
    vectors = embeddings(read_goemotions(ekman=False).texts)
    if args.embed_only:
        return
    report: dict[str, Any] = {"dataset": "GoEmotions dev", "items": len(vectors), "seeds": args.seeds,
                              "confidence_level": CONFIDENCE, "verified_fraction": VERIFIED_FRACTION,
                              "targets": targets, "cost_model": COST_MODEL, "cases": {}}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        for name in args.cases.split(","):
            items = read_goemotions(ekman=CASES[name])
            task = progress.add_task(f"{name}: runs", total=args.seeds)
            report["cases"][name] = run_case(vectors, items, args.seeds, targets, progress, task)
    report["seconds"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "multilabel_routing.json").write_text(json.dumps(report, indent=1))
    plot(report, args.out / "multilabel_routing.png")
    print_tables(report)
    console.print(f"wrote {args.out / 'multilabel_routing.json'} and .png in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
