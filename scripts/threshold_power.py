"""How much a sound threshold rule auto-accepts, against what hindsight allows (routing/thresholds.py).

Synthetic streams shaped like SST-2's encoder curve: items at confidence rank u (0: the most
confident) are right with probability p(u) = max(0.5, 1 - c u^g), with c and g solved so that the
most confident 24% are 95% right and the whole stream is 88% right ("learning": the encoder head
refit on verified items; this matches the measured curve in reports/routing/sst2-demo-target0.95.json)
or 72.7% ("few-shot"). Two predicted classes that behave alike. The score is 1 - u.

Per curve, verified size n and run (20 runs): n verified items choose the thresholds; n further
items (the held-out: the next n items of the stream, as routing/evaluation.py splits 50/50)
measure them. For every method:
- chosen: share of held-out items auto-accepted (mean over runs);
- oracle: per run in hindsight, the largest share of the held-out's most confident items that is
  >= target accurate (mean over runs);
- limit (same-guarantee limit): the largest single share f (0.5% grid) that, applied to every run's
  held-out in hindsight, is >= target accurate in >= 19 of 20 runs. A max over a grid of noisy
  counts: at small n a lucky large f can qualify, so `limit_exact` is also given: the largest f
  whose held-out accuracy reaches the target with probability >= 95% by the known curve;
- efficiency = chosen / limit, payoff = chosen / oracle;
- runs meeting the target: by the TRUE accuracy of what is accepted (from p(u); what the
  guarantee is about) and by the held-out items' realized accuracy (adds the held-out's own noise);
- best preset single test: a reference for sound rules (see best_preset_single_test);
- check runs (400 more runs, main methods): the share whose true accepted accuracy is below the
  target, and the mean true share accepted: 20 runs resolve neither.

Writes reports/routing/threshold_power.json and prints one table per curve.
Usage: PYTHONPATH=services python scripts/threshold_power.py [--runs 20] [--out reports/routing/threshold_power.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import fsolve
from scipy.stats import binom

from labelstream.routing.evaluation import oracle_fraction, runs_needed, same_guarantee_limit
from labelstream.routing.thresholds import (
    FIRST_STEP_FRACTION,
    FIRST_STEP_MAX_ITEMS,
    STEP_FRACTION,
    ThresholdMethod,
    Thresholds,
    choose_thresholds,
)

TARGET = 0.95
CONFIDENCE = 0.95
TOP_SHARE_AT_TARGET = 0.24  # SST-2's encoder: the most confident 24% are 95% right
SIZES = (500, 2_000, 10_000, 50_000)
CLASSES = 2
RANKS = np.linspace(0.0, 1.0, 200_001)
LIMIT_GRID = np.arange(1, 201) * 0.005
REPORT = Path(__file__).resolve().parents[1] / "reports" / "routing" / "threshold_power.json"


@dataclass
class Curve:
    name: str
    overall_accuracy: float
    c: float
    g: float

    def __post_init__(self) -> None:
        local = self.p(RANKS)
        self._cumulative = np.concatenate([[0.0], np.cumsum((local[1:] + local[:-1]) / 2 * np.diff(RANKS))])

    def p(self, u: np.ndarray) -> np.ndarray:
        return np.maximum(0.5, 1.0 - self.c * np.asarray(u) ** self.g)

    def top_accuracy(self, fraction: np.ndarray) -> np.ndarray:
        """A(f): accuracy of the most confident fraction f of the stream."""
        fraction = np.asarray(fraction, dtype=float)
        return np.where(fraction > 0, np.interp(fraction, RANKS, self._cumulative) / np.maximum(fraction, 1e-12), 1.0)


def sst2_shaped(name: str, overall_accuracy: float) -> Curve:
    def gaps(params: np.ndarray) -> list[float]:
        curve = Curve(name, overall_accuracy, float(params[0]), float(params[1]))
        return [float(curve.top_accuracy(np.array(TOP_SHARE_AT_TARGET))) - TARGET,
                float(curve.top_accuracy(np.array(1.0))) - overall_accuracy]

    c, g = fsolve(gaps, [0.2, 0.7])
    return Curve(name, overall_accuracy, float(c), float(g))


Method = Callable[[np.ndarray, np.ndarray, np.ndarray], Thresholds]


def method(threshold_method: ThresholdMethod, **grid: float) -> Method:
    def choose(scores: np.ndarray, predicted: np.ndarray, correct: np.ndarray) -> Thresholds:
        return choose_thresholds(scores, predicted, correct, CLASSES, TARGET, CONFIDENCE, "wilson",
                                 method=threshold_method, **grid)

    return choose


def every_items(step_items: int) -> Method:
    """Pooled fixed sequence with a candidate every `step_items` items (a fraction per call)."""
    def choose(scores: np.ndarray, predicted: np.ndarray, correct: np.ndarray) -> Thresholds:
        return choose_thresholds(scores, predicted, correct, CLASSES, TARGET, CONFIDENCE, method=POOLED,
                                 step_fraction=step_items / len(scores))

    return choose


POOLED = ThresholdMethod.FIXED_SEQUENCE_POOLED
METHODS: dict[str, Method] = {
    "pointwise_scan (former, unsound)": method(ThresholdMethod.POINTWISE_SCAN),
    "fixed_sequence_per_class": method(ThresholdMethod.FIXED_SEQUENCE_PER_CLASS),
    "fixed_sequence_pooled (default)": method(POOLED),
    "pooled, from the top, 1% steps": method(POOLED, first_step_fraction=0.0),
    "pooled, from the top, every item": method(POOLED, first_step_fraction=0.0, step_fraction=1e-9),
    "pooled, 5% start, 0.5% steps": method(POOLED, step_fraction=0.005),
    "pooled, 5% start, 2% steps": method(POOLED, step_fraction=0.02),
    "pooled, 5% start, 5% steps": method(POOLED, step_fraction=0.05),
    "pooled, 5% start, every 10 items": every_items(10),
    "pooled, 10% start (no cap), 1% steps": method(POOLED, first_step_fraction=0.10, first_step_max_items=10**9),
}


@dataclass
class Run:
    verified_ranks: np.ndarray
    verified_correct: np.ndarray
    verified_predicted: np.ndarray
    held_ranks: np.ndarray
    held_correct: np.ndarray
    held_predicted: np.ndarray

    def held_by_confidence(self) -> np.ndarray:
        return self.held_correct[np.argsort(self.held_ranks, kind="stable")]


def draw(curve: Curve, n: int, rng: np.random.Generator) -> Run:
    verified, held = rng.random(n), rng.random(n)
    return Run(verified, rng.random(n) < curve.p(verified), rng.integers(0, CLASSES, n),
               held, rng.random(n) < curve.p(held), rng.integers(0, CLASSES, n))


def exact_limit(curve: Curve, n: int) -> float:
    """Largest f whose top-f held-out accuracy (round(f n) items) is >= target with probability
    >= CONFIDENCE, by the known curve."""
    counts = np.maximum(1, np.round(LIMIT_GRID * n).astype(int))
    needed = np.ceil(TARGET * counts - 1e-9)
    chance = binom.sf(needed - 1, counts, curve.top_accuracy(LIMIT_GRID))
    meeting = chance >= CONFIDENCE
    return float(LIMIT_GRID[meeting].max()) if meeting.any() else 0.0


def best_preset_single_test(curve: Curve, n: int) -> float:
    """max over f of f * P(the exact test at level 1 - CONFIDENCE passes on the n verified items'
    top f), by the known curve: what a sound rule that tests ONE threshold, picked in advance
    knowing the curve, accepts on average. A reference, not a bound: a fixed sequence adapts to
    the sample and can do better. Unlike the limits it pays for the verified sample's noise."""
    alpha = 1 - CONFIDENCE
    fractions = np.arange(1, 1001) * 0.001
    counts = np.maximum(1, np.round(fractions * n).astype(int))
    # fewest correct items that reject "accuracy < target" at alpha, per count
    needed = np.array([int(binom.isf(alpha, k, TARGET)) + 1 for k in counts])
    needed = np.where(binom.sf(needed - 2, counts, TARGET) <= alpha, needed - 1, needed)
    passing = binom.sf(needed - 1, counts, curve.top_accuracy(fractions))
    return float((fractions * passing).max())


