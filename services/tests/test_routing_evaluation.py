"""The routing guarantee on SST-2 with the project's encoder model (real predictions, 20 seeds)."""

import json

import pytest
from typer.testing import CliRunner

from labelstream.cli.main import app


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("routing")
    result = CliRunner().invoke(app, ["evaluate-routing", "--target", "0.95", "--seeds", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "sst2-demo-target0.95.png").stat().st_size > 10_000
    return json.loads((out / "sst2-demo-target0.95.json").read_text())


def test_auto_accepted_accuracy_meets_the_target_in_95_percent_of_runs(summary):
    point = summary["strategies"]["calibrated"]["operating_point"]
    assert point["runs_meeting_target"] >= 19
    # Not by refusing to auto-accept anything: most runs accept some items.
    assert point["runs_with_auto_accepted"] >= 15
    assert point["mean_human_fraction"] < 0.97


def test_every_strategy_beats_random_routing(summary):
    strategies = summary["strategies"]
    for name in ("raw_probability", "calibrated", "meta"):
        assert strategies[name]["auc"] > strategies["random"]["auc"] + 0.02
