"""The datasheet written beside every export: who made the labels and under which rules.

The human work behind a training set is usually missing from its record. This one states it: how
many people answered, their hours (measured from task times: lease to answer, as the dispatcher
timed them), what they earned per hour against the project's wage floor, which share of the final
labels people decided, the model decided, or both decided together, and the gold, quality and
routing rules in force. Plain functions: the export command gathers the inputs from the owners'
APIs (ingest's project, the dispatcher's worker list, labels.final) and writes JSON and Markdown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from labelstream.v1 import events_pb2, services_pb2

PAY_QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def decided_by(finals: Iterable[events_pb2.FinalLabel]) -> dict[str, int]:
    """Final labels (latest version per item) by who decided them: the model alone (auto-accepted),
    people alone, or people with the model as one of the voters."""
    counts = {"people": 0, "model": 0, "both": 0}
    for label in finals:
        if label.source == events_pb2.LABEL_SOURCE_AUTO:
            counts["model"] += 1
        else:
            counts["both" if label.with_model else "people"] += 1
    return counts


def worker_hours(worker: services_pb2.WorkerStats) -> float:
    """Measured task time: WorkerStats carries the mean seconds per task (work time / tasks)."""
    return worker.median_seconds_per_task * worker.tasks_done / 3600


def pay_summary(workers: Sequence[services_pb2.WorkerStats], floor: float) -> dict[str, Any]:
    """Effective hourly pay per person (earnings over measured task time) against the floor."""
    rates = np.array([w.earnings / worker_hours(w) for w in workers if worker_hours(w) > 0], dtype=float)
    summary: dict[str, Any] = {"wage_floor_per_hour": floor or None, "people_with_measured_time": int(rates.size)}
    if rates.size:
        summary["hourly_pay_quantiles"] = {f"p{round(q * 100)}": round(float(np.quantile(rates, q)), 2)
                                           for q in PAY_QUANTILES}
        summary["below_floor"] = int((rates < floor).sum()) if floor else None
    return summary


def rules(spec: events_pb2.ProjectSpec) -> dict[str, Any]:
    """The quality and routing rules of the (resolved) project; zero means the rule is off."""
    w = spec.workers
    return {
        "task": spec.task, "labels": list(spec.labels), "aggregation": spec.aggregation,
        "overlap": spec.overlap, "max_overlap": spec.max_overlap,
        "routing": {"strategy": spec.routing_strategy, "target_accuracy": spec.target_accuracy,
                    "confidence_level": spec.confidence_level, "auto_accept_threshold": spec.auto_accept_threshold,
                    "explore_fraction": spec.explore_fraction, "human_fraction_cap": spec.human_fraction_cap,
                    "models": list(spec.models) or [spec.model]},
        "gold": {"qualification_tasks": w.qualification_tasks, "qualification_accuracy": w.qualification_accuracy,
                 "gold_rate_new": w.gold_rate_new, "gold_rate_trusted": w.gold_rate_trusted,
                 "gold_rate_suspect": w.gold_rate_suspect, "trusted_after": w.trusted_after},
        "blocking": {"block_accuracy": w.block_accuracy, "block_confidence": w.block_confidence,
                     "min_gold_to_block": w.min_gold_to_block},
        "fraud_signals": {"min_seconds_per_task": w.min_seconds_per_task,
                          "max_constant_streak": w.max_constant_streak,
                          "max_position_share": w.max_position_share, "max_shortcut_share": w.max_shortcut_share},
        "pay": {"pay_per_answer": spec.pay_per_answer, "min_hourly_wage": w.min_hourly_wage,
                "pay_policy": w.pay_policy, "max_continuous_minutes": w.max_continuous_minutes,
                "break_minutes": w.break_minutes},
    }


def datasheet(spec: events_pb2.ProjectSpec, finals: Sequence[events_pb2.FinalLabel],
              workers: Sequence[services_pb2.WorkerStats]) -> dict[str, Any]:
    working = [w for w in workers if w.tasks_done > 0]
    decided = decided_by(finals)
    total = max(1, len(finals))
    return {
        "project_id": spec.project_id, "name": spec.name, "final_labels": len(finals),
        "people": {"count": len(working), "blocked": sum(w.status == "blocked" for w in working),
                   "answers": sum(w.tasks_done for w in working),
                   # Eight places: simulated or scripted workers answer in milliseconds, and a coarser
                   # rounding turned their measured time into zero hours.
                   "hours": round(sum(worker_hours(w) for w in working), 8),
                   "paid": round(sum(w.earnings for w in working), 2)},
        "pay": pay_summary(working, spec.workers.min_hourly_wage),
        "decided_by": {who: {"labels": n, "share": round(n / total, 4)} for who, n in decided.items()},
        "rules": rules(spec),
    }


def measured_time(hours: float) -> str:
    return f"{hours:.2f} hours" if hours >= 0.01 else f"{hours * 3600:.1f} seconds"


def markdown(sheet: dict[str, Any]) -> str:
    people, pay, rule = sheet["people"], sheet["pay"], sheet["rules"]
    lines = [f"# Datasheet: {sheet['name'] or sheet['project_id']} ({sheet['project_id']})", "",
             f"{sheet['final_labels']} final labels.", "", "## The people who made it", "",
             f"- {people['count']} people answered {people['answers']} tasks in {measured_time(people['hours'])} of "
             f"measured task time ({people['blocked']} of them blocked by the quality rules), and were paid "
             f"{people['paid']:.2f} in all."]
    quantiles = pay.get("hourly_pay_quantiles")
    if quantiles:
        floor = pay["wage_floor_per_hour"]
        lines.append(f"- Effective hourly pay (earnings / measured task time), min / quartiles / max: "
                     f"{quantiles['p0']:.2f} / {quantiles['p25']:.2f} / {quantiles['p50']:.2f} / "
                     f"{quantiles['p75']:.2f} / {quantiles['p100']:.2f}"
                     + (f"; wage floor {floor:.2f}, {pay['below_floor']} of {pay['people_with_measured_time']} "
                        f"people below it." if floor else "; the project sets no wage floor."))
    lines += ["", "## Who decided the final labels", "", "| decided by | labels | share |", "|---|---|---|"]
    names = {"people": "people alone", "model": "the model alone (auto-accepted)",
             "both": "people with the model as one voter"}
    for who, row in sheet["decided_by"].items():
        lines.append(f"| {names[who]} | {row['labels']} | {row['share']:.1%} |")
    routing = rule["routing"]
    lines += ["", "## Rules in force", "",
              f"- Task {rule['task']}, labels {', '.join(rule['labels'])}; {rule['overlap']} answers per item "
              f"(up to {rule['max_overlap']}), merged by {rule['aggregation']}.",
              f"- Routing: {routing['strategy']}"
              + (f", auto-accepted accuracy at least {routing['target_accuracy']:.2f} with "
                 f"{routing['confidence_level']:.0%} confidence" if routing["strategy"] != "threshold" else
                 f", top probability at least {routing['auto_accept_threshold']:.2f}")
              + f"; {routing['explore_fraction']:.0%} of confident items still checked by people; "
                f"models {', '.join(routing['models'])}.",
              "- Gold: " + ", ".join(f"{k} {v}" for k, v in rule["gold"].items()) + ".",
              "- Blocking: " + ", ".join(f"{k} {v}" for k, v in rule["blocking"].items()) + ".",
              "- Fraud signals: " + ", ".join(f"{k} {v}" for k, v in rule["fraud_signals"].items()) + ".",
              "- Pay: " + ", ".join(f"{k} {v}" for k, v in rule["pay"].items()) + ".",
              "", "A zero means the rule is off."]
    return "\n".join(lines) + "\n"