CHECKED = ("pointwise_scan (former, unsound)", "fixed_sequence_per_class", "fixed_sequence_pooled (default)")


def true_accuracy(curve: Curve, thresholds: Thresholds) -> float:
    """Accuracy of everything the thresholds accept: each class accepts its top share of the
    same curve (1.0 when nothing is accepted)."""
    per_class = np.array([thresholds.threshold(c).threshold for c in range(CLASSES)])
    shares = np.where(np.isinf(per_class), 0.0, np.clip(1.0 - per_class, 0.0, 1.0))
    return float((shares * curve.top_accuracy(shares)).sum() / shares.sum()) if shares.sum() else 1.0


def true_share(thresholds: Thresholds) -> float:
    """Share of the stream the thresholds accept (classes alike and equally likely)."""
    per_class = np.array([thresholds.threshold(c).threshold for c in range(CLASSES)])
    return float(np.where(np.isinf(per_class), 0.0, np.clip(1.0 - per_class, 0.0, 1.0)).mean())


def check_runs(curve: Curve, n: int, runs: int, seed: int) -> dict[str, dict[str, float]]:
    """20 runs cannot tell a 5% violation rate from 15%, nor resolve a mean auto fraction made
    of a few lucky runs: for the main methods, over `runs` further runs, the share whose TRUE
    accepted accuracy is below the target and the mean share of the stream accepted."""
    rng = np.random.default_rng(seed)
    violations, accepted = dict.fromkeys(CHECKED, 0), dict.fromkeys(CHECKED, 0.0)
    for _ in range(runs):
        ranks = rng.random(n)
        correct, predicted = rng.random(n) < curve.p(ranks), rng.integers(0, CLASSES, n)
        for name in CHECKED:
            thresholds = METHODS[name](1.0 - ranks, predicted, correct)
            violations[name] += true_accuracy(curve, thresholds) < TARGET
            accepted[name] += true_share(thresholds)
    return {name: {"true_violation_share": violations[name] / runs, "mean_true_auto_fraction": accepted[name] / runs}
            for name in CHECKED}


