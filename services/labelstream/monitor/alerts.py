"""Quality alerts: the expected range of every quality gauge the monitor exports, and the check of
current values against those ranges. Pure: no I/O.

The same conditions, with the same defaults, fire as Prometheus alerts: the chart's
helm/labelstream/files/alerts/rules.yaml (thresholds, `for` and severity from
metrics.qualityAlerts.rules in values.yaml, rendered into the PrometheusRule <fullname>-quality).
services/tests/test_alert_rules.py fails when the two disagree, so change both together.

Names, for a range named "LowAgreement":
  - Prometheus alert  LabelstreamLowAgreement       (QualityRange.alert)
  - breach kind       low_agreement                 (QualityRange.kind, Breach.kind; the key of `overrides`)
  - Helm values       metrics.qualityAlerts.rules.lowAgreement.{threshold,for,severity}
  - gauge             labelstream_agreement_alpha   (QualityRange.gauge, from metric "agreement_alpha")

Metrics are handed to `evaluate` as a mapping from (metric, project, worker) to the gauge's current
value: metric is the gauge name without "labelstream_", worker is "" for a project-wide gauge.
Keys of metrics no range watches are ignored. Comparisons are strict (a value equal to its threshold
is in range) and NaN is never out of range, exactly as in PromQL.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

Direction = Literal["below", "above"]


class MetricKey(NamedTuple):
    """A key of the metrics `evaluate` reads; a plain (metric, project, worker) tuple is the same key."""

    metric: str  # the gauge without its "labelstream_" prefix, e.g. "agreement_alpha"
    project: str
    worker: str = ""  # "" for project-wide gauges


@dataclass(frozen=True)
class QualityRange:
    """Where one quality gauge should stay: out of range (value below or above threshold) is a breach.

    Prometheus only alerts once the value has been out of range for `for_seconds`; `evaluate` looks at
    one set of current values and leaves any such waiting to its caller.
    """

    name: str  # CamelCase, e.g. "LowAgreement"
    metric: str  # gauge without "labelstream_", e.g. "agreement_alpha"
    direction: Direction  # "below": breached when value < threshold; "above": when value > threshold
    threshold: float
    for_seconds: int
    severity: str  # the alert's severity label: "critical", "warning" or "info"
    # str.format template of the alert's summary annotation and of the breach's summary; fields
    # {project}, {worker} and {threshold} (write {threshold:g}, which prints numbers the way Helm does).
    summary: str
    # Only breached while this project-wide gauge is above while_above (e.g. low throughput only
    # matters while tasks wait). Missing or NaN: no breach (PromQL's `and` finds no match either).
    while_metric: str | None = None
    while_above: float = 0.0

    @property
    def kind(self) -> str:
        """snake_case of the name: "LowWorkerAccuracy" -> "low_worker_accuracy"."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()

    @property
    def alert(self) -> str:
        """The Prometheus alert's name."""
        return f"Labelstream{self.name}"

    @property
    def gauge(self) -> str:
        """The Prometheus gauge the range watches."""
        return f"labelstream_{self.metric}"

    def breached_by(self, value: float, threshold: float | None = None) -> bool:
        """Whether value is out of range (against threshold instead of the default, if given)."""
        limit = self.threshold if threshold is None else threshold
        value = float(value)
        if math.isnan(value):
            return False
        return value < limit if self.direction == "below" else value > limit


@dataclass(frozen=True)
class Breach:
    """One gauge out of its range: what the monitor publishes as a quality event."""

    kind: str  # e.g. "low_agreement"
    alert: str  # the matching Prometheus alert, e.g. "LabelstreamLowAgreement"
    project: str
    worker: str  # "" unless the gauge is per worker
    value: float
    threshold: float  # the threshold in force (default or override)
    severity: str
    summary: str  # QualityRange.summary filled in: the Prometheus alert's summary for the same series


