"""Per-project statistics from the monitor's event records: plain functions, no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from labelstream.common.projects import parse_label_set
from labelstream.crowd.agreement import krippendorff_alpha, krippendorff_alpha_sets
from labelstream.v1 import services_pb2

COUNTED_KINDS = ("item_accepted", "dead_letter", "prediction", "auto_label", "human_task", "human_response",
                 "final_label")


def latest_finals(events: Iterable[dict]) -> dict[str, dict]:
    """Each item's final label of the highest version (a relabel supersedes the first)."""
    finals: dict[str, dict] = {}
    for e in events:
        current = finals.get(e["item_id"])
        if current is None or e["version"] > current["version"]:
            finals[e["item_id"]] = e
    return finals


def path_stats(finals: list[dict], gold: dict[str, str]) -> services_pb2.PathStats:
    judged = [f for f in finals if gold.get(f["item_id"])]
    correct = sum(1 for f in judged if f["label"] == gold[f["item_id"]])
    return services_pb2.PathStats(
        final_labels=len(finals), with_gold=len(judged), correct=correct,
        accuracy=correct / len(judged) if judged else math.nan)


def compute_stats(project_id: str, events: Iterable[dict]) -> services_pb2.ProjectStats:
    counts = dict.fromkeys(COUNTED_KINDS, 0)
    gold: dict[str, str] = {}
    final_events = []
    for event in events:
        counts[event["kind"]] = counts.get(event["kind"], 0) + 1
        if event["kind"] == "item_accepted":
            gold[event["item_id"]] = event.get("gold_label", "")
        elif event["kind"] == "final_label":
            final_events.append(event)
    latest = list(latest_finals(final_events).values())
    auto = [f for f in latest if f["source"] == "auto"]
    human = [f for f in latest if f["source"] == "human"]
    stats = services_pb2.ProjectStats(
        project_id=project_id, items_accepted=counts["item_accepted"],
        items_dead_lettered=counts["dead_letter"], predictions=counts["prediction"],
        auto_accepted=counts["auto_label"], human_tasks=counts["human_task"],
        human_responses=counts["human_response"], final_labels=len(latest),
        human_fraction=len(human) / len(latest) if latest else math.nan,
        overall=path_stats(latest, gold), auto_path=path_stats(auto, gold), human_path=path_stats(human, gold))
    if latest:
        latencies = np.array([f["finalized_at_ms"] - f["ingested_at_ms"] for f in latest], dtype=float)
        stats.latency_p50_ms = float(np.percentile(latencies, 50))
        stats.latency_p95_ms = float(np.percentile(latencies, 95))
        span_s = (max(f["finalized_at_ms"] for f in latest) - min(f["ingested_at_ms"] for f in latest)) / 1000
        stats.throughput_per_s = len(latest) / span_s if span_s > 0 else math.nan
    return stats


def agreement_alpha(triples: Sequence[tuple[str, str, str]]) -> float:
    """Krippendorff's alpha of (item, worker, answer) triples. Multi-label answers (set keys, see
    projects.label_set_key) are compared with the MASI distance, so two answers that share labels
    agree partly; single labels are nominal. An answer is a set key when it parses as one: a
    single-label project's label never does (label names are plain names, not JSON arrays)."""
    sets = [parse_label_set(answer) for _, _, answer in triples]
    if triples and all(s is not None for s in sets):
        return krippendorff_alpha_sets([(item, worker, frozenset(s or ()))
                                        for (item, worker, _), s in zip(triples, sets, strict=True)])
    return krippendorff_alpha(triples)
