"""Offline evaluation of routing strategies on items with gold and real model predictions.

For each seed the items are split in two: "verified" items (what people would have labeled)
fit the scorer and choose thresholds; "held-out" items measure the result. For every strategy
the curve of final accuracy against the fraction of items sent to people is drawn, sending the
lowest-scored items first and counting people's labels as right with `human_accuracy`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
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
