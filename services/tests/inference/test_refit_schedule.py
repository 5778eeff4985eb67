"""Head refits at growing intervals: each new head starts the router's evidence afresh."""

from __future__ import annotations

from labelstream.common.projects import resolve, validate
from labelstream.inference.refit import refit_interval
from labelstream.v1 import events_pb2


def spec(every: int, growth: float = 0.0) -> events_pb2.ProjectSpec:
    return resolve(events_pb2.ProjectSpec(project_id="p", labels=["a", "b"], head_refit_every=every,
                                          head_refit_growth=growth))


def test_refits_come_every_n_labels_by_default_and_at_growing_intervals_when_asked():
    assert [refit_interval(spec(200), done) for done in range(3)] == [200, 200, 200]
    assert [refit_interval(spec(300, 3.0), done) for done in range(3)] == [300, 900, 2700]


def test_a_project_stored_before_the_field_existed_refits_every_n_labels():
    unresolved = events_pb2.ProjectSpec(project_id="p", labels=["a", "b"], head_refit_every=50)
    assert refit_interval(unresolved, 4) == 50


def test_a_growth_below_one_is_refused():
    problems = validate(spec(200, 0.5))
    assert any("head_refit_growth must be at least 1" in p for p in problems), problems
