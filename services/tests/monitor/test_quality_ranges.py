"""labelstream.monitor.alerts: the quality ranges and `evaluate`, the breaches the monitor publishes."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from labelstream.monitor.alerts import QUALITY_RANGES, Breach, MetricKey, QualityRange, evaluate

RANGES = {r.kind: r for r in QUALITY_RANGES}

# Everything in range, for two projects and two workers.
HEALTHY = {
    ("agreement_alpha", "p1", ""): 0.8, ("agreement_alpha", "p2", ""): 0.75,
    ("worker_accuracy", "p1", "w1"): 0.92, ("worker_accuracy", "p1", "w2"): 0.81,
    ("model_accuracy", "p1", ""): 0.9, ("model_accuracy", "p2", ""): 0.88,
    ("throughput_per_s", "p1", ""): 0.5, ("backlog_tasks", "p1", ""): 40,
    ("throughput_per_s", "p2", ""): 0.0, ("backlog_tasks", "p2", ""): 0,  # idle: nothing waits
    ("time_per_task_seconds", "p1", ""): 25.0, ("time_per_task_seconds", "p2", ""): 60.0,
}


def test_the_default_ranges():
    assert {r.kind: (r.metric, r.direction, r.threshold) for r in QUALITY_RANGES} == {
        "low_agreement": ("agreement_alpha", "below", 0.4),
        "low_worker_accuracy": ("worker_accuracy", "below", 0.7),
        "low_model_accuracy": ("model_accuracy", "below", 0.7),
        "low_throughput": ("throughput_per_s", "below", 0.01),
        "slow_tasks": ("time_per_task_seconds", "above", 120.0),
        "rushed_tasks": ("time_per_task_seconds", "below", 2.0),
    }
    assert RANGES["low_throughput"].while_metric == "backlog_tasks" and RANGES["low_throughput"].while_above == 0
    for quality_range in QUALITY_RANGES:
        assert quality_range.alert == f"Labelstream{quality_range.name}"
        assert quality_range.gauge == f"labelstream_{quality_range.metric}"
        assert quality_range.for_seconds > 0 and quality_range.severity in {"critical", "warning", "info"}
    assert len({r.name for r in QUALITY_RANGES}) == len(QUALITY_RANGES)
    with pytest.raises(dataclasses.FrozenInstanceError):
        QUALITY_RANGES[0].threshold = 0.1  # type: ignore[misc]


def test_nothing_breaches_in_range():
    assert evaluate(HEALTHY) == []
    assert evaluate({}) == []


BREACHES = [
    pytest.param(("agreement_alpha", "p1", ""), 0.31, "low_agreement",
                 "Annotators of project p1 agree too little (Krippendorff's alpha below 0.4)", id="agreement"),
    pytest.param(("worker_accuracy", "p1", "w2"), 0.55, "low_worker_accuracy",
                 "Worker w2 of project p1 is less than 0.7 accurate on gold tasks", id="worker-accuracy"),
    pytest.param(("model_accuracy", "p2", ""), 0.6, "low_model_accuracy",
                 "The model of project p2 matches less than 0.7 of the final human labels", id="model-accuracy"),
    pytest.param(("throughput_per_s", "p1", ""), 0.004, "low_throughput",
                 "Project p1 finalizes fewer than 0.01 labels per second while human tasks wait", id="throughput"),
    pytest.param(("time_per_task_seconds", "p2", ""), 300.0, "slow_tasks",
                 "Workers of project p2 take more than 120 s per task", id="slow"),
    pytest.param(("time_per_task_seconds", "p1", ""), 1.2, "rushed_tasks",
                 "Workers of project p1 take less than 2 s per task", id="rushed"),
]


@pytest.mark.parametrize(("key", "value", "kind", "summary"), BREACHES)
def test_each_kind_of_breach(key: tuple[str, str, str], value: float, kind: str, summary: str):
    quality_range = RANGES[kind]
    (breach,) = evaluate(HEALTHY | {key: value})
    assert breach == Breach(kind=kind, alert=quality_range.alert, project=key[1], worker=key[2], value=value,
                            threshold=quality_range.threshold, severity=quality_range.severity, summary=summary)


def test_the_threshold_itself_is_in_range():
    at_thresholds = {("agreement_alpha", "p", ""): 0.4, ("worker_accuracy", "p", "w"): 0.7,
                     ("model_accuracy", "p", ""): 0.7, ("throughput_per_s", "p", ""): 0.01,
                     ("backlog_tasks", "p", ""): 5, ("time_per_task_seconds", "p", ""): 120}
    assert evaluate(at_thresholds) == []
    assert evaluate({("time_per_task_seconds", "p", ""): 2}) == []


def test_nan_never_breaches():
    nan = math.nan
    metrics = {key: nan for key in HEALTHY}
    assert evaluate(metrics) == []
    # Nor does a NaN backlog let low throughput breach.
    assert evaluate({("throughput_per_s", "p", ""): 0.0, ("backlog_tasks", "p", ""): nan}) == []
    assert not any(r.breached_by(nan) for r in QUALITY_RANGES)


def test_low_throughput_only_breaches_while_tasks_wait():
    stalled = {("throughput_per_s", "p", ""): 0.0, ("backlog_tasks", "p", ""): 12}
    assert [b.kind for b in evaluate(stalled)] == ["low_throughput"]
    assert evaluate(stalled | {("backlog_tasks", "p", ""): 0}) == []
    assert evaluate({("throughput_per_s", "p", ""): 0.0}) == []  # no backlog gauge: nothing known to wait
    # The backlog of another project does not count.
    assert evaluate({("throughput_per_s", "p", ""): 0.0, ("backlog_tasks", "q", ""): 12}) == []


def test_every_project_and_worker_out_of_range_in_a_stable_order():
    metrics = HEALTHY | {("worker_accuracy", "p2", "w9"): 0.4, ("worker_accuracy", "p1", "w2"): 0.6,
                         ("agreement_alpha", "p2", ""): 0.1, ("agreement_alpha", "p1", ""): -0.2,
                         ("time_per_task_seconds", "p2", ""): 0.8}
    breaches = evaluate(metrics)
    assert [(b.kind, b.project, b.worker) for b in breaches] == [
        ("low_agreement", "p1", ""), ("low_agreement", "p2", ""),
        ("low_worker_accuracy", "p1", "w2"), ("low_worker_accuracy", "p2", "w9"),
        ("rushed_tasks", "p2", "")]
    assert evaluate(dict(reversed(list(metrics.items())))) == breaches


def test_metric_keys_and_unwatched_metrics():
    assert MetricKey("agreement_alpha", "p") == ("agreement_alpha", "p", "")
    (breach,) = evaluate({MetricKey("agreement_alpha", "p"): 0.1, ("routing_rate", "p", ""): 99.0})
    assert (breach.kind, breach.project, breach.worker) == ("low_agreement", "p", "")
    # numpy numbers, as the monitor's statistics produce them, for values and overrides alike.
    (breach,) = evaluate({("model_accuracy", "p", ""): np.float32(0.72)},
                         overrides={"low_model_accuracy": np.float64(0.8)})
    assert isinstance(breach.value, float) and breach.threshold == 0.8


def test_overrides_for_every_project_and_for_one():
    metrics = {("agreement_alpha", "p1", ""): 0.45, ("agreement_alpha", "p2", ""): 0.45,
               ("model_accuracy", "p1", ""): 0.8, ("model_accuracy", "p2", ""): 0.8}
    assert evaluate(metrics) == []
    overridden = evaluate(metrics, overrides={"low_agreement": 0.5, ("low_agreement", "p2"): 0.3,
                                              ("low_model_accuracy", "p1"): 0.85})
    assert [(b.kind, b.project, b.threshold) for b in overridden] == [
        ("low_agreement", "p1", 0.5), ("low_model_accuracy", "p1", 0.85)]
    assert overridden[0].summary == "Annotators of project p1 agree too little (Krippendorff's alpha below 0.5)"
    # A laxer threshold silences a breach.
    assert evaluate({("time_per_task_seconds", "p", ""): 150.0}, overrides={"slow_tasks": 200}) == []


@pytest.mark.parametrize(("overrides", "message"), [
    pytest.param({"low_agreemnt": 0.5}, "unknown quality range 'low_agreemnt'", id="misspelt-kind"),
    pytest.param({("LowAgreement", "p"): 0.5}, "unknown quality range 'LowAgreement'", id="name-not-kind"),
    pytest.param({"low_agreement": math.nan}, "finite number", id="nan"),
    pytest.param({"low_agreement": "0.5"}, "finite number", id="string"),
    pytest.param({"low_agreement": True}, "finite number", id="bool"),
])
def test_bad_overrides_are_refused(overrides: dict, message: str):
    with pytest.raises(ValueError, match=message):
        evaluate({}, overrides=overrides)


def test_custom_ranges():
    strict = QualityRange(name="LowRoutingRate", metric="auto_fraction", direction="below", threshold=0.5,
                          for_seconds=600, severity="info", summary="{project}: auto-accepted below {threshold:g}")
    assert strict.kind == "low_routing_rate"
    (breach,) = evaluate({("auto_fraction", "p", ""): 0.2, ("agreement_alpha", "p", ""): 0.1}, ranges=[strict])
    assert (breach.kind, breach.alert, breach.summary) == ("low_routing_rate", "LabelstreamLowRoutingRate",
                                                           "p: auto-accepted below 0.5")
    with pytest.raises(ValueError, match="unknown quality range 'low_agreement'"):
        evaluate({}, ranges=[strict], overrides={"low_agreement": 0.5})