def evaluate(curve: Curve, n: int, runs: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    drawn = [draw(curve, n, rng) for _ in range(runs)]
    held_sorted = [r.held_by_confidence() for r in drawn]
    need = runs_needed(runs, CONFIDENCE)  # 19 of 20
    oracle = float(np.mean([oracle_fraction(h, TARGET) for h in held_sorted]))
    limit = same_guarantee_limit(held_sorted, TARGET, need, LIMIT_GRID)
    limit_exact = exact_limit(curve, n)
    single_test = best_preset_single_test(curve, n)
    results: dict[str, object] = {}
    for name, choose in METHODS.items():
        chosen, true_meets, held_meets, seconds = [], 0, 0, 0.0
        for run in drawn:
            started = time.perf_counter()
            thresholds = choose(1.0 - run.verified_ranks, run.verified_predicted, run.verified_correct)
            seconds += time.perf_counter() - started
            per_class = np.array([thresholds.threshold(c).threshold for c in range(CLASSES)])
            accepted = (1.0 - run.held_ranks) >= per_class[run.held_predicted]
            chosen.append(float(accepted.mean()))
            held_meets += not accepted.any() or run.held_correct[accepted].mean() >= TARGET
            true_meets += true_accuracy(curve, thresholds) >= TARGET
        mean = float(np.mean(chosen))
        results[name] = {
            "chosen_auto_fraction": mean, "efficiency": mean / limit if limit else None,
            "efficiency_vs_exact_limit": mean / limit_exact if limit_exact else None,
            "payoff": mean / oracle if oracle else None, "runs_meeting_target_true": int(true_meets),
            "runs_meeting_target_held_out": int(held_meets),
            "runs_accepting_something": int(np.sum(np.array(chosen) > 0)),
            "seconds_per_choice": seconds / runs}
    return {"verified": n, "held_out": n, "runs": runs, "oracle_fraction": oracle, "same_guarantee_limit": limit,
            "exact_limit": limit_exact, "best_preset_single_test": single_test, "methods": results}


NAME = 42  # width of the table's first column


def print_table(curve: Curve, sizes: dict[str, dict], runs: int) -> None:
    width = 29
    print(f"\n{curve.name}: overall accuracy {curve.overall_accuracy}, p(u) = max(0.5, 1 - {curve.c:.3f} "
          f"u^{curve.g:.3f}), true share at target {TOP_SHARE_AT_TARGET}; {runs} runs each")
    print(f"{'verified items (= held-out items)':{NAME}s}" + "".join(f"| {n:<{width - 2}d}" for n in SIZES))
    print(f"{'oracle / limit / exact limit':{NAME}s}" + "".join(
        f"| {s['oracle_fraction']:.3f} / {s['same_guarantee_limit']:.3f} / {s['exact_limit']:.3f}".ljust(width)
        for s in sizes.values()))
    print(f"{'best preset single test':{NAME}s}" + "".join(
        f"| {s['best_preset_single_test']:.3f}".ljust(width) for s in sizes.values()))
    print(f"{'method: chosen eff payoff meets(true/held)':{NAME}s}")
    for name in METHODS:
        cells = []
        for s in sizes.values():
            r = s["methods"][name]
            eff = f"{r['efficiency']:.2f}" if r["efficiency"] is not None else "  - "
            cells.append(f"| {r['chosen_auto_fraction']:.3f} {eff} {r['payoff']:.2f} "
                         f"{r['runs_meeting_target_true']:2d}/{r['runs_meeting_target_held_out']:2d}".ljust(width))
        print(f"{name:{NAME}s}" + "".join(cells))
    print(f"{'check runs: violations / auto fraction':{NAME}s}" + "".join(
        f"| {s['check_runs']['runs']} runs".ljust(width) for s in sizes.values()))
    for name in CHECKED:
        print(f"{'  ' + name:{NAME}s}" + "".join(
            f"| {s['check_runs'][name]['true_violation_share']:.3f} / "
            f"{s['check_runs'][name]['mean_true_auto_fraction']:.3f}".ljust(width) for s in sizes.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--check-runs", type=int, default=400,
                        help="further runs measuring the true violation share of the main methods")
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args()
    curves = [sst2_shaped("learning", 0.88), sst2_shaped("few-shot", 0.727)]
    report: dict[str, object] = {
        "target": TARGET, "confidence_level": CONFIDENCE, "classes": CLASSES, "runs": args.runs,
        "default_grid": {"first_step_fraction": FIRST_STEP_FRACTION, "first_step_max_items": FIRST_STEP_MAX_ITEMS,
                         "step_fraction": STEP_FRACTION},
        "curves": {}}
    for curve in curves:
        sizes = {}
        for n in SIZES:
            sizes[str(n)] = evaluate(curve, n, args.runs, seed=n)
            sizes[str(n)]["check_runs"] = {"runs": args.check_runs, **check_runs(
                curve, n, args.check_runs, seed=10**6 + n)}
        report["curves"][curve.name] = {  # type: ignore[index]
            "overall_accuracy": curve.overall_accuracy, "p(u)": f"max(0.5, 1 - {curve.c:.4f} u^{curve.g:.4f})",
            "true_share_at_target": TOP_SHARE_AT_TARGET, "sizes": sizes}
        print_table(curve, sizes, args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
