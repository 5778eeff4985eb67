"""Offline evaluation of routing strategies on items with gold and real model predictions.

For each seed the items are split in two: "verified" items (what people would have labeled)
fit the scorer and choose thresholds; "held-out" items measure the result. For every strategy
the curve of final accuracy against the fraction of items sent to people is drawn, sending the
lowest-scored items first and counting people's labels as right with `human_accuracy`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom
from sklearn.model_selection import KFold

from labelstream.routing.scoring import fit_routing_model
from labelstream.routing.thresholds import DEFAULT_METHOD

CURVE_STRATEGIES = ("random", "raw_probability", "calibrated", "meta")
GRID = np.linspace(0.0, 1.0, 101)


@dataclass
class EvaluationData:
    probabilities: np.ndarray  # (n, classes), the model's (before it learns from any verified item)
    labels: np.ndarray         # gold class index
    text_lengths: np.ndarray
    # Optional: the model's probabilities once it has learned from the verified items of a split
    # (out-of-fold for those items themselves); None: the model never learns.
    predict_split: Callable[[np.ndarray, int], np.ndarray] | None = None


def refit_head_predictions(classifier: Any, project: dict[str, Any], texts: list[str], label_names: list[str],
                           labels: np.ndarray, folds: int = 5) -> Callable[[np.ndarray, int], np.ndarray]:
    """Probabilities of the encoder model whose head is fit on the project's examples plus the
    verified items of a split: out-of-fold for the verified items, from all of them for the rest."""

    def head_on(indices: np.ndarray) -> dict[str, Any]:
        extra = [{"text": texts[i], "label": label_names[labels[i]]} for i in indices]
        return {**project, "examples": list(project["examples"]) + extra}

    def predict(fit: np.ndarray, seed: int) -> np.ndarray:
        probabilities = np.zeros((len(texts), len(label_names)))
        rest = np.setdiff1d(np.arange(len(texts)), fit)
        probabilities[rest] = classifier.predict([texts[i] for i in rest], head_on(fit))
        for _, held in KFold(n_splits=folds, shuffle=True, random_state=seed).split(fit):
            train = np.setdiff1d(fit, fit[held])
            probabilities[fit[held]] = classifier.predict([texts[i] for i in fit[held]], head_on(train))
        return probabilities

    return predict


def accuracy_curve(scores: np.ndarray, correct: np.ndarray, human_accuracy: float) -> np.ndarray:
    """Final accuracy at each human fraction of GRID, people taking the lowest scores first."""
    order = np.argsort(scores, kind="stable")
    correct_sorted = correct[order].astype(float)
    n = len(correct)
    # auto-correct among items left to the model after sending the first h to people
    auto_correct_after = np.concatenate([np.cumsum(correct_sorted[::-1])[::-1], [0.0]])
    curve = []
    for fraction in GRID:
        h = int(round(fraction * n))
        curve.append((auto_correct_after[h] + human_accuracy * h) / n)
    return np.array(curve)


def auto_accuracy_curve(scores: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Accuracy of the auto-accepted items at each auto fraction of GRID (the most confident first)."""
    correct_sorted = correct[np.argsort(-scores, kind="stable")].astype(float)
    hits = np.cumsum(correct_sorted)
    counts = np.maximum(1, np.round(GRID * len(correct)).astype(int))
    return hits[np.minimum(counts, len(correct)) - 1] / np.minimum(counts, len(correct))


def human_fraction_for(curve: np.ndarray, final_accuracy: float) -> float:
    reached = np.nonzero(curve >= final_accuracy - 1e-12)[0]
    return float(GRID[reached[0]]) if reached.size else 1.0


