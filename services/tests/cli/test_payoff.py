"""The demo's payoff figures: waves from cumulative statistics, the guarantee, the cost table, and a
multi_label project's final sets against the reference per path."""

from __future__ import annotations

import pytest

from labelstream.cli.client import report_dict
from labelstream.cli.main import multi_label_rows, print_report
from labelstream.cli.payoff import (
    Wave,
    clopper_pearson,
    cost_table,
    guarantee,
    hourly_pay,
    plot_waves,
    score_sets,
    set_metrics_by_path,
    wave_between,
)
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


LABELS = ["anger", "joy", "neutral"]


def final(item_id: str, labels: list[str], source: int) -> events_pb2.FinalLabel:
    return events_pb2.FinalLabel(item_id=item_id, label_set=labels, source=source)


def test_final_sets_are_scored_against_the_reference_per_path():
    auto, human = events_pb2.LABEL_SOURCE_AUTO, events_pb2.LABEL_SOURCE_HUMAN
    finals = [final("a", ["joy"], auto), final("b", ["neutral"], auto),
              final("c", ["anger", "joy"], human), final("d", ["neutral"], human), final("e", ["joy"], human),
              final("no-gold", ["anger"], human)]
    gold = {"a": ["joy"], "b": ["joy"], "c": ["anger"], "d": ["neutral"], "e": ["joy", "neutral"], "unseen": ["joy"]}
    sets = set_metrics_by_path(LABELS, finals, gold)
    assert [sets[p]["items"] for p in ("overall", "auto", "human")] == [5, 2, 3]
    # auto: a right; b says neutral for joy -> tp 1, fp 1, fn 1 over 2 x 3 cells
    assert sets["auto"]["micro_f1"] == pytest.approx(0.5) and sets["auto"]["hamming_loss"] == pytest.approx(2 / 6)
    assert sets["auto"]["exact_match"] == pytest.approx(0.5)
    # human: c one extra joy, e misses neutral -> tp 3, fp 1, fn 1
    assert sets["human"]["micro_f1"] == pytest.approx(6 / 8) and sets["human"]["hamming_loss"] == pytest.approx(2 / 9)
    # overall: tp 4, fp 2, fn 2 over 15 cells; per label F1 anger 1, joy 4/6, neutral 2/4 -> macro
    overall = sets["overall"]
    assert overall["micro_f1"] == pytest.approx(8 / 12) and overall["hamming_loss"] == pytest.approx(4 / 15)
    assert overall["macro_f1"] == pytest.approx((1 + 4 / 6 + 2 / 4) / 3)
    assert overall["per_label"]["joy"] == {"precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3),
                                           "f1": pytest.approx(2 / 3), "support": 3}


def test_a_path_without_items_has_no_figures_rather_than_perfect_ones():
    sets = set_metrics_by_path(LABELS, [final("a", ["joy"], events_pb2.LABEL_SOURCE_HUMAN)], {"a": ["joy"]})
    assert sets["auto"] == {"items": 0, "micro_f1": None, "macro_f1": None, "hamming_loss": None,
                            "exact_match": None}
    assert sets["human"]["micro_f1"] == 1.0 and sets["overall"]["hamming_loss"] == 0.0
    rows = dict(multi_label_rows(sets))
    assert rows["sets vs gold, auto path: micro-F1 / macro-F1 / Hamming loss"] == "n/a / n/a / n/a (0 items)"
    assert rows["sets vs gold, human path: micro-F1 / macro-F1 / Hamming loss"] == "1.000 / 1.000 / 0.0% (1 items)"
    assert not any("model alone" in name for name in rows)


def test_the_model_alone_is_scored_on_the_items_with_gold():
    alone = score_sets(LABELS, {"a": ["joy", "neutral"], "b": ["anger"], "no-gold": ["joy"]},
                       {"a": ["joy"], "b": ["anger"]})
    assert alone["items"] == 2 and alone["exact_match"] == pytest.approx(0.5)
    assert alone["micro_f1"] == pytest.approx(4 / 5) and alone["hamming_loss"] == pytest.approx(1 / 6)
    rows = dict(multi_label_rows({"overall": alone, "model_only": alone}))
    assert rows["sets vs gold, model alone: micro-F1 / macro-F1 / Hamming loss"].endswith("(2 items)")


def test_the_guarantee_of_a_multi_label_project_is_per_label():
    ml = resolve(events_pb2.ProjectSpec(project_id="m", task="multi_label", labels=LABELS,
                                        routing_strategy="calibrated", target_accuracy=0.9))
    promise = guarantee(ml, stats(0, 0, 100, 40))
    assert promise == {"form": "per_label", "target_accuracy": pytest.approx(0.9), "confidence_level": 0.95,
                       "auto_accepted": 0, "held": None}
    assert "form" not in guarantee(spec(), stats(200, 186, 100, 95))


def test_the_printed_report_names_set_figures_only_for_multi_label_projects(capsys):
    data = report_dict(stats(60, 30, 40, 30))
    print_report(data)
    single = capsys.readouterr().out
    assert "accuracy vs gold, auto path" in single and "exact-set" not in single and "micro-F1" not in single
    data["multi_label"] = set_metrics_by_path(LABELS, [final("a", ["joy"], events_pb2.LABEL_SOURCE_HUMAN)],
                                              {"a": ["joy"]})
    print_report(data)
    multi = capsys.readouterr().out
    assert "exact-set accuracy vs gold, human path" in multi and "micro-F1 / macro-F1 / Hamming loss" in multi
