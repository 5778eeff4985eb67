"""What the monitor's dashboard page shows, computed from the store.

`dashboard_data(db, project_id, labels)` reads the project's monitor events (the model's answers among them)
and worker snapshots once each and hands them to the plain functions below (lists in, dicts out, no I/O), which
the unit tests exercise with known inputs. NaN ("not known") becomes None so the result is JSON.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
from pymongo.database import Database

from labelstream.common.projects import AggregationMethod
from labelstream.common.web import finite
from labelstream.crowd.agreement import agreement
from labelstream.crowd.dawid_skene import worker_accuracy
from labelstream.crowd.decide import fit_project
from labelstream.crowd.quality import gold_accuracy
from labelstream.monitor.stats import agreement_alpha, compute_stats, latest_finals

FRACTION_POINTS = 21   # human fractions 0, 0.05, ..., 1
CONFIDENCE_BINS = 10
TIME_WINDOWS = 10
EVENT_FIELDS = {"_id": 0, "kind": 1, "item_id": 1, "gold_label": 1, "worker_id": 1, "label": 1, "duration_ms": 1,
                "source": 1, "version": 1, "ingested_at_ms": 1, "finalized_at_ms": 1, "at_ms": 1,
                "confidence": 1}


# Time windows ------------------------------------------------------------------------------------

def window_edges(times: Sequence[float], count: int = TIME_WINDOWS) -> list[float]:
    """count + 1 equal-width edges over [min, max] of `times`; [] when there are none. A single
    instant gets a 1 ms span so that every time still falls in some window."""
    if not times:
        return []
    start, end = float(min(times)), float(max(times))
    end = max(end, start + 1.0)
    return [start + (end - start) * i / count for i in range(count + 1)]


def window_index(time: float, edges: Sequence[float]) -> int:
    """Which window `time` falls in; the last window includes its right edge."""
    count = len(edges) - 1
    position = int((time - edges[0]) / (edges[-1] - edges[0]) * count)
    return min(max(position, 0), count - 1)


# Accuracy against the share of items sent to people ----------------------------------------------

def accuracy_curve(items: Sequence[dict], points: int = FRACTION_POINTS) -> list[dict]:
    """Final accuracy had the least confident fraction f of `items` gone to people.

    Each item is {"confidence", "gold", "model_label", "human_label" (None when people never labelled
    it)}. Sent to people, an item counts with its human label when it has one, else with the model's
    label: we only know what people said on items they saw, and assuming they would have been right
    on the others would flatter the curve. So the curve is exact up to the actual human fraction and
    a lower bound of what people could add beyond it; `human_labels_known` says how much is real."""
    ranked = sorted(items, key=lambda i: i["confidence"])
    n = len(ranked)
    model_right = np.array([i["model_label"] == i["gold"] for i in ranked], dtype=float)
    known = np.array([i.get("human_label") is not None for i in ranked], dtype=float)
    people_right = np.array([(i.get("human_label") or i["model_label"]) == i["gold"] for i in ranked], dtype=float)
    # prefix sums: the first k items go to people, the rest keep the model's label
    people_prefix = np.concatenate([[0.0], np.cumsum(people_right)])
    model_suffix = np.concatenate([[0.0], np.cumsum(model_right)])
    known_prefix = np.concatenate([[0.0], np.cumsum(known)])
    curve = []
    for step in range(points):
        fraction = step / (points - 1)
        k = round(fraction * n)
        accuracy = (people_prefix[k] + model_suffix[n] - model_suffix[k]) / n if n else math.nan
        curve.append({"human_fraction": fraction, "items_to_people": k, "human_labels_known": int(known_prefix[k]),
                      "accuracy": finite(accuracy),
                      "confidence_threshold": finite(ranked[k]["confidence"]) if k < n else None})
    return curve


# Calibration -------------------------------------------------------------------------------------

def reliability_bins(confidences: Sequence[float], correct: Sequence[bool],
                     bins: int = CONFIDENCE_BINS) -> dict:
    """Reliability diagram over equal-width confidence bins, and the expected calibration error
    (count-weighted mean |accuracy - confidence| over the bins)."""
    conf = np.asarray(confidences, dtype=float)
    right = np.asarray(correct, dtype=float)
    index = np.minimum((conf * bins).astype(int), bins - 1) if conf.size else np.array([], dtype=int)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        mean_conf = float(conf[mask].mean()) if count else math.nan
        accuracy = float(right[mask].mean()) if count else math.nan
        if count:
            ece += count / conf.size * abs(accuracy - mean_conf)
        rows.append({"lower": b / bins, "upper": (b + 1) / bins, "count": count,
                     "mean_confidence": finite(mean_conf), "accuracy": finite(accuracy)})
    return {"bins": rows, "ece": ece if conf.size else None, "items": int(conf.size)}


# Agreement over time -----------------------------------------------------------------------------

def agreement_over_time(responses: Sequence[dict], count: int = TIME_WINDOWS) -> list[dict]:
    """Alpha and kappa per window. An item's answers all go to the window of its last answer (when
    it was done): split across windows they would look like items with too few ratings."""
    by_item: dict[str, list[dict]] = defaultdict(list)
    for r in responses:
        by_item[r["item_id"]].append(r)
    done_at = {item: max(r["at_ms"] for r in rs) for item, rs in by_item.items()}
    edges = window_edges(list(done_at.values()), count)
    if not edges:
        return []
    triples: list[list[tuple[str, str, str]]] = [[] for _ in range(count)]
    for item, rs in by_item.items():
        triples[window_index(done_at[item], edges)] += [(item, r["worker_id"], r["label"]) for r in rs]
    rows = []
    for w, window in enumerate(triples):
        result = agreement(window)
        # a multi-label project's sets agree partly when they share labels: MASI alpha
        alpha = agreement_alpha(window) if window else result.krippendorff_alpha
        rows.append({"start_ms": edges[w], "end_ms": edges[w + 1], "responses": len(window),
                     "items": result.items, "krippendorff_alpha": finite(alpha),
                     "fleiss_kappa": finite(result.fleiss_kappa)})
    return rows


# Throughput and latency --------------------------------------------------------------------------

def throughput_latency(finals: Sequence[dict], count: int = TIME_WINDOWS) -> list[dict]:
    """Final labels per window of finalisation time, with p50/p95 ingest-to-final latency."""
    edges = window_edges([f["finalized_at_ms"] for f in finals], count)
    if not edges:
        return []
    latencies: list[list[float]] = [[] for _ in range(count)]
    for f in finals:
        latencies[window_index(f["finalized_at_ms"], edges)].append(f["finalized_at_ms"] - f["ingested_at_ms"])
    width_s = (edges[1] - edges[0]) / 1000
    rows = []
    for w, values in enumerate(latencies):
        rows.append({"start_ms": edges[w], "end_ms": edges[w + 1], "final_labels": len(values),
                     "per_second": len(values) / width_s,
                     "latency_p50_ms": float(np.percentile(values, 50)) if values else None,
                     "latency_p95_ms": float(np.percentile(values, 95)) if values else None})
    return rows


# Workers -----------------------------------------------------------------------------------------

def dawid_skene_accuracy(responses: Sequence[dict], labels: list[str]) -> dict[str, float]:
    """Each worker's accuracy under a Dawid-Skene fit of the project's answers (prior-weighted
    diagonal of their confusion matrix): skill without gold."""
    votes = [(r["item_id"], r["worker_id"], r["label"]) for r in responses if r.get("label") in labels]
    if len(labels) < 2 or not votes:
        return {}
    fit = fit_project(labels, votes, AggregationMethod.DAWID_SKENE)
    accuracy = worker_accuracy(fit.model)
    return {worker: float(accuracy[index]) for worker, index in fit.workers.items()}


def worker_rows(records: Iterable[dict], responses: Sequence[dict],
                ds_accuracy: dict[str, float] | None = None) -> list[dict]:
    """One row per worker record; median seconds per task from the worker's answers."""
    durations: dict[str, list[float]] = defaultdict(list)
    for r in responses:
        if r.get("duration_ms", 0) > 0:
            durations[r["worker_id"]].append(r["duration_ms"])
    rows = []
    for rec in records:
        correct, wrong = rec.get("gold_correct", 0), rec.get("gold_wrong", 0)
        spent = durations.get(rec["worker_id"])
        rows.append({
            "worker_id": rec["worker_id"], "status": rec.get("status", ""), "tasks_done": rec.get("tasks_done", 0),
            # no gold answered yet means no evidence, not 50 %
            "gold_accuracy": finite(gold_accuracy({"gold_correct": correct, "gold_wrong": wrong})),
            "gold_answered": correct + wrong,
            "ds_accuracy": (ds_accuracy or {}).get(rec["worker_id"]),
            "median_seconds": float(np.median(spent)) / 1000 if spent else None,
            "earnings": rec.get("earnings", 0.0),
            "fraud_signals": [*rec.get("fraud_signals", []), *rec.get("flags", [])],
            "blocked_reason": rec.get("blocked_reason", "")})
    return sorted(rows, key=lambda r: r["worker_id"])


