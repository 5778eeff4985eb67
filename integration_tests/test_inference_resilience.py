"""Inference against a failing and a changing Triton: outages lose nothing, refits go live."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

from integration_tests.conftest import DEMO, eventually, make_project
from labelstream.cli import client
from labelstream.cli.projects import load_project
from labelstream.cli.stack import grpc_serving
from labelstream.inference.triton import TritonClassifier
from labelstream.simulation.workforce import WorkerProfile, Workforce

pytestmark = pytest.mark.integration


def test_killing_triton_mid_stream_loses_no_item(stack, state, db, demo_items):
    project = "outage"
    items = demo_items[:300]
    make_project(state, project, auto_accept_threshold=0.01)  # all auto: the model is the only worker
    monitor, inference = state.grpc_target("monitor"), state.grpc_target("inference", token="")
    client.publish_json_items(state.kafka_bootstrap, project, items)
    assert eventually(lambda: db.predictions.count_documents({"project_id": project}) > 0, timeout_s=60)
    stack.signal_service("triton", signal.SIGKILL)
    assert eventually(lambda: not grpc_serving(inference), timeout_s=15), "inference kept SERVING without Triton"
    during = db.predictions.count_documents({"project_id": project})
    time.sleep(3)
    assert db.predictions.count_documents({"project_id": project}) == during, "predicted without Triton?"
    assert during < len(items), "every item was predicted before the outage; nothing was tested"
    stack.start_triton()
    assert eventually(lambda: grpc_serving(inference), timeout_s=30), "inference did not come back"
    stats = client.wait_for_final_labels(monitor, project, len(items), timeout_s=300)
    assert stats.final_labels == len(items)
    assert db.predictions.count_documents({"project_id": project}) == len(items)
    assert db.final_labels.count_documents({"project_id": project}) == len(items)


def test_refit_head_is_served_as_a_new_version_while_requests_continue(stack, state, db, demo_items):
    project = "refit"
    first, later = demo_items[300:390], demo_items[390:420]
    make_project(state, project, auto_accept_threshold=0.999, head_refit_every=30)
    make_project(state, "pinned", auto_accept_threshold=0.01, model_version="1")
    make_project(state, "bystander", auto_accept_threshold=0.01)
    triton = TritonClassifier(f"127.0.0.1:{state.ports.triton_grpc}", timeout_s=30)
    spec = load_project(DEMO / "project.yaml")
    errors: list[Exception] = []
    versions: set[str] = set()
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            try:
                versions.add(triton.predict("encoder_fewshot", ["a warm and funny film"], spec).model_version)
            except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
                errors.append(exc)
            time.sleep(0.05)

    asker = threading.Thread(target=keep_asking, daemon=True)
    asker.start()
    gold = {i["text"]: i["gold_label"] for i in first + later}
    try:
        with Workforce(state.grpc_target("dispatcher"), project, gold, count=6,
                       profile=WorkerProfile(accuracy=1.0, answer_ms=5)):
            client.publish_json_items(state.kafka_bootstrap, project, first)
            client.wait_for_final_labels(state.grpc_target("monitor"), project, len(first), timeout_s=300)
            served = stack.served_models / "encoder_fewshot"
            assert eventually(lambda: triton.ready("encoder_fewshot") and (served / "2").is_dir(), timeout_s=60)
            training = json.loads(Path(served / "2" / "training" / f"{project}.json").read_text())
            assert len(training["examples"]) >= 32 + 30
            assert eventually(lambda: "2" in versions or any(v.isdigit() and int(v) >= 2 for v in versions),
                              timeout_s=60), f"Triton never served the new version (saw {versions})"
            client.publish_json_items(state.kafka_bootstrap, project, later)
            client.publish_json_items(state.kafka_bootstrap, "pinned", later)
            client.publish_json_items(state.kafka_bootstrap, "bystander", later)
            client.wait_for_final_labels(state.grpc_target("monitor"), project, len(first) + len(later),
                                         timeout_s=300)
            client.wait_for_final_labels(state.grpc_target("monitor"), "pinned", len(later), timeout_s=300)
            client.wait_for_final_labels(state.grpc_target("monitor"), "bystander", len(later), timeout_s=300)
    finally:
        stop.set()
        asker.join(timeout=10)
        triton.close()
    assert not errors, f"requests failed while the new version went live: {errors[:3]}"
    later_ids = [i["item_id"] for i in later]
    refit_versions = {d["model_version"] for d in db.predictions.find({"project_id": project,
                                                                       "item_id": {"$in": later_ids}})}
    assert refit_versions and all(int(v) >= 2 for v in refit_versions)
    pinned_versions = {d["model_version"] for d in db.predictions.find({"project_id": "pinned"})}
    assert pinned_versions == {"1"}
    # The refit project's head changed; a bystander's did not, whatever version served it, so its
    # calibration (keyed on head_version) carries on.
    refit_heads = {d["head_version"] for d in db.predictions.find({"project_id": project,
                                                                   "item_id": {"$in": later_ids}})}
    assert refit_heads and all(int(v) >= 2 for v in refit_heads)
    bystander = list(db.predictions.find({"project_id": "bystander"}))
    assert {d["head_version"] for d in bystander} == {"1"}
    assert all(int(d["model_version"]) >= 2 for d in bystander)