QUALITY_RANGES: tuple[QualityRange, ...] = (
    QualityRange(
        name="LowAgreement", metric="agreement_alpha", direction="below", threshold=0.4, for_seconds=30 * 60,
        severity="warning",
        summary="Annotators of project {project} agree too little (Krippendorff's alpha below {threshold:g})"),
    QualityRange(
        name="LowWorkerAccuracy", metric="worker_accuracy", direction="below", threshold=0.7, for_seconds=15 * 60,
        severity="warning",
        summary="Worker {worker} of project {project} is less than {threshold:g} accurate on gold tasks"),
    QualityRange(
        name="LowModelAccuracy", metric="model_accuracy", direction="below", threshold=0.7, for_seconds=30 * 60,
        severity="warning",
        summary="The model of project {project} matches less than {threshold:g} of the final human labels"),
    QualityRange(
        name="LowThroughput", metric="throughput_per_s", direction="below", threshold=0.01, for_seconds=30 * 60,
        severity="warning",
        summary="Project {project} finalizes fewer than {threshold:g} labels per second while human tasks wait",
        while_metric="backlog_tasks", while_above=0.0),
    QualityRange(
        name="SlowTasks", metric="time_per_task_seconds", direction="above", threshold=120.0, for_seconds=30 * 60,
        severity="info",
        summary="Workers of project {project} take more than {threshold:g} s per task"),
    QualityRange(
        name="RushedTasks", metric="time_per_task_seconds", direction="below", threshold=2.0, for_seconds=15 * 60,
        severity="warning",
        summary="Workers of project {project} take less than {threshold:g} s per task"),
)

Overrides = Mapping[str | tuple[str, str], float]


def evaluate(metrics: Mapping[tuple[str, str, str], float], ranges: Iterable[QualityRange] = QUALITY_RANGES,
             overrides: Overrides | None = None) -> list[Breach]:
    """Every value of `metrics` out of its range, in the order of `ranges`, then by project and worker.

    metrics: {(metric, project, worker): value} (see MetricKey), e.g.
        {("agreement_alpha", "p1", ""): 0.31, ("worker_accuracy", "p1", "w7"): 0.82,
         ("throughput_per_s", "p1", ""): 0.002, ("backlog_tasks", "p1", ""): 40}
    overrides: thresholds replacing the ranges' defaults, keyed by breach kind for every project
        ({"low_agreement": 0.5}) or by (kind, project) for one project ({("low_agreement", "p1"): 0.6});
        the per-project one wins. A kind that is not one of `ranges` raises ValueError, as does a
        threshold that is not a finite number.
    """
    ranges = tuple(ranges)
    thresholds = _checked_overrides(ranges, overrides or {})
    by_project_and_worker = sorted(metrics.items(), key=lambda item: (item[0][1], item[0][2]))
    breaches = []
    for quality_range in ranges:
        for (metric, project, worker), value in by_project_and_worker:
            if metric != quality_range.metric:
                continue
            kind = quality_range.kind
            threshold = thresholds.get((kind, project), thresholds.get(kind, quality_range.threshold))
            if not quality_range.breached_by(value, threshold):
                continue
            if quality_range.while_metric is not None:
                gate = metrics.get(MetricKey(quality_range.while_metric, project))
                if gate is None or not float(gate) > quality_range.while_above:  # NaN: not above
                    continue
            breaches.append(Breach(
                kind=kind, alert=quality_range.alert, project=project, worker=worker, value=float(value),
                threshold=threshold, severity=quality_range.severity,
                summary=quality_range.summary.format(project=project, worker=worker, threshold=threshold)))
    return breaches


def _checked_overrides(ranges: tuple[QualityRange, ...], overrides: Overrides) -> dict[str | tuple[str, str], float]:
    kinds = {r.kind for r in ranges}
    checked: dict[str | tuple[str, str], float] = {}
    for key, threshold in overrides.items():
        kind = key[0] if isinstance(key, tuple) else key
        if kind not in kinds:
            raise ValueError(f"override of an unknown quality range {kind!r} (kinds: {', '.join(sorted(kinds))})")
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
            raise ValueError(f"the threshold override of {key!r} must be a finite number, not {threshold!r}")
        checked[key] = float(threshold)
    return checked
