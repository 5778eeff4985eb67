"""The chart's quality alerts (files/alerts/rules.yaml, rendered into the PrometheusRule <fullname>-quality):
promtool checks them and runs files/alerts/tests.yaml against them, and they are the conditions of
QUALITY_RANGES (labelstream.monitor.alerts) with the same defaults, so the alerts and the monitor's quality
events cannot drift apart.
"""

from __future__ import annotations

import copy
import math
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml

from labelstream.monitor.alerts import QUALITY_RANGES, QualityRange, evaluate

from .test_helm_chart import CHART, CRD_SCHEMAS, KUBERNETES_VERSION, NAMESPACE, RELEASE, deep_merge, render

ALERT_TESTS = CHART / "files" / "alerts" / "tests.yaml"
# The chart's defaults, plus what every render needs (a MongoDB) and the switch of the quality alerts.
ENABLED = {"mongodb": {"uri": "mongodb://mongodb:27017"}, "metrics": {"qualityAlerts": {"enabled": True}}}
QUALITY_RULE = f"{RELEASE}-quality"
MONITOR_SELECTOR = {"namespace": NAMESPACE, "service": f"{RELEASE}-monitor"}
RANGES = {r.alert: r for r in QUALITY_RANGES}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    assert found is not None, "promtool is missing: scripts/install-test-tools.sh installs it (Debian's prometheus)"
    return found


def quality_rule(chart: helm_python.Chart, override: dict[str, Any] | None = None) -> dict[str, Any]:
    manifests = render(chart, deep_merge(ENABLED, override or {}))
    (rule,) = [m for m in manifests if m["kind"] == "PrometheusRule" and m["metadata"]["name"] == QUALITY_RULE]
    return rule


