"""Position bias of the causal_lm judge (Gemma-3-270M), with one response order and averaged over orders.

HH-RLHF (deploy/examples/preference/hh-rlhf: helpful-base test pairs, the chosen response at a seeded
random canonical position): the judge shown the responses in canonical order only (judge_orders=1)
and averaged over both orders (judge_orders=0, the default): accuracy against the crowdworker's
`chosen`, the share of pairs on which it picks response 1 (the response shown first in the one-order
run; the gold is "1" on 45% of the pairs, an unbiased judge is near that), the share of (pair, order)
prompts on which it picks the first letter shown (its raw position bias, which averaging cancels),
the share of pairs on which it picks the longer response (verbosity bias; beside the gold's share),
and seconds per pair.

PandaLM (deploy/examples/preference/pandalm: 676 pairs, three annotators): the judge with ties allowed
(labels "1", "2", "tie"; the prediction is the argmax over the three), its agreement with the
annotators' majority over three classes (a majority of "tie" counts as the third class; every pair
has a majority of at least two of three), beside GPT-3.5's and PandaLM-7B's verdicts from the
upstream files (GPT-3.5's 10 "garbage" verdicts count as wrong); then the same on the pairs whose
majority is not a tie, over two classes (the judge's tie column dropped, a tie verdict wrong).

The judge runs in-process (the same code and weights Triton serves), one model at a time. On CPU a
pair takes seconds, so the averaged runs measure as many pairs as fit in --minutes (HH-RLHF's pairs
in the file's order, which is a seeded shuffle; PandaLM's shuffled with seed 0, since upstream keeps
the pairs of a prompt together). The one-order figures are those of the first order of the averaged
run: judge_orders=1 shows exactly those prompts (the first --timing-pairs pairs are also run with
judge_orders=1, for its time per pair and to check that its probabilities are the same). Writes
reports/benchmarks/judge_bias.json and judge_bias.png.

Usage: python scripts/benchmarks/judge_bias.py [--minutes 15] [--pairs 500] [--pandalm 676]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from labelstream.cli.stack import REPO_ROOT
from labelstream.models.contract import preference_text
from labelstream.models.local import load_causal_classifier

EXAMPLES = REPO_ROOT / "deploy" / "examples" / "preference"
OUT = REPO_ROOT / "reports" / "benchmarks"
HH_INSTRUCTIONS = "Which response is more helpful to the human in the conversation?"
PANDALM_INSTRUCTIONS = ("Which response follows the instruction better: correct, helpful and concise? "
                        "The responses come from different AI assistants.")
VERDICT_MODELS = ("gpt-3.5-turbo", "pandalm-7b")


def load(path: Path, limit: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit]


def project(ties: bool, instructions: str) -> dict[str, Any]:
    return {"project_id": "judge-bias", "task": "pairwise", "labels": ["1", "2"] + (["tie"] if ties else []),
            "allow_ties": ties, "responses_per_item": 2, "instructions": instructions, "examples": []}


def wilson(successes: int, n: int, z: float = 1.96) -> list[float]:
    """The 95% Wilson interval of a proportion."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 4), round(centre + half, 4)]


def run(judge: Any, rows: list[dict[str, Any]], spec: dict[str, Any], orders: int, progress: Progress,
        title: str, chunk: int, seconds: float = math.inf) -> tuple[list[list[int]], np.ndarray, float]:
    """Per-order probabilities (pairs x orders x labels) with `orders` response orders (0: all), on
    the first rows, chunk by chunk until `seconds` have passed; and the seconds taken."""
    judge.judge_orders = orders
    texts = [preference_text(r["text"], [x["text"] for x in r["responses"]]) for r in rows]
    task = progress.add_task(title, total=len(texts))
    parts, started, used = [], time.perf_counter(), []
    for start in range(0, len(texts), chunk):
        if parts and time.perf_counter() - started > seconds:  # at least one chunk
            break
        used, by_order = judge.judge_by_order(texts[start:start + chunk], spec)
        parts.append(by_order)
        progress.advance(task, len(by_order))
    return used, np.concatenate(parts), time.perf_counter() - started


def longer(rows: list[dict[str, Any]]) -> np.ndarray:
    """Per pair, the label ("1"/"2") of its longer response in characters ("" when equally long)."""
    lengths = [[len(x["text"]) for x in r["responses"]] for r in rows]
    return np.array(["" if a == b else "1" if a > b else "2" for a, b in lengths])


