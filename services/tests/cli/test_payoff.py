"""The demo's payoff figures: waves from cumulative statistics, the guarantee, the cost table."""

from __future__ import annotations

import pytest

from labelstream.cli.payoff import Wave, clopper_pearson, cost_table, guarantee, hourly_pay, plot_waves, wave_between
from labelstream.common.projects import resolve
from labelstream.v1 import events_pb2, services_pb2


def stats(auto: int, auto_correct: int, human: int, human_correct: int) -> services_pb2.ProjectStats:
    return services_pb2.ProjectStats(
        final_labels=auto + human,
        auto_path=services_pb2.PathStats(final_labels=auto, with_gold=auto, correct=auto_correct),
        human_path=services_pb2.PathStats(final_labels=human, with_gold=human, correct=human_correct),
        overall=services_pb2.PathStats(final_labels=auto + human, with_gold=auto + human,
                                       correct=auto_correct + human_correct))


def spec() -> events_pb2.ProjectSpec:
    return resolve(events_pb2.ProjectSpec(project_id="p", labels=["a", "b"], overlap=3, pay_per_answer=0.05,
                                          routing_strategy="calibrated", target_accuracy=0.9))


def test_a_wave_is_the_difference_of_cumulative_statistics():
    first = wave_between(None, stats(0, 0, 100, 95), 100)
    assert (first.auto, first.human, first.human_fraction, first.accuracy) == (0, 100, 1.0, 0.95)
    second = wave_between(stats(0, 0, 100, 95), stats(60, 57, 140, 133), 100)
    assert (second.auto, second.human, second.auto_correct) == (60, 40, 57)
    assert second.human_fraction == pytest.approx(0.4) and second.accuracy == pytest.approx(0.95)
    assert second.auto_accuracy == pytest.approx(0.95) and first.auto_accuracy is None


def test_the_interval_is_exact_and_the_guarantee_compares_with_the_target():
    low, high = clopper_pearson(95, 100)
    assert low == pytest.approx(0.8872, abs=1e-4) and high == pytest.approx(0.9836, abs=1e-4)
    assert clopper_pearson(0, 0) == (0.0, 1.0) and clopper_pearson(10, 10)[1] == 1.0
    held = guarantee(spec(), stats(200, 186, 100, 95))
    assert held["held"] is True and held["auto_accuracy"] == pytest.approx(0.93)
    assert guarantee(spec(), stats(200, 170, 100, 95))["held"] is False
    assert guarantee(spec(), stats(0, 0, 100, 95))["held"] is None, "nothing auto-accepted: nothing to judge"


def test_the_cost_table_prices_people_and_model_time():
    table = cost_table(spec(), items=1000, paid_people=60.0, model_seconds=1800.0, gpu_hour_price=2.0,
                       model_accuracy=0.8, final_accuracy=0.94)
    rows = table["rows"]
    assert rows["all_human"]["cost"] == pytest.approx(150.0)   # 1000 items x 3 answers x 0.05
    assert rows["model_only"]["cost"] == pytest.approx(1.0)    # half an hour at 2.0 an hour
    assert rows["hybrid"]["cost"] == pytest.approx(61.0) and rows["hybrid"]["accuracy"] == 0.94
    assert table["saved_vs_all_human"] == pytest.approx(1 - 61 / 150)


def test_hourly_pay_against_the_floor():
    workers = [services_pb2.WorkerStats(worker_id=w, tasks_done=10, hourly_rate=r)
               for w, r in (("a", 9.0), ("b", 15.0), ("c", 20.0))]
    assert hourly_pay(workers, 12.0) == {"workers": 3, "floor": 12.0, "min": 9.0, "median": 15.0, "below_floor": 1}
    assert hourly_pay([], 12.0) == {"workers": 0, "floor": 12.0}


def test_the_plot_is_written(tmp_path):
    path = tmp_path / "waves.png"
    plot_waves([Wave(100, 0, 100, 0, 0, 100, 95), Wave(100, 50, 50, 50, 46, 100, 93)], 0.9, str(path), "t")
    assert path.stat().st_size > 10_000
