"""One real local stack (Tansu broker, NX-27017 store, Triton, six services) per test session."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright
from pymongo import MongoClient
from pymongo.database import Database

from labelstream.cli import client
from labelstream.cli.projects import load_items, load_project
from labelstream.cli.stack import REPO_ROOT, LocalStack, StackState, free_port_block, store_command
from labelstream.common.otlp_receiver import OtlpReceiver
from labelstream.v1 import events_pb2

DEMO = REPO_ROOT / "deploy" / "examples" / "sst2"


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    """The collector the stack's services send their traces to over OTLP/gRPC."""
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver) -> Iterator[LocalStack]:
    run_dir = tmp_path_factory.mktemp("stack")
    local = LocalStack(run_dir, free_port_block(), progress=print)
    # the standard variables, as a deployment sets them (the chart's `telemetry`)
    local.common_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_EXPORTER_OTLP_INSECURE": "true"}
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="session")
def scratch_mongodb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store server of its own for tests that drop databases (the local server's databases
    share collections, so dropping one in the stack's server would empty the stack's store)."""
    run_dir = tmp_path_factory.mktemp("scratch-store")
    (run_dir / "logs").mkdir()
    port = free_port_block(size=1, start=45000)
    server = subprocess.Popen(store_command(run_dir, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    yield f"mongodb://127.0.0.1:{port}"
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:  # still busy with a command: it holds nothing the suite needs
        server.kill()
        server.wait(timeout=10)


CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright never downloads a browser here
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium driven by Playwright, for the web pages' end-to-end tests."""
    assert shutil.which(CHROMIUM), "chromium is missing: scripts/install-test-tools.sh installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def state(stack: LocalStack) -> StackState:
    return stack.state


@pytest.fixture(scope="session")
def db(state: StackState) -> Iterator[Database]:
    mongo = MongoClient(state.mongodb_uri)
    yield mongo["labelstream"]
    mongo.close()


@pytest.fixture(scope="session")
def demo_items() -> list[dict]:
    return load_items(DEMO / "items.jsonl")


def make_project(state: StackState, project_id: str, **overrides) -> events_pb2.ProjectSpec:
    spec = load_project(DEMO / "project.yaml")
    spec.project_id = project_id
    for name, value in overrides.items():
        setattr(spec, name, value)
    client.apply_project(state.grpc_target("ingest"), spec)
    return spec


def eventually(condition, timeout_s: float = 30.0, interval_s: float = 0.5):
    """Poll `condition` until it returns something truthy; return that, or the last value on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)