def longer_share(said: list[str] | np.ndarray, longest: np.ndarray) -> float | None:
    """Of the pairs with a longer response where the verdict is "1" or "2", the share choosing it."""
    picks = [(v, lg) for v, lg in zip(said, longest, strict=True) if lg and v in ("1", "2")]
    return round(sum(v == lg for v, lg in picks) / len(picks), 4) if picks else None


def per_pair(rows: list[dict[str, Any]], by_order: np.ndarray) -> list[dict[str, Any]]:
    return [{"item_id": r["item_id"], "gold": r.get("gold_label"),
             "lengths": [len(x["text"]) for x in r["responses"]],
             "probabilities_by_order": np.round(probs, 4).tolist()} for r, probs in zip(rows, by_order, strict=False)]


def hh_scores(by_order: np.ndarray, orders: list[list[int]], gold: np.ndarray,
              seconds_per_pair: float, longest: np.ndarray) -> dict[str, Any]:
    probs = by_order.mean(axis=1)
    predicted = probs.argmax(axis=1)
    correct = int((predicted == gold).sum())
    n = len(gold)
    # Which letter won in each (pair, order) prompt: position 0 is the first response shown.
    shown_first = np.array([[by_order[i, o, order[0]] > by_order[i, o, order[1]] for o, order in enumerate(orders)]
                            for i in range(n)])
    return {"orders": len(orders), "pairs": n, "accuracy": round(correct / n, 4), "accuracy_95": wilson(correct, n),
            "share_choosing_response_1": round(float((predicted == 0).mean()), 4),
            "share_choosing_the_longer": longer_share([str(k + 1) for k in predicted], longest),
            "share_of_prompts_choosing_first_shown": round(float(shown_first.mean()), 4),
            "mean_probability_of_first_shown": round(float(np.mean(
                [[by_order[i, o, order[0]] for o, order in enumerate(orders)] for i in range(n)])), 4),
            "seconds_per_pair": round(seconds_per_pair, 3)}


def agreement(predicted: list[str], gold: list[str]) -> dict[str, Any]:
    n = len(gold)
    hits = sum(p == g for p, g in zip(predicted, gold, strict=True))
    return {"pairs": n, "agreement": round(hits / n, 4) if n else None, "agreement_95": wilson(hits, n)}


def verdict_scores(said: list[str], gold: list[str], longest: np.ndarray) -> dict[str, Any]:
    labels = ["1", "2", "tie"]
    not_tie = [i for i, g in enumerate(gold) if g != "tie"]
    return {"three_classes": agreement(said, gold), "share_choosing_the_longer": longer_share(said, longest),
            "predicted": {k: said.count(k) for k in labels} | {"other": sum(s not in labels for s in said)},
            "without_tie_majorities": agreement([said[i] for i in not_tie], [gold[i] for i in not_tie])}