# Putting it together -----------------------------------------------------------------------------

def routed_items(predictions: Iterable[dict], gold: dict[str, str], finals: dict[str, dict]) -> list[dict]:
    """Items with gold and the model's confidence, in the shape accuracy_curve wants."""
    items = []
    for d in predictions:
        truth = gold.get(d["item_id"])
        if not truth or "confidence" not in d or not d.get("label"):
            continue
        final = finals.get(d["item_id"])
        human = final["label"] if final is not None and final.get("source") == "human" else None
        items.append({"confidence": float(d["confidence"]), "gold": truth, "model_label": d["label"],
                      "human_label": human})
    return items


def dashboard_data(db: Database, project_id: str, labels: Sequence[str]) -> dict:
    events = list(db.monitor_events.find({"project_id": project_id}, EVENT_FIELDS))
    stats = compute_stats(project_id, events)
    gold = {e["item_id"]: e.get("gold_label", "") for e in events if e["kind"] == "item_accepted"}
    finals = latest_finals(e for e in events if e["kind"] == "final_label")
    responses = [e for e in events if e["kind"] == "human_response"]
    predictions = [e for e in events if e["kind"] == "prediction"]
    items = routed_items(predictions, gold, finals)
    records = list(db.worker_snapshots.find({"project_id": project_id}, {"_id": 0}))
    spent = sum(r.get("earnings", 0.0) for r in records)
    return {
        "project_id": project_id,
        "summary": {"items_accepted": stats.items_accepted, "final_labels": stats.final_labels,
                    "human_responses": stats.human_responses, "human_fraction": finite(stats.human_fraction),
                    "accuracy": finite(stats.overall.accuracy),
                    # the proto leaves these 0 until there is a final label; 0 ms would be a lie
                    "latency_p50_ms": finite(stats.latency_p50_ms) if finals else None,
                    "latency_p95_ms": finite(stats.latency_p95_ms) if finals else None,
                    "throughput_per_s": finite(stats.throughput_per_s) if finals else None,
                    "cost_per_label": spent / len(finals) if finals else None,
                    # the model alone, on every item with gold: what trusting it blindly would give
                    "model_accuracy": sum(i["model_label"] == i["gold"] for i in items) / len(items)
                    if items else None},
        "accuracy_vs_human_fraction": {
            "items": len(items), "curve": accuracy_curve(items),
            "operating_point": {"human_fraction": finite(stats.human_fraction),
                                "accuracy": finite(stats.overall.accuracy),
                                "with_gold": stats.overall.with_gold}},
        "workers": worker_rows(records, responses, dawid_skene_accuracy(responses, list(labels))),
        "agreement_over_time": agreement_over_time(responses),
        "reliability": reliability_bins([i["confidence"] for i in items],
                                        [i["model_label"] == i["gold"] for i in items]),
        "throughput_latency": throughput_latency(list(finals.values())),
    }
