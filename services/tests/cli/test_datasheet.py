"""The datasheet beside an export: people, hours, pay against the floor, who decided, the rules."""

from __future__ import annotations

import pytest

from labelstream.cli.datasheet import datasheet, decided_by, markdown
from labelstream.common.projects import resolve
from labelstream.v1 import events_pb2, services_pb2

AUTO, HUMAN = events_pb2.LABEL_SOURCE_AUTO, events_pb2.LABEL_SOURCE_HUMAN


def final(item: str, source: int, with_model: bool = False) -> events_pb2.FinalLabel:
    return events_pb2.FinalLabel(project_id="p", item_id=item, label="a", source=source, with_model=with_model)


def worker(worker_id: str, tasks: int, seconds_per_task: float, earnings: float,
           status: str = "active") -> services_pb2.WorkerStats:
    return services_pb2.WorkerStats(worker_id=worker_id, project_id="p", status=status, tasks_done=tasks,
                                    median_seconds_per_task=seconds_per_task, earnings=earnings)


def project() -> events_pb2.ProjectSpec:
    spec = events_pb2.ProjectSpec(project_id="p", name="Sentiment", labels=["a", "b"], pay_per_answer=0.05,
                                  routing_strategy="calibrated", target_accuracy=0.9, explore_fraction=0.1)
    spec.workers.min_hourly_wage = 12.0
    spec.workers.gold_rate_new = 0.3
    return resolve(spec)


def test_decided_by_tells_people_model_and_both_apart():
    finals = [final("1", AUTO), final("2", AUTO), final("3", HUMAN), final("4", HUMAN, with_model=True)]
    assert decided_by(finals) == {"model": 2, "people": 1, "both": 1}


def test_the_datasheet_counts_people_hours_and_pay_against_the_floor():
    workers = [worker("w1", 360, 10.0, 18.0),        # 1 h, 18/h
               worker("w2", 180, 20.0, 9.0),         # 1 h, 9/h: below the 12/h floor
               worker("w3", 90, 40.0, 15.0, "blocked"),  # 1 h, 15/h
               worker("idle", 0, 0.0, 0.0)]          # signed up, never answered: not counted
    finals = [final(str(i), AUTO) for i in range(6)] + [final(str(i), HUMAN) for i in range(6, 10)]
    sheet = datasheet(project(), finals, workers)
    assert sheet["people"] == {"count": 3, "blocked": 1, "answers": 630, "hours": 3.0, "paid": 42.0}
    assert sheet["pay"]["hourly_pay_quantiles"]["p0"] == 9.0 and sheet["pay"]["hourly_pay_quantiles"]["p50"] == 15.0
    assert sheet["pay"]["below_floor"] == 1 and sheet["pay"]["wage_floor_per_hour"] == 12.0
    assert sheet["decided_by"]["model"] == {"labels": 6, "share": 0.6}
    assert sheet["decided_by"]["people"] == {"labels": 4, "share": 0.4}
    assert sheet["rules"]["routing"]["target_accuracy"] == pytest.approx(0.9)
    assert sheet["rules"]["gold"]["gold_rate_new"] == pytest.approx(0.3)
    text = markdown(sheet)
    assert "3 people answered 630 tasks in 3.00 hours" in text
    assert "wage floor 12.00, 1 of 3 people below it" in text
    assert "| the model alone (auto-accepted) | 6 | 60.0% |" in text
    assert "auto-accepted accuracy at least 0.90 with 95% confidence" in text


def test_a_datasheet_without_people_or_a_floor_says_so():
    spec = resolve(events_pb2.ProjectSpec(project_id="p", labels=["a", "b"]))
    sheet = datasheet(spec, [final("1", AUTO)], [])
    assert sheet["people"]["count"] == 0 and "hourly_pay_quantiles" not in sheet["pay"]
    assert sheet["decided_by"]["model"]["share"] == 1.0
    assert "top probability at least 0.90" in markdown(sheet)


def test_work_measured_in_milliseconds_is_not_rounded_away():
    """Scripted workers answer in a few milliseconds: their time is small but not zero."""
    sheet = datasheet(project(), [final("1", HUMAN)], [worker("fast", 40, 0.005, 2.0)])
    assert sheet["people"]["hours"] == pytest.approx(40 * 0.005 / 3600, rel=0.01)
    assert sheet["pay"]["people_with_measured_time"] == 1
    assert "1 people answered 40 tasks in 0.2 seconds" in markdown(sheet)
