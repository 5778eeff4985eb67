"""Two processes of every consumer service on the same topics, SIGKILLed in turn while items flow
(auto-accepted and human-labelled), still give every item exactly one final label."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pymongo import MongoClient

from integration_tests.conftest import DEMO
from labelstream.cli.projects import load_items, load_project
from labelstream.cli.scale_out import run_drill
from labelstream.cli.stack import LocalStack, free_port_block

pytestmark = pytest.mark.integration
PROJECT = "scale-out"
ITEMS = 300


@pytest.fixture(scope="module")
def drill_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own: the drill adds processes and kills them, which the session's stack must not see."""
    local = LocalStack(tmp_path_factory.mktemp("scale-out"), free_port_block(), progress=print)
    # A task leased through a killed dispatcher comes back after the lease: short, so the test is short.
    local.service_env_overrides["dispatcher"] = {"LABELSTREAM_LEASE_SECONDS": "8"}
    local.start()
    yield local
    local.stop()


def test_replicas_killed_mid_run_give_every_item_exactly_one_final_label(drill_stack: LocalStack) -> None:
    spec = load_project(DEMO / "project.yaml")
    spec.project_id = PROJECT
    spec.auto_accept_threshold = 0.9  # about half of the items go to people: the dispatchers and their outbox run
    items = load_items(DEMO / "items.jsonl")[:ITEMS]

    result = run_drill(drill_stack, spec, items, workers_per_dispatcher=6, timeout_s=240, progress=print)

    summary = result.as_dict()
    assert len(result.kills) == 12, f"each of the six services lost both of its processes once: {summary}"
    assert all(done < ITEMS for done in result.final_at_kills), "the run finished before a kill: nothing was tested"
    assert result.human_items > 0, "no item went to people: the dispatchers were not tested"
    tally = result.tally
    assert tally is not None
    assert not tally.missing, f"items with no final label: {tally.missing[:10]}"
    assert not tally.conflicting, f"items with two different final labels: {tally.conflicting[:10]}"
    assert not tally.unexpected
    assert tally.with_label == ITEMS
    with MongoClient(drill_stack.state.mongodb_uri) as mongo:
        stored = list(mongo["labelstream"].final_labels.find({"project_id": PROJECT}, {"item_id": 1}))
    assert len(stored) == ITEMS and {d["item_id"] for d in stored} == {i["item_id"] for i in items}