def pandalm_scores(rows: list[dict[str, Any]], by_order: np.ndarray, seconds: float) -> dict[str, Any]:
    labels = ["1", "2", "tie"]
    rows = rows[:len(by_order)]
    gold = [r["gold_label"] for r in rows]
    longest = longer(rows)
    out: dict[str, Any] = {"pairs": len(rows), "majority": {k: gold.count(k) for k in labels},
                           "majority_share_choosing_the_longer": longer_share(gold, longest),
                           "seconds_per_pair": round(seconds / len(rows), 3), "judges": {}}
    # The first order alone is what judge_orders=1 gives (the same prompts; checked on HH-RLHF).
    verdicts = {"causal_lm, 1 order": by_order[:, 0], f"causal_lm, {by_order.shape[1]} orders": by_order.mean(axis=1)}
    for name, probs in verdicts.items():
        three = [labels[k] for k in probs.argmax(axis=1)]
        two = [labels[k] for k in probs[:, :2].argmax(axis=1)]
        out["judges"][name] = verdict_scores(three, gold, longest)
        # Over two classes the judge's tie column is dropped (it never wins here anyway).
        out["judges"][name]["without_tie_majorities"] = verdict_scores(two, gold, longest)["without_tie_majorities"]
    for name in VERDICT_MODELS:
        out["judges"][name] = verdict_scores([r["metadata"][name] for r in rows], gold, longest)
    return out


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), dpi=110)
    hh = report["hh_rlhf"]
    runs = [hh["one_order"], hh["averaged"]]
    names = ["1 order", f"{hh['averaged']['orders']} orders averaged"]
    metrics = [("accuracy", "accuracy vs chosen"), ("share_choosing_response_1", "picks response 1"),
               ("share_of_prompts_choosing_first_shown", "picks the first shown\n(per prompt)"),
               ("share_choosing_the_longer", f"picks the longer\n(gold: {hh['gold_share_the_longer']:.2f})")]
    width = 0.38
    for k, run_ in enumerate(runs):
        xs = np.arange(len(metrics)) + (k - 0.5) * width
        bars = left.bar(xs, [run_[m] for m, _ in metrics], width, label=names[k])
        left.bar_label(bars, fmt="%.2f", fontsize=8)
    left.axhline(0.5, color="grey", lw=0.8, ls="--", label="0.5 (chance; no position bias)")
    left.axhline(hh["gold_share_response_1"], color="green", lw=0.8, ls=":",
                 label=f"gold is response 1 on {hh['gold_share_response_1']:.0%}")
    left.set_xticks(np.arange(len(metrics)), [t for _, t in metrics], fontsize=8)
    left.set_ylim(0, 1.3)
    left.set_title(f"HH-RLHF helpful-base: {hh['pairs']} pairs, human 'chosen' as gold")
    left.legend(fontsize=7, loc="upper center", ncol=2)
    panda = report["pandalm"]
    judges = list(panda["judges"])
    xs = np.arange(len(judges))
    three = [panda["judges"][j]["three_classes"]["agreement"] for j in judges]
    two = [panda["judges"][j]["without_tie_majorities"]["agreement"] for j in judges]
    bars = right.bar(xs - width / 2, three, width, label="3 classes, all pairs")
    right.bar_label(bars, fmt="%.2f", fontsize=8)
    bars = right.bar(xs + width / 2, two, width, label="2 classes, non-tie majorities")
    right.bar_label(bars, fmt="%.2f", fontsize=8)
    right.set_xticks(xs, judges, fontsize=8)
    right.set_ylim(0, 1.05)
    right.set_ylabel("agreement with the annotators' majority")
    right.set_title(f"PandaLM test set: {panda['pairs']} pairs (seeded sample), ties allowed")
    right.legend(fontsize=7, loc="upper left")
    for ax in (left, right):
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("causal_lm judge (Gemma-3-270M): position bias, one order vs averaged over orders")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=500, help="HH-RLHF pairs at most (of 500)")
    parser.add_argument("--pandalm", type=int, default=676, help="PandaLM pairs at most (of 676)")
    parser.add_argument("--minutes", type=float, default=15.0,
                        help="time for the averaged runs: the pairs that fit are measured (0: no limit)")
    parser.add_argument("--hh-share", type=float, default=0.6, help="HH-RLHF's share of --minutes")
    parser.add_argument("--timing-pairs", type=int, default=20,
                        help="HH-RLHF pairs also run with judge_orders=1, for its time per pair")
    parser.add_argument("--chunk", type=int, default=10, help="pairs per call (progress granularity)")
    options = parser.parse_args()
    budget = options.minutes * 60 if options.minutes > 0 else math.inf
    hh_rows = load(EXAMPLES / "hh-rlhf" / "items.jsonl", options.pairs)  # already in a seeded random order
    panda_all = load(EXAMPLES / "pandalm" / "items.jsonl", 10**6)
    panda_rows = list(panda_all)
    random.Random(0).shuffle(panda_rows)  # upstream keeps a prompt's pairs together: a prefix would be few prompts
    panda_rows = panda_rows[:options.pandalm]
    judge = load_causal_classifier()
    hh_spec = project(False, HH_INSTRUCTIONS)
    with Progress() as progress:
        one_orders, one, one_seconds = run(judge, hh_rows[:options.timing_pairs], hh_spec, 1, progress,
                                           "HH-RLHF, judge_orders=1 (timing)", options.chunk)
        all_orders, both, both_seconds = run(judge, hh_rows, hh_spec, 0, progress, "HH-RLHF, all orders",
                                             options.chunk, budget * options.hh_share)
        panda_orders, panda, panda_seconds = run(
            judge, panda_rows, project(True, PANDALM_INSTRUCTIONS), 0, progress,
            "PandaLM, all orders (ties allowed)", options.chunk, budget - both_seconds)
    measured = len(both)
    gold = np.array([int(r["gold_label"]) - 1 for r in hh_rows[:measured]])
    overlap = min(len(one), measured)
    hh_longer = longer(hh_rows[:measured])
    report: dict[str, Any] = {
        "model": "causal_lm (Gemma-3-270M Q4_K_M, llama-cpp-python, in-process, 2 threads)",
        "budget_minutes": options.minutes,
        "hh_rlhf": {
            "pairs": measured, "pairs_available": len(hh_rows), "instructions": HH_INSTRUCTIONS,
            "gold_share_response_1": round(float((gold == 0).mean()), 4),
            # judge_orders=1 shows the first order's prompts: its figures are those of the first order of the
            # averaged run (the same numbers, checked on the timing pairs), its time that of the timing run.
            "gold_share_the_longer": longer_share([r["gold_label"] for r in hh_rows[:measured]], hh_longer),
            "one_order": hh_scores(both[:, :1], all_orders[:1], gold, one_seconds / len(one), hh_longer),
            "averaged": hh_scores(both, all_orders, gold, both_seconds / measured, hh_longer),
            "timing_pairs": len(one),
            "max_difference_judge_orders_1_vs_first_order": float(np.abs(one[:overlap, 0] - both[:overlap, 0]).max()),
        },
        "pandalm": {"instructions": PANDALM_INSTRUCTIONS, "orders": len(panda_orders),
                    "pairs_available": len(panda_all), "sample": "the file's pairs shuffled with seed 0",
                    **pandalm_scores(panda_rows, panda, panda_seconds),
                    "all_pairs": {name: verdict_scores([r["metadata"][name] for r in panda_all],
                                                       [r["gold_label"] for r in panda_all], longer(panda_all))
                                  for name in VERDICT_MODELS}},
        "per_pair": {"hh_rlhf": per_pair(hh_rows[:measured], both), "pandalm": per_pair(panda_rows, panda),
                     "orders": {"hh_rlhf": all_orders, "pandalm": panda_orders}},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "judge_bias.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, OUT / "judge_bias.png")
    hh = report["hh_rlhf"]
    print(f"\nHH-RLHF helpful-base, {hh['pairs']} of {hh['pairs_available']} pairs (those that fit the time given; "
          f"gold is response 1 on {hh['gold_share_response_1']:.1%})")
    print(f"{'run':<22}{'accuracy':>10}{'95% CI':>16}{'picks 1':>10}{'first shown':>13}{'longer':>9}{'s/pair':>9}")
    for name, key in (("1 order", "one_order"), (f"{hh['averaged']['orders']} orders averaged", "averaged")):
        r = hh[key]
        interval = f"[{r['accuracy_95'][0]:.3f}, {r['accuracy_95'][1]:.3f}]"
        print(f"{name:<22}{r['accuracy']:>10.3f}{interval:>16}{r['share_choosing_response_1']:>10.3f}"
              f"{r['share_of_prompts_choosing_first_shown']:>13.3f}{r['share_choosing_the_longer']:>9.3f}"
              f"{r['seconds_per_pair']:>9.2f}")
    print(f"{'gold (human chosen)':<22}{'':>10}{'':>16}{hh['gold_share_response_1']:>10.3f}{'':>13}"
          f"{hh['gold_share_the_longer']:>9.3f}")
    print(f"(1 order: time from {hh['timing_pairs']} pairs run with judge_orders=1; its choices are the first order's, "
          f"max difference {hh['max_difference_judge_orders_1_vs_first_order']:.1e})")
    panda_report = report["pandalm"]
    print(f"\nPandaLM test set, {panda_report['pairs']} of {panda_report['pairs_available']} pairs (seeded sample), "
          f"majority {panda_report['majority']} ({panda_report['seconds_per_pair']:.2f} s/pair, "
          f"{panda_report['orders']} orders)")
    print(f"{'judge':<26}{'3 classes':>11}{'non-tie, 2 classes':>20}{'longer':>8}  predicted")
    rows_out = [*panda_report["judges"].items(),
                *((f"{k}, all pairs", v) for k, v in panda_report["all_pairs"].items())]
    for name, r in rows_out:
        print(f"{name:<26}{r['three_classes']['agreement']:>11.3f}{r['without_tie_majorities']['agreement']:>20.3f}"
              f"{r['share_choosing_the_longer']:>8.3f}  {r['predicted']}")
    print(f"{'annotators majority':<26}{'':>31}{panda_report['majority_share_choosing_the_longer']:>8.3f}")
    print(f"\nwrote {OUT / 'judge_bias.json'} and {OUT / 'judge_bias.png'}")

if __name__ == "__main__":
    main()