def evaluate(data: EvaluationData, target: float, seeds: int = 20, confidence_level: float = 0.95,
             bound: str = "wilson", human_accuracy: float = 1.0, verified_fraction: float = 0.5,
             final_accuracy: float | None = None, progress=lambda _seed: None,
             threshold_method: str = DEFAULT_METHOD) -> dict[str, Any]:
    """`threshold_method` chooses the operating points' thresholds (routing.thresholds.ThresholdMethod;
    "pointwise_scan" reproduces the former, unsound rule as a baseline)."""
    n = len(data.labels)
    final_accuracy = target if final_accuracy is None else final_accuracy
    curves: dict[str, list[np.ndarray]] = {s: [] for s in CURVE_STRATEGIES}
    auto_curves: dict[str, list[np.ndarray]] = {s: [] for s in CURVE_STRATEGIES}
    operating: dict[str, list[dict[str, float]]] = {"calibrated": [], "meta": []}
    model_accuracies: list[float] = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        cut = int(n * verified_fraction)
        fit, test = order[:cut], order[cut:]
        probabilities = data.predict_split(fit, seed) if data.predict_split else data.probabilities
        probs_test = probabilities[test]
        predicted_test = probs_test.argmax(axis=1)
        correct_test = predicted_test == data.labels[test]
        model_accuracies.append(float(correct_test.mean()))
        scores = {"random": rng.random(len(test)), "raw_probability": probs_test.max(axis=1)}
        for strategy in ("calibrated", "meta"):
            model = fit_routing_model(strategy, probabilities[fit], data.text_lengths[fit], data.labels[fit],
                                      target, confidence_level, bound, seed, threshold_method=threshold_method)
            scores[strategy] = model.score(probs_test, data.text_lengths[test])
            accepted = np.array([model.thresholds.accepts(int(c), float(s))
                                 for c, s in zip(predicted_test, scores[strategy], strict=True)])
            operating[strategy].append({
                "seed": seed, "auto_fraction": float(accepted.mean()), "human_fraction": float(1 - accepted.mean()),
                "auto_accuracy": float(correct_test[accepted].mean()) if accepted.any() else float("nan"),
                "auto_accepted": int(accepted.sum()),
                "final_accuracy": float((correct_test[accepted].sum() + human_accuracy * (~accepted).sum())
                                        / len(test))})
        for strategy in CURVE_STRATEGIES:
            curves[strategy].append(accuracy_curve(scores[strategy], correct_test, human_accuracy))
            auto_curves[strategy].append(auto_accuracy_curve(scores[strategy], correct_test))
        progress(seed)

    summary: dict[str, Any] = {
        "items": n, "seeds": seeds, "target_accuracy": target, "confidence_level": confidence_level,
        "bound": bound, "threshold_method": str(threshold_method), "human_accuracy": human_accuracy,
        "verified_fraction": verified_fraction,
        "model_accuracy_before_learning": float((data.probabilities.argmax(axis=1) == data.labels).mean()),
        "model_learns_from_verified": data.predict_split is not None,
        "grid": GRID.tolist(), "strategies": {}, "held_out_model_accuracy": float(np.mean(model_accuracies))}
    for strategy, runs in curves.items():
        mean = np.mean(runs, axis=0)
        summary["strategies"][strategy] = {
            "mean_curve": mean.tolist(),
            "mean_auto_accuracy_curve": np.mean(auto_curves[strategy], axis=0).tolist(),
            "auc": float(np.trapezoid(mean, GRID)) if hasattr(np, "trapezoid") else float(np.trapz(mean, GRID)),
            "human_fraction_for_final_accuracy": float(np.mean([human_fraction_for(c, final_accuracy)
                                                                for c in runs])),
        }
    summary["final_accuracy_for_comparison"] = final_accuracy
    for strategy, points in operating.items():
        accuracies = [p["auto_accuracy"] for p in points if p["auto_accepted"] > 0]
        summary["strategies"][strategy]["operating_point"] = {
            "runs": points,
            "runs_meeting_target": int(sum(a >= target for a in accuracies) + sum(p["auto_accepted"] == 0
                                                                                  for p in points)),
            "runs_with_auto_accepted": len(accuracies),
            "mean_human_fraction": float(np.mean([p["human_fraction"] for p in points])),
            "mean_auto_accuracy": float(np.mean(accuracies)) if accuracies else float("nan"),
            "mean_final_accuracy": float(np.mean([p["final_accuracy"] for p in points])),
        }
    return summary


