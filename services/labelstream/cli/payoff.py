"""What a run was worth: the human fraction as the stream went on, whether the routing guarantee
held, what the labels cost against labeling everything by hand or trusting the model alone
(a cost table in the style of Toloka's hybrid-labeling reports), and for a multi_label project
how good the final sets are, label by label, on each path. Plain functions over the figures the
demo gathers from the owners' APIs (monitor stats, dispatcher workers, Triton statistics) and
the final labels on labels.final."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy.stats import beta

from labelstream.common.projects import is_multi_label
from labelstream.crowd.multilabel import encode_sets, set_metrics
from labelstream.v1 import events_pb2, services_pb2

PATHS = {"auto": events_pb2.LABEL_SOURCE_AUTO, "human": events_pb2.LABEL_SOURCE_HUMAN}


@dataclass(frozen=True)
class Wave:
    """The items of one stretch of the stream (published together, all final before the next)."""
    items: int
    auto: int
    human: int
    auto_with_gold: int
    auto_correct: int
    with_gold: int
    correct: int

    @property
    def human_fraction(self) -> float:
        return self.human / max(1, self.auto + self.human)

    @property
    def auto_accuracy(self) -> float | None:
        return self.auto_correct / self.auto_with_gold if self.auto_with_gold else None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.with_gold if self.with_gold else None


def wave_between(before: services_pb2.ProjectStats | None, after: services_pb2.ProjectStats, items: int) -> Wave:
    """The wave's own figures: the difference of the project's cumulative statistics."""
    def get(stats: services_pb2.ProjectStats | None, path: str, field: str) -> int:
        return 0 if stats is None else getattr(getattr(stats, path), field)

    def delta(path: str, field: str) -> int:
        return get(after, path, field) - get(before, path, field)

    return Wave(items=items, auto=delta("auto_path", "final_labels"), human=delta("human_path", "final_labels"),
                auto_with_gold=delta("auto_path", "with_gold"), auto_correct=delta("auto_path", "correct"),
                with_gold=delta("overall", "with_gold"), correct=delta("overall", "correct"))


def clopper_pearson(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact two-sided interval of an accuracy measured on `total` items."""
    if total == 0:
        return 0.0, 1.0
    tail = (1 - confidence) / 2
    low = 0.0 if correct == 0 else float(beta.ppf(tail, correct, total - correct + 1))
    high = 1.0 if correct == total else float(beta.ppf(1 - tail, correct + 1, total - correct))
    return low, high


def guarantee(spec: events_pb2.ProjectSpec, stats: services_pb2.ProjectStats) -> dict[str, Any]:
    """The promise (auto-accepted items at least target accurate) against the gold of what was
    auto-accepted. The promise is about the stream; the gold measures it on this run's items, so
    the interval says how well this run can tell. A multi_label project's promise is per label
    (labelstream.routing.multilabel), not about exact sets: "per_label" names that form, whose
    measure is the auto path's per-label precision and recall (set_metrics_by_path)."""
    auto = stats.auto_path
    if is_multi_label(spec):
        return {"form": "per_label", "target_accuracy": spec.target_accuracy,
                "confidence_level": spec.confidence_level, "auto_accepted": auto.final_labels, "held": None}
    low, high = clopper_pearson(auto.correct, auto.with_gold)
    measured = auto.correct / auto.with_gold if auto.with_gold else None
    held = None if measured is None else measured >= spec.target_accuracy
    return {"target_accuracy": spec.target_accuracy, "confidence_level": spec.confidence_level,
            "auto_accepted": auto.final_labels, "auto_with_gold": auto.with_gold, "auto_accuracy": measured,
            "interval_95": [round(low, 4), round(high, 4)], "held": held}


def score_sets(labels: Sequence[str], predicted: Mapping[str, Collection[str]],
               gold: Mapping[str, Collection[str]]) -> dict[str, Any]:
    """Sets by item id against the reference sets `gold`, on the items both have: micro- and
    macro-F1, Hamming loss, exact-set accuracy and per-label precision, recall and F1
    (labelstream.crowd.multilabel.set_metrics), and how many items were scored. Without items
    there are no figures (None), not perfect ones."""
    scored = [item_id for item_id in predicted if item_id in gold]
    if not scored:
        return {"items": 0, "micro_f1": None, "macro_f1": None, "hamming_loss": None, "exact_match": None}
    metrics = set_metrics(encode_sets([predicted[i] for i in scored], labels),
                          encode_sets([gold[i] for i in scored], labels))
    return {"items": len(scored), **metrics.as_dict(labels)}


def set_metrics_by_path(labels: Sequence[str], finals: Iterable[events_pb2.FinalLabel],
                        gold: Mapping[str, Collection[str]]) -> dict[str, Any]:
    """A multi_label project's final sets against the reference (score_sets), overall and on the
    auto and the human path."""
    finals = list(finals)
    return {path: score_sets(labels, {f.item_id: list(f.label_set) for f in finals
                                      if source is None or f.source == source}, gold)
            for path, source in {"overall": None, **PATHS}.items()}


def cost_table(spec: events_pb2.ProjectSpec, items: int, paid_people: float, model_seconds: float,
               gpu_hour_price: float, model_accuracy: float | None, final_accuracy: float | None) -> dict[str, Any]:
    """All-human (every item answered by `overlap` people at the project's pay per answer), hybrid
    (what people were paid in this run plus the model's measured time at a price per GPU-hour) and
    model-only (the model's time alone, at its measured accuracy)."""
    model_cost = model_seconds / 3600 * gpu_hour_price
    all_human = items * spec.overlap * spec.pay_per_answer
    hybrid = paid_people + model_cost
    rows = {
        "all_human": {"cost": all_human, "per_item": all_human / max(1, items), "accuracy": None},
        "hybrid": {"cost": hybrid, "per_item": hybrid / max(1, items), "accuracy": final_accuracy,
                   "people": paid_people, "model": model_cost},
        "model_only": {"cost": model_cost, "per_item": model_cost / max(1, items), "accuracy": model_accuracy},
    }
    return {"rows": rows, "pay_per_answer": spec.pay_per_answer, "overlap": spec.overlap,
            "gpu_hour_price": gpu_hour_price, "model_seconds": model_seconds,
            "saved_vs_all_human": 1 - hybrid / all_human if all_human else None}


def hourly_pay(workers: Sequence[services_pb2.WorkerStats], floor: float) -> dict[str, Any]:
    rates = sorted(w.hourly_rate for w in workers if w.tasks_done and w.hourly_rate > 0)
    if not rates:
        return {"workers": 0, "floor": floor}
    return {"workers": len(rates), "floor": floor, "min": rates[0], "median": rates[len(rates) // 2],
            "below_floor": sum(r < floor for r in rates) if floor else None}


def plot_waves(waves: Sequence[Wave], target: float, path: str, title: str) -> None:
    """Human fraction and accuracy of each wave against the items processed so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    processed, total = [], 0
    for wave in waves:
        total += wave.items
        processed.append(total)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(processed, [w.human_fraction for w in waves], "o-", color="tab:red", label="share sent to people")
    accuracy = [(x, w.accuracy) for x, w in zip(processed, waves, strict=True) if w.accuracy is not None]
    ax.plot([x for x, _ in accuracy], [a for _, a in accuracy], "s-", color="tab:blue",
            label="accuracy of final labels (gold)")
    ax.axhline(target, color="tab:blue", linestyle=":", label=f"target accuracy {target:.2f} (auto-accepted)")
    ax.set_xlabel("items processed")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
