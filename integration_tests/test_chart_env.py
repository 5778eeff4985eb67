"""Chart and code agree: the topic Job's command and each of the six services, started with exactly
the environment the Helm chart renders for them (helm/labelstream, ci/minimal-values.yaml), with
only the addresses and ports rewritten to the local stack, do their job: the topics exist, every
service becomes SERVING on the gRPC health service (the dispatcher and the monitor also on their web
page's health path, which the chart's HTTP probes ask), and a SIGTERM stops it with exit code 0."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from kafka import KafkaAdminClient

from labelstream.cli.stack import REPO_ROOT, SERVICES, StackState, free_ports, grpc_serving
from labelstream.common.settings import SETTINGS
from labelstream.common.topics import Topics
from labelstream.common.web import HEALTH_PATH

pytestmark = pytest.mark.integration

CHART = REPO_ROOT / "helm" / "labelstream"
SCENARIO = CHART / "ci" / "minimal-values.yaml"
CREATE_TOPICS = REPO_ROOT / "deploy" / "image" / "create_topics.py"


def render_workloads() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """component -> its first container, and the Secrets' values by 'name/key'."""
    values = yaml.safe_load(SCENARIO.read_text())
    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values, name="labelstream", namespace="labeling")
    containers: dict[str, dict[str, Any]] = {}
    secrets: dict[str, str] = {}
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            if doc["kind"] in {"Deployment", "Job"}:
                labels = doc["spec"]["template"]["metadata"]["labels"]
                containers[labels["app.kubernetes.io/component"]] = doc["spec"]["template"]["spec"]["containers"][0]
            elif doc["kind"] == "Secret":
                for key, value in doc.get("data", {}).items():
                    secrets[f"{doc['metadata']['name']}/{key}"] = base64.b64decode(value).decode()
    return containers, secrets


def resolve_env(container: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    """The container's environment as the kubelet would set it (secretKeyRef read from the Secret)."""
    env = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[f"{ref['name']}/{ref['key']}"]
    return env


def rewrite(env: dict[str, str], state: StackState, prefix: str) -> dict[str, str]:
    """Addresses and ports only: the cluster's names become the local stack's, each pod's fixed ports
    become free ports here, and the topic prefix keeps this test's topics apart from the session's."""
    local = dict(env)
    local["LABELSTREAM_KAFKA_BOOTSTRAP"] = state.kafka_bootstrap
    local["LABELSTREAM_KAFKA_TOPIC_PREFIX"] = prefix
    if "LABELSTREAM_MONGODB_URI" in env:
        local["LABELSTREAM_MONGODB_URI"] = state.mongodb_uri
        local["LABELSTREAM_GRPC_BIND_HOST"] = "127.0.0.1"
        grpc_port, metrics_port, http_port = free_ports(3)
        local["LABELSTREAM_GRPC_PORT"] = str(grpc_port)
        local["LABELSTREAM_METRICS_PORT"] = str(metrics_port)
        if "LABELSTREAM_HTTP_PORT" in env:
            local["LABELSTREAM_HTTP_PORT"] = str(http_port)
    elif "LABELSTREAM_HTTP_PORT" in env:
        local["LABELSTREAM_HTTP_PORT"] = str(free_ports(1)[0])
    if "LABELSTREAM_TRITON_URL" in env:
        local["LABELSTREAM_TRITON_URL"] = f"127.0.0.1:{state.ports.triton_grpc}"
    assert set(local) == set(env)
    return local


def metrics_ok(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return response.status == 200 and b"labelstream_" in response.read()
    except OSError:
        return False


def web_health(port: str) -> int:
    """The status of GET /healthz on the web port (what the chart's readiness and liveness probes ask), 0 if none."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{HEALTH_PATH}", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def test_services_serve_with_exactly_the_environment_the_chart_renders(state: StackState, tmp_path: Path):
    containers, secrets = render_workloads()
    prefix = f"chart-{uuid.uuid4().hex[:8]}."
    setting_names = {s.env for s in SETTINGS.values()}

    # The topic Job: the image's `create-topics` command is deploy/image/create_topics.py.
    job = containers["create-topics"]
    assert job["args"][0] == "create-topics"
    job_env = rewrite(resolve_env(job, secrets), state, prefix)
    created = subprocess.run([sys.executable, str(CREATE_TOPICS), *job["args"][1:]], env=job_env,
                             capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stdout + created.stderr
    partitions = int(next(a for a in job["args"] if a.startswith("--partitions=")).split("=", 1)[1])
    admin = KafkaAdminClient(bootstrap_servers=[state.kafka_bootstrap], client_id="test-chart-env")
    try:
        described = {t.get("name", t.get("topic")): len(t["partitions"])
                     for t in admin.describe_topics([prefix + topic for topic in Topics.ALL])}
    finally:
        admin.close()
    assert described == {prefix + topic: partitions for topic in Topics.ALL}

    processes: dict[str, tuple[subprocess.Popen[bytes], dict[str, str], Path]] = {}
    try:
        for service in SERVICES:
            rendered = resolve_env(containers[service], secrets)
            assert set(rendered) <= setting_names, service
            env = rewrite(rendered, state, prefix)  # exactly this: nothing inherited from this process
            log = tmp_path / f"{service}.log"
            with log.open("wb") as out:
                process = subprocess.Popen([sys.executable, "-m", f"labelstream.{service}"], env=env, stdout=out,
                                           stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
            processes[service] = (process, env, log)

        deadline = time.monotonic() + 120
        waiting = set(SERVICES)
        while waiting and time.monotonic() < deadline:
            for service in sorted(waiting):
                process, env, log = processes[service]
                assert process.poll() is None, f"{service} exited with {process.returncode}:\n{tail(log)}"
                if grpc_serving(f"127.0.0.1:{env['LABELSTREAM_GRPC_PORT']}"):
                    waiting.discard(service)
            time.sleep(0.3)
        assert not waiting, f"not SERVING after 120 s: {sorted(waiting)}\n" + "\n".join(
            f"--- {s}\n{tail(processes[s][2])}" for s in waiting)
        for service, (_process, env, log) in processes.items():
            assert metrics_ok(env["LABELSTREAM_METRICS_PORT"]), f"{service} serves no /metrics\n{tail(log)}"
        web = {service: env["LABELSTREAM_HTTP_PORT"] for service, (_p, env, _l) in processes.items()
               if "LABELSTREAM_HTTP_PORT" in env}
        assert set(web) == {"dispatcher", "monitor"}, "the chart gives a web port to the pods with a page"
        for service, port in web.items():
            assert web_health(port) == 200, f"{service}'s web page is not healthy\n{tail(processes[service][2])}"
    finally:
        for process, _env, _log in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = {}
        for service, (process, _env, log) in processes.items():
            try:
                codes[service] = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
                codes[service] = f"still running 60 s after SIGTERM:\n{tail(log)}"
    assert codes == dict.fromkeys(SERVICES, 0), codes