def alert_rules(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """alert name -> rule, of a PrometheusRule."""
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def values_key(quality_range: QualityRange) -> str:
    """metrics.qualityAlerts.rules.<key> of a range: its name in camelCase."""
    return quality_range.name[0].lower() + quality_range.name[1:]


def seconds(duration: str) -> float:
    """A Prometheus duration ("1h30m", "90s") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def run_promtool(promtool: str, rule: dict[str, Any], directory: Path) -> subprocess.CompletedProcess[str]:
    """promtool check rules + test rules of files/alerts/tests.yaml against the rule's groups."""
    (directory / "rules.yaml").write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    shutil.copy(ALERT_TESTS, directory / "tests.yaml")
    check = subprocess.run([promtool, "check", "rules", "rules.yaml"], cwd=directory, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=directory, capture_output=True, text=True)


# --- the chart's rules under promtool ---------------------------------------------------------------


def test_the_default_rules_pass_promtool_check_and_the_unit_tests(chart: helm_python.Chart, promtool: str,
                                                                  tmp_path: Path):
    test = run_promtool(promtool, quality_rule(chart), tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr


def test_the_unit_tests_notice_a_changed_threshold(chart: helm_python.Chart, promtool: str, tmp_path: Path):
    """Not vacuous: with another threshold the same tests fail."""
    rule = quality_rule(chart, {"metrics": {"qualityAlerts": {"rules": {"lowAgreement": {"threshold": 0.1}}}}})
    test = run_promtool(promtool, rule, tmp_path)
    assert test.returncode != 0 and "LabelstreamLowAgreement" in test.stdout + test.stderr


def unit_tests() -> list[dict[str, Any]]:
    return yaml.safe_load(ALERT_TESTS.read_text())["tests"]


def test_the_unit_tests_cover_every_alert_before_at_and_after_its_for(chart: helm_python.Chart):
    rules = alert_rules(quality_rule(chart))
    assert set(rules) == set(RANGES)
    for name, rule in rules.items():
        hold = seconds(rule["for"])
        cases = [(group, case) for group in unit_tests() for case in group["alert_rule_test"]
                 if case["alertname"] == name]
        silent = [seconds(case["eval_time"]) for _, case in cases if not case["exp_alerts"]]
        firing = [(group, case) for group, case in cases if case["exp_alerts"]]
        assert hold - 60 in silent, f"{name}: no test that it does not fire a minute before its for ({rule['for']})"
        assert hold in [seconds(case["eval_time"]) for _, case in firing], f"{name}: no test that it fires at its for"
        for group, case in firing:  # some series of the gauge stay in range, and do not fire
            gauge = RANGES[name].gauge
            watched = {(s["project"], s.get("worker", "")) for s in map(series_labels, group["input_series"])
                       if s["__name__"] == gauge and s["namespace"] == NAMESPACE}
            assert len(case["exp_alerts"]) < len(watched), (name, case["eval_time"])


# --- the chart's rules are QUALITY_RANGES ------------------------------------------------------------


def test_every_quality_range_is_an_alert_with_the_same_defaults(chart: helm_python.Chart):
    rules = alert_rules(quality_rule(chart))
    assert set(rules) == set(RANGES), "an alert without a QUALITY_RANGES entry, or the other way round"
    defaults = chart.merge_values(ENABLED)["metrics"]["qualityAlerts"]["rules"]
    assert set(defaults) == {values_key(r) for r in QUALITY_RANGES}
    for quality_range in QUALITY_RANGES:
        rule = rules[quality_range.alert]
        assert defaults[values_key(quality_range)] == {
            "threshold": quality_range.threshold, "for": rule["for"], "severity": quality_range.severity}
        assert seconds(rule["for"]) == quality_range.for_seconds, quality_range.name
        assert rule["labels"] == {"severity": quality_range.severity}
        assert comparison(rule["expr"], quality_range.gauge) == (
            "<" if quality_range.direction == "below" else ">", quality_range.threshold), rule["expr"]
        # Every replica must agree (max of a "below" gauge, min of an "above" one) and pods' labels go.
        labels = "namespace, project, worker" if quality_range.metric == "worker_accuracy" else "namespace, project"
        aggregation = "max" if quality_range.direction == "below" else "min"
        assert f"{aggregation} by ({labels}) ({quality_range.gauge}{{" in rule["expr"]
        if quality_range.while_metric is None:
            assert " and " not in rule["expr"]
        else:
            assert " and on (namespace, project)" in rule["expr"]
            gate = f"labelstream_{quality_range.while_metric}"
            assert comparison(rule["expr"], gate) == (">", quality_range.while_above), rule["expr"]


def comparison(expr: str, gauge: str) -> tuple[str, float]:
    """The comparison applied to the (aggregated) gauge in expr, after checking it reads the monitor's."""
    found = re.search(rf"\b{gauge}\{{([^}}]*)\}}\)\s*([<>])\s*([-+0-9.eE]+)", expr)
    assert found, (gauge, expr)
    selector = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
    assert selector == MONITOR_SELECTOR, expr
    return found.group(2), float(found.group(3))


# --- Python finds what Prometheus alerts on ---------------------------------------------------------


def series_labels(entry: dict[str, Any]) -> dict[str, str]:
    """The labels of an input series, with its metric name as __name__."""
    name, _, labels = entry["series"].partition("{")
    return {"__name__": name.strip(), **dict(re.findall(r'(\w+)="([^"]*)"', labels))}


def series_values(notation: str) -> list[float]:
    """promtool's expanding notation, the part tests.yaml uses: "v", "vxN", "a+bxN", "a-bxN" (N + 1 samples)."""
    values: list[float] = []
    for token in notation.split():
        expanding = re.fullmatch(r"([-+]?(?:NaN|Inf|[0-9.]+(?:e[-+]?[0-9]+)?))(?:([-+])([0-9.]+))?x([0-9]+)", token)
        if expanding is None:
            values.append(float(token))
            continue
        start, sign, step, count = expanding.groups()
        delta = float(step or 0) * (-1 if sign == "-" else 1)
        values.extend(float(start) + i * delta for i in range(int(count) + 1))
    return values


def test_the_series_notation_reader():
    assert series_values("0.2x2 5") == [0.2, 0.2, 0.2, 5.0]
    assert series_values("1+2x2 10-1x1") == [1.0, 3.0, 5.0, 10.0, 9.0]
    assert all(math.isnan(v) for v in series_values("NaN+0x3"))


def gauges_at(group: dict[str, Any], eval_time: str) -> dict[tuple[str, str, str], float]:
    """The metrics `evaluate` takes, from the unit test's series of the release's monitor at eval_time."""
    step = seconds(group["interval"])
    metrics: dict[tuple[str, str, str], float] = {}
    for entry in group["input_series"]:
        labels = series_labels(entry)
        if {k: labels.get(k) for k in MONITOR_SELECTOR} != MONITOR_SELECTOR:
            continue
        values = series_values(entry["values"])
        index = int(seconds(eval_time) // step)
        assert index < len(values), entry["series"]
        key = (labels["__name__"].removeprefix("labelstream_"), labels["project"], labels.get("worker", ""))
        value = values[index]
        if key in metrics:  # several monitor replicas: they export the same value
            assert metrics[key] == value or (math.isnan(metrics[key]) and math.isnan(value)), entry["series"]
        metrics[key] = value
    return metrics


def test_python_breaches_are_the_alerts_prometheus_fires():
    """At every eval_time of tests.yaml a firing alert is a breach `evaluate` finds in the same values, with the
    same summary and severity; at an alert's last eval_time (every series out of range for long enough) the
    alerts are exactly the breaches."""
    for group in unit_tests():
        last = {}
        for case in group["alert_rule_test"]:
            last[case["alertname"]] = max(last.get(case["alertname"], 0), seconds(case["eval_time"]))
        for case in group["alert_rule_test"]:
            name = case["alertname"]
            breaches = {(b.project, b.worker): b for b in evaluate(gauges_at(group, case["eval_time"]))
                        if b.alert == name}
            firing = {(a["exp_labels"]["project"], a["exp_labels"].get("worker", "")): a for a in case["exp_alerts"]}
            assert set(firing) <= set(breaches), (name, case["eval_time"])
            if seconds(case["eval_time"]) == last[name]:
                assert set(firing) == set(breaches), (name, case["eval_time"])
            for key, alert in firing.items():
                assert breaches[key].summary == alert["exp_annotations"]["summary"]
                assert breaches[key].severity == alert["exp_labels"]["severity"]
                assert alert["exp_labels"]["namespace"] == NAMESPACE


# --- values ----------------------------------------------------------------------------------------


def test_quality_alerts_are_off_by_default(chart: helm_python.Chart):
    manifests = render(chart, {"mongodb": ENABLED["mongodb"]})
    assert not [m for m in manifests if m["kind"] == "PrometheusRule"]


def test_values_set_thresholds_durations_severities_and_labels(chart: helm_python.Chart):
    rule = quality_rule(chart, {"metrics": {"qualityAlerts": {
        "labels": {"release": "kube-prometheus-stack"},
        "rules": {"lowWorkerAccuracy": {"threshold": 0.85, "for": "1h30m", "severity": "critical"},
                  "slowTasks": {"threshold": 90.5}}}}})
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules = alert_rules(rule)
    worker = rules["LabelstreamLowWorkerAccuracy"]
    assert comparison(worker["expr"], "labelstream_worker_accuracy") == ("<", 0.85)
    assert worker["for"] == "1h30m" and worker["labels"] == {"severity": "critical"}
    assert worker["annotations"]["summary"] == (
        "Worker {{ $labels.worker }} of project {{ $labels.project }} is less than 0.85 accurate on gold tasks")
    slow = rules["LabelstreamSlowTasks"]
    assert comparison(slow["expr"], "labelstream_time_per_task_seconds") == (">", 90.5)
    assert slow["for"] == "30m" and "more than 90.5 s per task" in slow["annotations"]["summary"]
    # A value override is an override of evaluate: the same breach at the same threshold.
    (breach,) = evaluate({("worker_accuracy", "p", "w"): 0.8}, overrides={"low_worker_accuracy": 0.85})
    assert breach.summary == "Worker w of project p is less than 0.85 accurate on gold tasks"


def test_the_quality_rule_is_a_valid_prometheus_rule_and_lints_clean(chart: helm_python.Chart):
    rule = copy.deepcopy(quality_rule(chart))
    assert rule["metadata"]["annotations"].pop("test/template") == "labelstream/templates/alerts.yaml"
    jsonschema.validate(rule, CRD_SCHEMAS["PrometheusRule"])
    report = helm_python.lint(CHART, ENABLED, strict=True, kube_version=f"v{KUBERNETES_VERSION}",
                              namespace=NAMESPACE)
    assert not report["errors"], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


BROKEN_QUALITY_VALUES = [
    pytest.param({"lowWorkerAccuracy": {"threshold": 1.5}},
                 ["/metrics/qualityAlerts/rules/lowWorkerAccuracy/threshold", "maximum"], id="accuracy-above-1"),
    pytest.param({"lowAgreement": {"threshold": -2}}, ["/metrics/qualityAlerts/rules/lowAgreement/threshold"],
                 id="alpha-below-minus-1"),
    pytest.param({"lowThroughput": {"threshold": 0}}, ["/metrics/qualityAlerts/rules/lowThroughput/threshold"],
                 id="zero-throughput"),
    pytest.param({"rushedTasks": {"threshold": "2s"}}, ["/metrics/qualityAlerts/rules/rushedTasks/threshold"],
                 id="threshold-not-a-number"),
    pytest.param({"slowTasks": {"for": "30 minutes"}}, ["/metrics/qualityAlerts/rules/slowTasks/for", "pattern"],
                 id="for-not-a-duration"),
    pytest.param({"lowAgreement": {"severity": "warning\"}"}}, ["/metrics/qualityAlerts/rules/lowAgreement/severity"],
                 id="severity-with-a-quote"),
    pytest.param({"lowAgreemnt": {"threshold": 0.5}}, ["/metrics/qualityAlerts/rules", "'lowAgreemnt' not allowed"],
                 id="misspelt-alert"),
]


@pytest.mark.parametrize(("rules", "fragments"), BROKEN_QUALITY_VALUES)
def test_broken_quality_alert_values_fail_the_schema(chart: helm_python.Chart, rules: dict[str, Any],
                                                     fragments: list[str]):
    with pytest.raises(helm_python.HelmValuesError) as raised:
        render(chart, deep_merge(ENABLED, {"metrics": {"qualityAlerts": {"rules": rules}}}))
    for fragment in fragments:
        assert fragment in str(raised.value), str(raised.value)


def test_quality_alerts_need_the_monitor(chart: helm_python.Chart):
    with pytest.raises(helm_python.HelmRenderError, match="metrics.qualityAlerts.enabled needs services.monitor"):
        render(chart, deep_merge(ENABLED, {"services": {"monitor": {"enabled": False}}}))


# --- the dead-letter alert (files/alerts/dead_letters.yaml) under promtool ----------------------------

DEAD_LETTER_TESTS = CHART / "files" / "alerts" / "dead_letters_tests.yaml"
RULES_ON = {"mongodb": {"uri": "mongodb://mongodb:27017"}, "metrics": {"prometheusRule": {"enabled": True}}}


def dead_letter_group(chart: helm_python.Chart, override: dict[str, Any] | None = None) -> dict[str, Any]:
    manifests = render(chart, deep_merge(RULES_ON, override or {}))
    (rule,) = [m for m in manifests if m["kind"] == "PrometheusRule" and m["metadata"]["name"] == RELEASE]
    (group,) = [g for g in rule["spec"]["groups"] if g["name"] == "labelstream.dead_letters"]
    return group


def run_dead_letter_tests(promtool: str, group: dict[str, Any], directory: Path) -> subprocess.CompletedProcess[str]:
    (directory / "dead_letters.rules.yaml").write_text(yaml.safe_dump({"groups": [group]}, sort_keys=False))
    shutil.copy(DEAD_LETTER_TESTS, directory / "dead_letters_tests.yaml")
    check = subprocess.run([promtool, "check", "rules", "dead_letters.rules.yaml"], cwd=directory,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return subprocess.run([promtool, "test", "rules", "dead_letters_tests.yaml"], cwd=directory,
                          capture_output=True, text=True)


def test_the_dead_letter_alert_passes_promtool_check_and_its_unit_tests(chart: helm_python.Chart, promtool: str,
                                                                       tmp_path: Path):
    group = dead_letter_group(chart)
    (rule,) = group["rules"]
    assert rule["alert"] == "LabelstreamDeadLetters" and f'namespace="{NAMESPACE}"' in rule["expr"]
    test = run_dead_letter_tests(promtool, group, tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr


def test_the_dead_letter_unit_tests_notice_a_changed_threshold_or_window(chart: helm_python.Chart, promtool: str,
                                                                        tmp_path: Path):
    """Not vacuous: three letters under a threshold of five, or a shorter window, fail the same tests."""
    for override in ({"threshold": 5}, {"window": "5m"}):
        group = dead_letter_group(chart, {"metrics": {"prometheusRule": {"deadLetters": override}}})
        test = run_dead_letter_tests(promtool, group, tmp_path)
        assert test.returncode != 0 and "LabelstreamDeadLetters" in test.stdout + test.stderr, override