def plot(summary: dict[str, Any], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.array(summary["grid"])
    target = summary["target_accuracy"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5), dpi=110)
    styles = {"random": ":", "raw_probability": "--", "calibrated": "-", "meta": "-."}
    for strategy, result in summary["strategies"].items():
        name = strategy.replace("_", " ")
        left.plot(grid, result["mean_curve"], styles[strategy], lw=2, label=f"{name} (AUC {result['auc']:.4f})")
        right.plot(grid, result["mean_auto_accuracy_curve"], styles[strategy], lw=2, label=name)
    for strategy, marker in (("calibrated", "o"), ("meta", "s")):
        point = summary["strategies"][strategy]["operating_point"]
        label = (f"{strategy}: thresholds for target {target:.2f} "
                 f"({point['runs_meeting_target']}/{summary['seeds']} runs meet it)")
        left.plot(point["mean_human_fraction"], point["mean_final_accuracy"], marker, ms=10, mec="black", label=label)
        right.plot(1 - point["mean_human_fraction"], point["mean_auto_accuracy"], marker, ms=10, mec="black",
                   label=label)
    left.set_xlabel("fraction of items sent to people")
    left.set_ylabel(f"final accuracy (people right with p={summary['human_accuracy']:.2f})")
    left.set_title("final accuracy vs human fraction")
    right.axhline(target, color="grey", lw=0.8)
    right.set_xlabel("fraction of items auto-accepted (most confident first)")
    right.set_ylabel("accuracy of auto-accepted items")
    right.set_title("accuracy of what the model labels alone")
    right.set_xlim(0, 1)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if ax is left else "lower left", fontsize=8)
    learned = "model learns from verified items" if summary["model_learns_from_verified"] else "few-shot model"
    fig.suptitle(f"{title}: {summary['items']} items, {summary['seeds']} seeds, {learned}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- Routing at stream scale (issue 14): what the router accepts against what hindsight allows ---


def runs_needed(runs: int, confidence_level: float) -> int:
    """Runs of `runs` that must meet the target for a guarantee at `confidence_level` to look kept
    (19 of 20 at 0.95)."""
    return math.ceil(confidence_level * runs - 1e-9)


def by_confidence(scores: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """`correct`, most confident first. Ties keep the items' order, which callers make random
    (the held-out items of a run are a random permutation), so a tie is cut at random."""
    return np.asarray(correct, dtype=bool)[np.argsort(-np.asarray(scores, dtype=float), kind="stable")]


def oracle_fraction(correct_by_confidence: np.ndarray, target: float) -> float:
    """The largest fraction f whose f most confident items are at least `target` accurate, in
    hindsight on these very items (0.0 when not even the most confident item is right)."""
    correct = np.asarray(correct_by_confidence, dtype=float)
    if not correct.size:
        return 0.0
    counts = np.arange(1, correct.size + 1)
    # hits >= target * count in integers where the float product is exact enough; the tolerance
    # keeps 19 of 20 at 0.95 counted as meeting it.
    reaching = np.flatnonzero(np.cumsum(correct) >= target * counts - 1e-9)
    return float((reaching[-1] + 1) / correct.size) if reaching.size else 0.0


def same_guarantee_limit(runs_by_confidence: list[np.ndarray], target: float, need: int,
                         fractions: np.ndarray | None = None) -> float:
    """The largest single fraction f that, applied to every run in hindsight (each run's
    max(1, round(f n)) most confident held-out items), is at least `target` accurate in at least
    `need` runs: the most any router could accept on every run alike and still keep the promise
    that often. Candidates: `fractions`, or every count when None (a coarse grid damps the luck
    of one large count passing when held-out sets are small; scripts/threshold_power.py). Runs
    must have the same number of held-out items."""
    sizes = {len(r) for r in runs_by_confidence}
    if len(sizes) != 1:
        raise ValueError(f"runs have different held-out sizes {sorted(sizes)}")
    n = sizes.pop()
    if not n:
        return 0.0
    candidates = np.arange(1, n + 1) / n if fractions is None else np.asarray(fractions, dtype=float)
    counts = np.minimum(n, np.maximum(1, np.round(candidates * n).astype(int)))
    meeting = np.zeros(len(counts), dtype=int)
    for correct in runs_by_confidence:
        meeting += np.cumsum(np.asarray(correct, dtype=float))[counts - 1] >= target * counts - 1e-9
    passing = np.flatnonzero(meeting >= need)
    return float(candidates[passing].max()) if passing.size else 0.0


def single_test_reference(runs_by_confidence: list[np.ndarray], n_verified: int, target: float,
                          confidence_level: float) -> float:
    """Not a definition of issue 14 but the reason a size falls short: the most a sound rule can
    expect to accept by testing ONE fraction f, picked in advance knowing the held-out curve, on
    n_verified items: max over f of f * P(the exact binomial test at 1 - confidence_level passes
    on round(f n_verified) items that are A(f) accurate), A(f) the runs' mean accuracy of their
    f most confident held-out items. The oracle and the limit ignore that the router sees only
    n_verified items; with few of them a fraction the size of the oracle is too few items to
    pass any test (at 0.95 and 95% confidence, 59 items all right are the fewest that can)."""
    n = len(runs_by_confidence[0])
    fractions = np.arange(1, 1001) / 1000
    held_counts = np.maximum(1, np.round(fractions * n).astype(int))
    accuracy = np.mean([np.cumsum(np.asarray(r, dtype=float))[held_counts - 1] / held_counts
                        for r in runs_by_confidence], axis=0)
    counts = np.maximum(1, np.round(fractions * n_verified).astype(int))
    # fewest right of `counts` whose p-value P(Binomial(count, target) >= right) is <= alpha
    needed = binom.ppf(confidence_level, counts, target) + 1
    passing = binom.sf(needed - 1, counts, np.clip(accuracy, 0.0, 1.0))
    return float((fractions * passing).max())


def ratio(chosen: float, reference: float) -> float | None:
    """Efficiency (reference: the same-guarantee limit) or payoff (reference: the oracle); None
    when the reference is 0 (nothing could be accepted, so there is nothing to fall short of)."""
    return chosen / reference if reference > 0 else None


def runs_meeting_target(auto_accuracies: list[float], target: float) -> int:
    """Runs whose auto-accepted held-out items are at least `target` accurate; a run that accepts
    nothing (accuracy nan) keeps the promise."""
    return int(sum(math.isnan(a) or a >= target - 1e-12 for a in auto_accuracies))


def evaluate_scale(probabilities: np.ndarray, labels: np.ndarray, text_lengths: np.ndarray, sizes: list[int],
                   targets: list[float], strategies: list[str], seeds: int = 20, confidence_level: float = 0.95,
                   threshold_method: str = DEFAULT_METHOD, progress: Callable[[], None] = lambda: None,
                   ) -> dict[str, Any]:
    """Per verified size n, target and strategy, over `seeds` runs: n verified items drawn at
    random fit the routing model (fit_routing_model, as the router does) and every other item is
    held out. Reported: the chosen auto fraction (mean over runs), its held-out accuracy, the
    oracle auto fraction (mean over runs), the same-guarantee limit, efficiency = chosen / limit,
    payoff = chosen / oracle and the runs meeting the target.

    Oracle and limit rank the held-out items by the score the router thresholds (the routing
    model's own score, fit on that run's verified items), so they say what that score allows.
    A run's verified items for a larger n extend those for a smaller one (the same permutation),
    as a stream's verified items accumulate."""
    probabilities = np.asarray(probabilities, dtype=float)
    labels = np.asarray(labels, dtype=int)
    text_lengths = np.asarray(text_lengths, dtype=float)
    n_items = len(labels)
    predicted = probabilities.argmax(axis=1)
    correct = predicted == labels
    need = runs_needed(seeds, confidence_level)
    cells = []
    for n in sizes:
        if not 0 < n < n_items:
            raise ValueError(f"verified size {n} must be between 1 and {n_items - 1}")
        runs: dict[tuple[float, str], list[dict[str, Any]]] = {(t, s): [] for t in targets for s in strategies}
        for seed in range(seeds):
            order = np.random.default_rng(seed).permutation(n_items)
            fit, held = order[:n], order[n:]
            for target in targets:
                for strategy in strategies:
                    model = fit_routing_model(strategy, probabilities[fit], text_lengths[fit], labels[fit], target,
                                              confidence_level, seed=seed, threshold_method=threshold_method)
                    scores = model.score(probabilities[held], text_lengths[held])
                    thresholds = np.array([model.thresholds.threshold(c).threshold
                                           for c in range(probabilities.shape[1])])
                    accepted = scores >= thresholds[predicted[held]]
                    runs[target, strategy].append({
                        "seed": seed, "auto_fraction": float(accepted.mean()), "auto_accepted": int(accepted.sum()),
                        "auto_accuracy": float(correct[held][accepted].mean()) if accepted.any() else float("nan"),
                        "by_confidence": by_confidence(scores, correct[held])})
                    progress()
        for (target, strategy), points in runs.items():
            ranked = [p.pop("by_confidence") for p in points]
            chosen = float(np.mean([p["auto_fraction"] for p in points]))
            oracle = float(np.mean([oracle_fraction(r, target) for r in ranked]))
            limit = same_guarantee_limit(ranked, target, need)
            reference = single_test_reference(ranked, n, target, confidence_level)
            accuracies = [p["auto_accuracy"] for p in points]
            accepting = [a for a in accuracies if not math.isnan(a)]
            cells.append({
                "target": target, "strategy": strategy, "verified": n, "held_out": n_items - n, "runs": seeds,
                "chosen_auto_fraction": chosen, "oracle_auto_fraction": oracle, "same_guarantee_limit": limit,
                "efficiency": ratio(chosen, limit), "payoff": ratio(chosen, oracle),
                "single_test_reference": reference,
                "runs_meeting_target": runs_meeting_target(accuracies, target), "runs_needed": need,
                "runs_accepting_something": len(accepting),
                "mean_auto_accuracy": float(np.mean(accepting)) if accepting else float("nan"),
                "min_auto_accuracy": float(np.min(accepting)) if accepting else float("nan"),
                "runs_detail": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in p.items()}
                                for p in points]})
    return {"model_accuracy": float(correct.mean()), "sizes": list(sizes), "targets": list(targets),
            "strategies": list(strategies), "seeds": seeds, "confidence_level": confidence_level,
            "threshold_method": str(threshold_method),
            "ordering": "the routing model's score (routing/scoring.py RoutingModel.score), fit per run",
            "cells": cells}


def plot_scale(summary: dict[str, Any], path: str, title: str) -> None:
    """Per target: chosen, oracle, same-guarantee limit and single-test reference auto fractions
    against verified items."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = summary["targets"]
    fig, axes = plt.subplots(1, len(targets), figsize=(7.5 * len(targets), 6), dpi=110, squeeze=False)
    colours = {"calibrated": "tab:blue", "meta": "tab:orange"}
    for ax, target in zip(axes[0], targets, strict=True):
        for strategy in summary["strategies"]:
            cells = sorted((c for c in summary["cells"] if c["target"] == target and c["strategy"] == strategy),
                           key=lambda c: c["verified"])
            x = [c["verified"] for c in cells]
            colour = colours.get(strategy)
            ax.plot(x, [c["oracle_auto_fraction"] for c in cells], ":", color=colour, lw=1.5,
                    label=f"{strategy}: oracle")
            ax.plot(x, [c["same_guarantee_limit"] for c in cells], "--", color=colour, lw=1.5,
                    label=f"{strategy}: same-guarantee limit")
            ax.plot(x, [c["single_test_reference"] for c in cells], "-.", color=colour, lw=1,
                    label=f"{strategy}: one exact test, fraction known in advance")
            ax.plot(x, [c["chosen_auto_fraction"] for c in cells], "o-", color=colour, lw=2,
                    label=f"{strategy}: chosen")
            for c in cells:
                ax.annotate(f"{c['runs_meeting_target']}/{c['runs']}", (c["verified"], c["chosen_auto_fraction"]),
                            textcoords="offset points", xytext=(4, -12), fontsize=7, color=colour)
        ax.set_xscale("log")
        ax.set_xticks(summary["sizes"], [f"{n:,}" for n in summary["sizes"]])
        ax.minorticks_off()
        ax.set_xlabel("verified items (random sample of the stream)")
        ax.set_ylabel("auto-accepted fraction of held-out items")
        ax.set_title(f"target {target:.2f} (labels: runs meeting it)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{title}\n{summary['seeds']} runs per point, confidence {summary['confidence_level']:.2f}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
