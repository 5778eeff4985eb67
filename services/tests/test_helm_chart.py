"""The Helm chart, rendered with the real Helm engine (helm-python-sdk, no helm binary) for every
helm/labelstream/ci/*-values.yaml scenario, every manifest validated against the Kubernetes 1.30
schemas (kubernetes-validate, strict: unknown fields fail), and checked for what an SRE relies on.
"""

from __future__ import annotations

import base64
import copy
import functools
import importlib
import inspect
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from labelstream.cli.stack import REPO_ROOT, SERVICES
from labelstream.common.kafka import EventProducer, Topics
from labelstream.common.settings import SETTINGS, Settings

CHART = REPO_ROOT / "helm" / "labelstream"
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))
KUBERNETES_VERSION = "1.30.0"
RELEASE, NAMESPACE = "labelstream", "labeling"
SETTING_NAMES = {s.env for s in SETTINGS.values()}
GPU = "nvidia.com/gpu"
# How every Kafka client connects (the services and the topic Job must agree on all of them).
KAFKA_CONNECTION = {SETTINGS[name].env for name in ("kafka_bootstrap", "kafka_topic_prefix", "kafka_security_protocol",
                                                   "kafka_ssl_cafile", "kafka_sasl_mechanism", "kafka_sasl_username",
                                                   "kafka_sasl_password")}
KAFKA_PASSWORD = SETTINGS["kafka_sasl_password"].env
# What a secretKeyRef stands for when a test hands a rendered environment to Settings.from_env.
SECRET_PLACEHOLDERS = {"LABELSTREAM_MONGODB_URI": "mongodb://from-the-secret:27017"}

Manifest = dict[str, Any]

# --- the custom resources kubernetes-validate has no schema for ------------------------------------
# Strict subsets of the CRDs (KEDA 2.x ScaledObject, prometheus-operator v1): a misspelt field fails.


def _strict(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties, "required": required or []}


_STR, _INT, _BOOL, _OBJ = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "object"}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {"type": "object", "required": ["name"], "properties": {"name": _STR, "labels": _STR_MAP}}


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _strict({"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": _METADATA,
                    "spec": spec}, ["apiVersion", "kind", "metadata", "spec"])


CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": _resource("keda.sh/v1alpha1", "ScaledObject", _strict({
        "scaleTargetRef": _strict({"name": _STR, "apiVersion": _STR, "kind": _STR, "envSourceContainerName": _STR},
                                  ["name"]),
        "pollingInterval": _INT, "cooldownPeriod": _INT, "initialCooldownPeriod": _INT, "idleReplicaCount": _INT,
        "minReplicaCount": _INT, "maxReplicaCount": _INT, "fallback": _OBJ,
        "advanced": _strict({"restoreToOriginalReplicaCount": _BOOL, "scalingModifiers": _OBJ,
                             "horizontalPodAutoscalerConfig": _strict({"name": _STR, "behavior": _OBJ})}),
        "triggers": {"type": "array", "minItems": 1, "items": _strict({
            "type": _STR, "name": _STR, "metadata": _STR_MAP, "authenticationRef": _OBJ, "useCachedMetrics": _BOOL,
            "metricType": {"enum": ["Utilization", "AverageValue", "Value"]}}, ["type", "metadata"])},
    }, ["scaleTargetRef", "triggers"])),
    "ServiceMonitor": _resource("monitoring.coreos.com/v1", "ServiceMonitor", _strict({
        "selector": _OBJ, "jobLabel": _STR, "targetLabels": {"type": "array"}, "podTargetLabels": {"type": "array"},
        "namespaceSelector": _strict({"any": _BOOL, "matchNames": {"type": "array", "items": _STR}}),
        "endpoints": {"type": "array", "minItems": 1, "items": _strict({
            "port": _STR, "targetPort": {}, "path": _STR, "scheme": _STR, "interval": _STR, "scrapeTimeout": _STR,
            "honorLabels": _BOOL, "honorTimestamps": _BOOL, "relabelings": {"type": "array"},
            "metricRelabelings": {"type": "array"}, "tlsConfig": _OBJ, "params": _OBJ})},
    }, ["selector", "endpoints"])),
    "PrometheusRule": _resource("monitoring.coreos.com/v1", "PrometheusRule", _strict({
        "groups": {"type": "array", "minItems": 1, "items": _strict({
            "name": _STR, "interval": _STR, "limit": _INT, "labels": _STR_MAP,
            "rules": {"type": "array", "minItems": 1, "items": _strict({
                "alert": _STR, "record": _STR, "expr": _STR, "for": _STR, "keep_firing_for": _STR,
                "labels": _STR_MAP, "annotations": _STR_MAP}, ["expr"])}}, ["name", "rules"])},
    }, ["groups"])),
}

# --- rendering -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART) as loaded:
        yield loaded


def scenario_values(scenario: str) -> dict[str, Any]:
    return yaml.safe_load((CHART / "ci" / f"{scenario}-values.yaml").read_text()) or {}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render(chart: helm_python.Chart, values: dict[str, Any]) -> list[Manifest]:
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    manifests = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                doc["metadata"]["annotations"]["test/template"] = path
                manifests.append(doc)
    return manifests


@functools.cache
def _rendered_json(scenario: str) -> str:
    with helm_python.Chart.load(CHART) as loaded:
        return json.dumps(render(loaded, scenario_values(scenario)))


def manifests_of(scenario: str) -> list[Manifest]:
    """The scenario's manifests (a fresh copy: tests may change them)."""
    return json.loads(_rendered_json(scenario))


@functools.cache
def _merged_values_json(scenario: str) -> str:
    with helm_python.Chart.load(CHART) as loaded:
        return json.dumps(loaded.merge_values(scenario_values(scenario)))


def merged_values(scenario: str) -> dict[str, Any]:
    return json.loads(_merged_values_json(scenario))


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def component(manifest: Manifest) -> str:
    return manifest["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]


def service_deployments(manifests: list[Manifest]) -> dict[str, Manifest]:
    """service name -> its Deployment."""
    found = {}
    for deployment in of_kind(manifests, "Deployment").values():
        if component(deployment) in SERVICES:
            found[component(deployment)] = deployment
    return found


def pod_specs(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    """'<Kind>/<name>' -> pod spec, for every workload."""
    return {f"{m['kind']}/{m['metadata']['name']}": m["spec"]["template"]["spec"]
            for m in manifests if m["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}}


def container(deployment: Manifest) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    return containers[0]


def plain_env(entry: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in entry.get("env", []) if "value" in e}


def secret_refs(entry: dict[str, Any]) -> dict[str, dict[str, str]]:
    """name -> its secretKeyRef, for every variable that is not a plain value (there is no other kind)."""
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in entry.get("env", []) if "value" not in e}


def env_with_placeholders(entry: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet would set it, each Secret's value replaced by a placeholder."""
    env = plain_env(entry)
    for name, ref in secret_refs(entry).items():
        env[name] = SECRET_PLACEHOLDERS.get(name, f"placeholder-of-{ref['name']}/{ref['key']}")
    return env


def kafka_clients(manifests: list[Manifest]) -> dict[str, Manifest]:
    """'<Kind>/<name>' -> every workload whose pods talk to Kafka: the service Deployments and the topic Job."""
    clients = {f"Deployment/{d['metadata']['name']}": d for d in service_deployments(manifests).values()}
    clients |= {f"Job/{name}": job for name, job in of_kind(manifests, "Job").items()}
    return clients


def walk(node: Any) -> Iterator[Any]:
    """Every dict, list and scalar of a manifest."""
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        yield from walk(child)


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def container_requests(entry: dict[str, Any], resource: str) -> bool:
    resources = entry.get("resources", {})
    return resource in resources.get("requests", {}) or resource in resources.get("limits", {})


@functools.cache
def code_subscriptions() -> dict[str, tuple[str, ...]]:
    """The topics each service's code consumes: what its main() hands to run_service."""
    found: dict[str, tuple[str, ...]] = {}
    for service in SERVICES:
        module = importlib.import_module(f"labelstream.{service}.__main__")

        def capture(name: str, topics: list[str], *_args: Any, **_kwargs: Any) -> None:
            found[name] = tuple(topics)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(module, "run_service", capture)
            module.main()
    return found


# --- rendering and validation ----------------------------------------------------------------------


def test_the_issue_scenarios_exist():
    assert {"minimal", "production-gpu", "external-tls", "keda"} <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_renders_manifests_valid_for_kubernetes_1_30(scenario: str):
    manifests = manifests_of(scenario)
    problems = []
    for manifest in manifests:
        manifest["metadata"]["annotations"].pop("test/template")
        where = f"{manifest['kind']}/{manifest['metadata'].get('name')}"
        try:
            if manifest["kind"] in CRD_SCHEMAS:
                jsonschema.validate(manifest, CRD_SCHEMAS[manifest["kind"]])
            else:
                kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except SchemaNotFoundError:
            problems.append(f"{where}: no schema for {manifest['apiVersion']} in Kubernetes {KUBERNETES_VERSION}")
        except jsonschema.ValidationError as exc:
            problems.append(f"{where}: {'.'.join(str(p) for p in exc.absolute_path)}: {exc.message}")
    assert not problems, "\n".join(problems)
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "Service", "PodDisruptionBudget", "ServiceAccount"} <= kinds
    names = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert len(names) == len(set(names)), "two objects of one kind share a name"


def test_the_validators_reject_a_broken_manifest():
    """The checks above are not vacuous: a misspelt field fails them."""
    manifests = manifests_of("keda")
    deployment = next(iter(service_deployments(manifests).values()))
    deployment["metadata"]["annotations"].pop("test/template")
    probe = container(deployment)["readinessProbe"]
    probe["grpc"]["prot"] = probe["grpc"].pop("port")
    with pytest.raises(jsonschema.ValidationError, match="prot"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    scaled = next(iter(of_kind(manifests, "ScaledObject").values()))
    scaled["spec"]["triggers"][0]["metadta"] = scaled["spec"]["triggers"][0].pop("metadata")
    with pytest.raises(jsonschema.ValidationError, match="metadta"):
        jsonschema.validate(scaled, CRD_SCHEMAS["ScaledObject"])


def test_the_six_services_come_from_one_generic_workload_template():
    deployments = service_deployments(manifests_of("minimal"))
    assert set(deployments) == set(SERVICES)
    assert {d["metadata"]["annotations"]["test/template"] for d in deployments.values()} == {
        "labelstream/templates/workloads.yaml"}
    for name, deployment in deployments.items():
        assert container(deployment)["args"] == [name]  # the command picks the service


# --- values.schema.json and render-time rules ------------------------------------------------------

BROKEN_VALUES = [
    pytest.param({"services": {"ingest": {"replica": 2}}}, ["/services/ingest", "'replica' not allowed"],
                 id="misspelt-key"),
    pytest.param({"services": {"ingest": {"replicas": "two"}}}, ["/services/ingest/replicas", "want integer"],
                 id="replicas-not-a-number"),
    pytest.param({"services": {"inference": {"resources": {"requests": {"cpu": "lots"}}}}},
                 ["/services/inference/resources/requests/cpu", "does not match pattern"], id="bad-quantity"),
    pytest.param({"services": {"router": {"resources": {"requests": {"cpu": "100m", "memory": None}}}}},
                 ["/services/router/resources/requests", "memory"], id="missing-memory-request"),
    pytest.param({"services": {"router": {"env": {"LABELSTREAM_MONGODB_URI": "mongodb://u:pw@db:27017"}}}},
                 ["LABELSTREAM_MONGODB_URI"], id="secret-as-plain-env"),
    pytest.param({"services": {"router": {"env": {"LABELSTREAM_LEASE_SECONDS": 60}}}},
                 ["/services/router/env/LABELSTREAM_LEASE_SECONDS", "want string"], id="env-value-not-a-string"),
    pytest.param({"services": {"router": {"env": {"LEASE_SECONDS": "60"}}}}, ["LEASE_SECONDS"],
                 id="env-not-a-setting"),
    pytest.param({"triton": {"instanceGroup": {"kind": "GPU"}}}, ["/triton/instanceGroup/kind", "KIND_GPU"],
                 id="triton-kind"),
    pytest.param({"kafka": {"bootstrap": "kafka"}}, ["/kafka/bootstrap", "does not match pattern"],
                 id="bootstrap-without-port"),
    pytest.param({"kafka": {"securityProtocol": "TLS"}}, ["/kafka/securityProtocol", "'SSL'", "'SASL_SSL'"],
                 id="kafka-protocol-not-a-kafka-protocol"),
    pytest.param({"kafka": {"securityProtocol": "SASL_SSL", "sasl": {"username": "labelstream"}}},
                 ["/kafka/sasl/passwordSecret", "minLength"], id="kafka-sasl-without-password-secret"),
    pytest.param({"kafka": {"securityProtocol": "SASL_PLAINTEXT", "sasl": {"passwordSecret": "kafka-credentials"}}},
                 ["/kafka/sasl/username", "minLength"], id="kafka-sasl-without-username"),
    pytest.param({"kafka": {"securityProtocol": "SASL_SSL", "sasl": {"username": "labelstream",
                                                                     "password": "Hunter2-s3cret"}}},
                 ["/kafka/sasl", "'password' not allowed"], id="kafka-password-as-a-value"),
    pytest.param({"kafka": {"sasl": {"mechanism": "SCRAM-SHA-1"}}}, ["/kafka/sasl/mechanism", "'SCRAM-SHA-512'"],
                 id="kafka-sasl-mechanism"),
    pytest.param({"services": {"router": {"env": {"LABELSTREAM_KAFKA_SASL_PASSWORD": "Hunter2-s3cret"}}}},
                 ["LABELSTREAM_KAFKA_SASL_PASSWORD"], id="kafka-password-as-plain-env"),
    pytest.param({"services": {"ingest": {"env": {"LABELSTREAM_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}}}},
                 ["LABELSTREAM_KAFKA_SECURITY_PROTOCOL"], id="kafka-security-per-service"),
    pytest.param({"topics": {"partitions": 0}}, ["/topics/partitions", "minimum"], id="zero-partitions"),
    pytest.param({"securityContext": {"runAsUser": 0}}, ["/securityContext/runAsUser", "minimum"], id="root"),
    pytest.param({"replicaCount": 3}, ["'replicaCount' not allowed"], id="unknown-top-level-key"),
]


@pytest.mark.parametrize(("override", "fragments"), BROKEN_VALUES)
def test_a_broken_value_fails_the_schema_with_a_clear_message(chart: helm_python.Chart, override: dict[str, Any],
                                                              fragments: list[str]):
    values = deep_merge(scenario_values("minimal"), override)
    with pytest.raises(helm_python.HelmValuesError) as raised:
        render(chart, values)
    message = str(raised.value)
    assert "values don't meet the specifications of the schema" in message
    for fragment in fragments:
        assert fragment in message, message


RULE_BREAKS = [
    pytest.param({"services": {"ingest": {"replicas": 4}}},
                 "services.ingest can run 4 replicas but topics.partitions is 3", id="replicas-above-partitions"),
    pytest.param({"services": {"router": {"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 5}}}},
                 "services.router can run 5 replicas but topics.partitions is 3", id="max-replicas-above-partitions"),
    pytest.param({"services": {"router": {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 2}}}},
                 "minReplicas (3) is larger than maxReplicas (2)", id="min-above-max"),
    pytest.param({"mongodb": {"uri": ""}}, "MongoDB is not configured: set mongodb.existingSecret",
                 id="no-mongodb"),
    pytest.param({"triton": {"enabled": False}}, "set triton.externalUrl", id="no-triton"),
    pytest.param({"kafka": {"tls": {"caSecret": "kafka-ca"}}},
                 "kafka.tls.caSecret is set but kafka.securityProtocol is PLAINTEXT, which does not use TLS",
                 id="kafka-ca-without-tls"),
    pytest.param({"kafka": {"securityProtocol": "SSL"}, "keda": {"enabled": True},
                  "services": {"router": {"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3}}}},
                 "keda.enabled with kafka.securityProtocol SSL is not supported", id="keda-with-kafka-tls"),
]


@pytest.mark.parametrize(("override", "message"), RULE_BREAKS)
def test_render_rules_fail_with_a_clear_message(chart: helm_python.Chart, override: dict[str, Any], message: str):
    with pytest.raises(helm_python.HelmRenderError, match=re.escape(message)):
        render(chart, deep_merge(scenario_values("minimal"), override))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict_finds_nothing_to_warn_about(scenario: str):
    report = helm_python.lint(CHART, scenario_values(scenario), strict=True, kube_version=f"v{KUBERNETES_VERSION}",
                              namespace=NAMESPACE)
    assert not report["errors"], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report  # 2 = warning, 3 = error


# --- what an SRE relies on -------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_workload_has_probes_resources_and_a_non_root_security_context(scenario: str):
    manifests = manifests_of(scenario)
    specs = pod_specs(manifests)
    assert specs
    for where, spec in specs.items():
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] > 0, where
        assert spec["automountServiceAccountToken"] is False, where
        for entry in spec["containers"]:
            requests, limits = entry["resources"]["requests"], entry["resources"]["limits"]
            assert {"cpu", "memory"} <= set(requests) and "memory" in limits, where
            security = entry["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert security.get("privileged", False) is False, where
            if where.startswith("Deployment/"):
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert probe in entry, f"{where} has no {probe}"
    for name, deployment in service_deployments(manifests).items():
        entry = container(deployment)
        grpc_port = int(plain_env(entry)["LABELSTREAM_GRPC_PORT"])
        assert {"name": "grpc", "containerPort": grpc_port, "protocol": "TCP"} in entry["ports"], name
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert entry[probe]["grpc"] == {"port": grpc_port}, f"{name} {probe} is not the gRPC health check"
    for deployment in of_kind(manifests, "Deployment").values():
        if component(deployment) == "triton":
            entry = container(deployment)
            assert "--http-port=8000" in entry["args"]
            assert {"name": "http", "containerPort": 8000, "protocol": "TCP"} in entry["ports"]
            assert entry["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
            assert entry["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_service_per_grpc_port(scenario: str):
    manifests = manifests_of(scenario)
    services = of_kind(manifests, "Service")
    for name, deployment in service_deployments(manifests).items():
        service = services[deployment["metadata"]["name"]]
        assert labels_match(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        grpc_port = int(plain_env(container(deployment))["LABELSTREAM_GRPC_PORT"])
        assert ports["grpc"]["targetPort"] == "grpc" and ports["grpc"]["port"] == grpc_port, name
        assert ports["grpc"]["appProtocol"] == "grpc"
        assert ports["metrics"]["targetPort"] == "metrics", name


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_secret_value_appears_in_any_pod_spec(chart: helm_python.Chart, scenario: str):
    values = scenario_values(scenario)
    if not values.get("mongodb", {}).get("existingSecret"):  # the chart makes the Secret: use a real password
        values = deep_merge(values, {"mongodb": {"uri": "mongodb://labeler:Hunter2-s3cret@db.internal:27017/?tls=1"}})
    manifests = render(chart, values)
    secrets = of_kind(manifests, "Secret")
    secret_values = {base64.b64decode(v).decode() for s in secrets.values() for v in s.get("data", {}).values()}
    secret_values |= {v for s in secrets.values() for v in s.get("stringData", {}).values()}
    secret_values |= {values["mongodb"]["uri"]} if values["mongodb"].get("uri") else set()
    expected_secret = values["mongodb"].get("existingSecret") or f"{RELEASE}-mongodb"
    assert values["mongodb"].get("existingSecret") or expected_secret in secrets
    for where, spec in pod_specs(manifests).items():
        text = json.dumps(spec)
        for secret in secret_values:
            assert secret not in text, f"a Secret value is in {where}"
        assert "Hunter2-s3cret" not in text
    for name, deployment in service_deployments(manifests).items():
        env = {e["name"]: e for e in container(deployment)["env"]}
        uri = env["LABELSTREAM_MONGODB_URI"]
        assert "value" not in uri, f"{name} has the MongoDB URI in plain text"
        assert uri["valueFrom"]["secretKeyRef"]["name"] == expected_secret
        assert uri["valueFrom"]["secretKeyRef"]["key"] == merged_values(scenario)["mongodb"]["existingSecretKey"]
        for entry in env.values():
            assert not re.search(r"mongodb(\+srv)?://|://[^/@\s]+:[^/@\s]+@", entry.get("value", "")), entry


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_services_get_exactly_the_settings_the_code_reads(scenario: str):
    manifests = manifests_of(scenario)
    values = merged_values(scenario)
    triton_services = of_kind(manifests, "Service")
    for name, deployment in service_deployments(manifests).items():
        entry = container(deployment)
        names = [e["name"] for e in entry["env"]]
        assert len(names) == len(set(names)), f"{name}: an env variable is set twice"
        assert set(names) <= SETTING_NAMES, f"{name}: not in the settings table: {set(names) - SETTING_NAMES}"
        env = plain_env(entry)
        assert ("LABELSTREAM_TRITON_URL" in env) == (name == "inference"), name
        # The rendered environment is one the service accepts (placeholders stand for the Secrets' values).
        settings = Settings.from_env(env_with_placeholders(entry))
        assert settings.kafka_bootstrap == values["kafka"]["bootstrap"]
        assert settings.kafka_security_protocol == values["kafka"]["securityProtocol"]
        assert settings.kafka_topic_prefix == values["kafka"]["topicPrefix"]
        assert settings.mongodb_database == values["mongodb"]["database"]
        assert settings.kafka_session_timeout_ms == values["kafka"]["consumer"]["sessionTimeoutMs"]
        assert settings.grpc_bind_host == "0.0.0.0"
        if name == "inference":
            if values["triton"]["enabled"]:
                host, port = settings.triton_url.rsplit(":", 1)
                grpc_port = {p["name"]: p["port"] for p in triton_services[host]["spec"]["ports"]}["grpc"]
                assert grpc_port == int(port), settings.triton_url
            else:
                assert settings.triton_url == values["triton"]["externalUrl"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_service_has_its_consumer_group_and_the_topics_its_code_consumes(scenario: str):
    manifests = manifests_of(scenario)
    prefix = merged_values(scenario)["kafka"]["topicPrefix"]
    code = code_subscriptions()
    assert set(code) == set(SERVICES)
    deployments = service_deployments(manifests)
    for name, deployment in deployments.items():
        annotations = deployment["metadata"]["annotations"]
        assert annotations["labelstream.io/consumer-group"] == f"labelstream-{name}"
        assert annotations["labelstream.io/topics"].split(",") == [prefix + t for t in code[name]], name
        assert set(code[name]) <= set(Topics.ALL)
    scaled = of_kind(manifests, "ScaledObject")
    for so in scaled.values():
        target = so["spec"]["scaleTargetRef"]["name"]
        name = component(deployments_by_name(manifests)[target])
        kafka = [t["metadata"] for t in so["spec"]["triggers"] if t["type"] == "kafka"]
        assert {t["consumerGroup"] for t in kafka} == {f"labelstream-{name}"}
        assert sorted(t["topic"] for t in kafka) == sorted(prefix + t for t in code[name])
        assert {t["bootstrapServers"] for t in kafka} == {merged_values(scenario)["kafka"]["bootstrap"]}
        assert all(t["allowIdleConsumers"] == "false" and t["offsetResetPolicy"] == "earliest" for t in kafka)


def deployments_by_name(manifests: list[Manifest]) -> dict[str, Manifest]:
    return of_kind(manifests, "Deployment")


def test_keda_scales_every_service_on_consumer_lag():
    manifests = manifests_of("keda")
    scaled = {so["spec"]["scaleTargetRef"]["name"]: so for so in of_kind(manifests, "ScaledObject").values()}
    assert not of_kind(manifests, "HorizontalPodAutoscaler"), "KEDA makes its own HPAs"
    for name, deployment in service_deployments(manifests).items():
        so = scaled[deployment["metadata"]["name"]]
        assert "replicas" not in deployment["spec"], f"{name}: a fixed replica count fights the autoscaler"
        lag = [t for t in so["spec"]["triggers"] if t["type"] == "kafka"]
        assert lag and all(int(t["metadata"]["lagThreshold"]) > 0 for t in lag), name


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_consumer_group_can_outgrow_its_partitions(scenario: str):
    manifests = manifests_of(scenario)
    values = merged_values(scenario)
    partitions = values["topics"]["partitions"]
    jobs = of_kind(manifests, "Job")
    if values["topics"]["create"]:
        (job,) = jobs.values()
        assert f"--partitions={partitions}" in container(job)["args"]
    else:
        assert not jobs
    autoscalers = {m["spec"]["scaleTargetRef"]["name"]: m for m in manifests
                   if m["kind"] in {"HorizontalPodAutoscaler", "ScaledObject"}}
    for name, deployment in service_deployments(manifests).items():
        autoscaler = autoscalers.get(deployment["metadata"]["name"])
        if autoscaler is None:
            most = deployment["spec"]["replicas"]
        else:
            assert "replicas" not in deployment["spec"], name
            most = autoscaler["spec"].get("maxReplicas", autoscaler["spec"].get("maxReplicaCount"))
        assert 1 <= most <= partitions, f"{name}: up to {most} replicas for {partitions} partitions"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_gpus_are_requested_by_triton_only(scenario: str):
    manifests = manifests_of(scenario)
    for where, spec in pod_specs(manifests).items():
        for entry in spec["containers"]:
            if container_requests(entry, GPU):
                assert entry["name"] == "triton", f"{where} requests a GPU"


def test_production_runs_triton_on_gpu_nodes_and_the_small_cluster_on_cpu():
    production = {component(d): d for d in of_kind(manifests_of("production-gpu"), "Deployment").values()}
    triton = production["triton"]
    entry = container(triton)
    assert entry["resources"]["limits"][GPU] >= 1
    assert plain_env(entry)["TRITON_INSTANCE_KIND"] == "KIND_GPU"
    spec = triton["spec"]["template"]["spec"]
    assert any(t.get("key") == GPU and t.get("effect") == "NoSchedule" for t in spec["tolerations"])
    assert spec["nodeSelector"]
    assert [name for name, d in production.items() if container_requests(container(d), GPU)] == ["triton"]

    minimal = {component(d): d for d in of_kind(manifests_of("minimal"), "Deployment").values()}
    assert plain_env(container(minimal["triton"]))["TRITON_INSTANCE_KIND"] == "KIND_CPU"
    assert not [name for name, d in minimal.items() if container_requests(container(d), GPU)]


def test_the_image_serves_the_model_repository_that_triton_is_told_to_rewrite():
    """The Triton Deployment runs the image's `triton` command; the image bakes deploy/triton/models in
    where that command looks, and every model config has the instance_group line it rewrites."""
    triton = of_kind(manifests_of("production-gpu"), "Deployment")[f"{RELEASE}-triton"]
    assert container(triton)["args"][0] == "triton"
    containerfile = (REPO_ROOT / "deploy" / "image" / "Containerfile").read_text()
    assert "COPY deploy/triton/models /opt/labelstream/models" in containerfile
    entrypoint = (REPO_ROOT / "deploy" / "image" / "entrypoint.sh").read_text()
    assert 'repo="${TRITON_MODEL_REPOSITORY:-$LABELSTREAM_HOME/models}"' in entrypoint
    assert "LABELSTREAM_HOME=/opt/labelstream" in containerfile
    configs = list((REPO_ROOT / "deploy" / "triton" / "models").glob("*/config.pbtxt"))
    assert configs
    for config in configs:
        assert len(re.findall(r"^instance_group ", config.read_text(), flags=re.MULTILINE)) == 1, config


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pods_get_time_to_finish_a_batch_and_commit_after_sigterm(scenario: str):
    """A batch in flight may wait for Triton (inference: LABELSTREAM_TRITON_TIMEOUT_S), then for the
    broker to acknowledge its output (EventProducer.publish's timeout) before its offsets are committed."""
    publish_timeout = inspect.signature(EventProducer.publish).parameters["timeout_s"].default
    for name, deployment in service_deployments(manifests_of(scenario)).items():
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        settings = Settings.from_env(env_with_placeholders(container(deployment)))
        needed = publish_timeout + (settings.triton_timeout_s if name == "inference" else 0)
        assert grace > needed, f"{name}: {grace}s grace for up to {needed}s of work"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_service_and_triton_have_a_disruption_budget(scenario: str):
    manifests = manifests_of(scenario)
    budgets = of_kind(manifests, "PodDisruptionBudget")
    for deployment in of_kind(manifests, "Deployment").values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets.values() if labels_match(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(matching) == 1, deployment["metadata"]["name"]
        assert matching[0]["spec"]["maxUnavailable"] >= 1  # a node drain is never blocked forever


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "minimal"])
def test_network_policies_isolate_every_pod(scenario: str):
    manifests = manifests_of(scenario)
    values = merged_values(scenario)
    policies = list(of_kind(manifests, "NetworkPolicy").values())
    assert policies
    for kind_name, deployment in [(f"{m['kind']}/{m['metadata']['name']}", m) for m in manifests
                                  if m["kind"] in {"Deployment", "Job"}]:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selecting = [p for p in policies if labels_match(p["spec"]["podSelector"]["matchLabels"], labels)]
        assert len(selecting) == 1, kind_name
        assert set(selecting[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}, kind_name
    egress = values["networkPolicy"]["egress"]
    allowed = {53, *egress["kafka"]["ports"], *egress["mongodb"]["ports"]}
    allowed |= {p["port"] for rule in egress["extra"] for p in rule.get("ports", [])}
    for name, deployment in service_deployments(manifests).items():
        policy = of_kind(manifests, "NetworkPolicy")[deployment["metadata"]["name"]]
        ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
        assert ports - allowed == ({8001} if name == "inference" else set()), name
        for dependency in ("kafka", "mongodb"):  # only to the configured peers (none configured: any)
            rule = next(r for r in policy["spec"]["egress"]
                        if {p["port"] for p in r["ports"]} == set(egress[dependency]["ports"]))
            assert rule.get("to", []) == egress[dependency]["to"], (name, dependency)
    if values["triton"]["enabled"]:
        triton = of_kind(manifests, "NetworkPolicy")[f"{RELEASE}-triton"]
        grpc_rule = next(r for r in triton["spec"]["ingress"] if r["ports"][0]["port"] == 8001)
        assert [peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in grpc_rule["from"]] == [
            "inference"]


def test_prometheus_operator_objects_scrape_everything_and_alert():
    manifests = manifests_of("production-gpu")
    (monitor,) = of_kind(manifests, "ServiceMonitor").values()
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [s for s in of_kind(manifests, "Service").values() if labels_match(selector, s["metadata"]["labels"])]
    assert {s["metadata"]["name"] for s in scraped} == {f"{RELEASE}-{c}" for c in (*SERVICES, "triton")}
    assert all(any(p["name"] == "metrics" for p in s["spec"]["ports"]) for s in scraped)
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    (rule,) = of_kind(manifests, "PrometheusRule").values()
    rules = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    down = {r["labels"]["labelstream_service"]: r["expr"] for r in rules if r["alert"] == "LabelstreamServiceDown"}
    assert set(down) == set(SERVICES)
    for name, expr in down.items():
        assert f'service="{RELEASE}-{name}"' in expr and f'namespace="{NAMESPACE}"' in expr
    (lag,) = [r for r in rules if r["alert"] == "LabelstreamConsumerLagHigh"]
    for name in SERVICES:
        assert name in lag["expr"].split("labelstream-(", 1)[1].split(")", 1)[0].split("|")
    assert not of_kind(manifests_of("minimal"), "ServiceMonitor") and not of_kind(manifests_of("minimal"),
                                                                                     "PrometheusRule")


def test_alert_rules_fire_with_promtool(tmp_path: Path):
    """promtool (Debian's prometheus package) checks the rendered rules and unit-tests two alerts."""
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is missing: scripts/install-test-tools.sh installs it (Debian's prometheus)"
    (rule,) = of_kind(manifests_of("production-gpu"), "PrometheusRule").values()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                # Every target up, except the one ingest pod, which goes down at minute 2.
                *({"series": f'up{{namespace="{NAMESPACE}", service="{RELEASE}-{name}", pod="a"}}',
                   "values": "1 1 0x10" if name == "ingest" else "1x12"} for name in (*SERVICES, "triton")),
                {"series": 'kafka_consumergroup_lag{consumergroup="labelstream-router", topic="prod.predictions"}',
                 "values": "5000x20"},
                {"series": 'kafka_consumergroup_lag{consumergroup="labelstream-router", topic="other.predictions"}',
                 "values": "5000x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "6m", "alertname": "LabelstreamServiceDown", "exp_alerts": []},  # for: 5m
                {"eval_time": "9m", "alertname": "LabelstreamServiceDown", "exp_alerts": [{
                    "exp_labels": {"severity": "critical", "labelstream_service": "ingest"},
                    "exp_annotations": next(r["annotations"] for g in rule["spec"]["groups"] for r in g["rules"]
                                            if r.get("labels", {}).get("labelstream_service") == "ingest")}]},
                {"eval_time": "15m", "alertname": "LabelstreamConsumerLagHigh", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "consumergroup": "labelstream-router",
                                   "topic": "prod.predictions"},
                    "exp_annotations": {
                        "summary": "Consumer lag of labelstream-router on prod.predictions is high",
                        "description": "5000 messages behind for 10 minutes (threshold 1000). Scale the service "
                                       "(replicas up to the topic's partitions) or look for a failing batch in its "
                                       "logs."}}]},
            ],
        }],
    }))
    check = subprocess.run([promtool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_topic_job_runs_before_the_services_with_their_kafka_settings(scenario: str):
    manifests = manifests_of(scenario)
    if not merged_values(scenario)["topics"]["create"]:
        assert not of_kind(manifests, "Job")
        return
    (job,) = of_kind(manifests, "Job").values()
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    entry = container(job)
    assert entry["args"][:1] == ["create-topics"]
    values = merged_values(scenario)
    assert f"--replication-factor={values['topics']['replicationFactor']}" in entry["args"]
    job_env = plain_env(entry)
    assert set(job_env) | set(secret_refs(entry)) <= KAFKA_CONNECTION | {"LABELSTREAM_LOG_LEVEL"}
    Settings.from_env(env_with_placeholders(entry))  # create_topics.py reads it with Settings.from_env
    for name, deployment in service_deployments(manifests).items():
        service = container(deployment)
        # Every Kafka connection setting (security protocol, CA, SASL user and password Secret) is the services'.
        assert {k: v for k, v in plain_env(service).items() if k in KAFKA_CONNECTION} == {
            k: v for k, v in job_env.items() if k in KAFKA_CONNECTION}, name
        assert {k: v for k, v in secret_refs(service).items() if k in KAFKA_CONNECTION} == secret_refs(entry), name
        assert service["image"] == entry["image"]


# --- Kafka TLS and SASL ----------------------------------------------------------------------------


def test_every_kafka_client_uses_sasl_ssl_with_the_mounted_ca_and_the_password_secret():
    """external-tls: the six services and the topic Job connect with SASL_SSL, trust the CA of the named Secret
    (mounted as a file) and read the SASL password only through a secretKeyRef; the services accept that env."""
    manifests = manifests_of("external-tls")
    kafka = merged_values("external-tls")["kafka"]
    assert kafka["securityProtocol"] == "SASL_SSL" and kafka["tls"]["caSecret"] and kafka["sasl"]["passwordSecret"]
    clients = kafka_clients(manifests)
    assert sorted(component(w) for w in clients.values()) == sorted([*SERVICES, "create-topics"])
    for where, workload in clients.items():
        entry = container(workload)
        pod = workload["spec"]["template"]["spec"]
        env = plain_env(entry)
        assert env["LABELSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", where
        assert env["LABELSTREAM_KAFKA_SASL_MECHANISM"] == kafka["sasl"]["mechanism"], where
        assert env["LABELSTREAM_KAFKA_SASL_USERNAME"] == kafka["sasl"]["username"], where
        # The CA file lies in a read-only volume that projects the CA key of the named Secret to that file.
        cafile = PurePosixPath(env["LABELSTREAM_KAFKA_SSL_CAFILE"])
        mounts = [m for m in entry["volumeMounts"] if cafile.is_relative_to(m["mountPath"])]
        assert len(mounts) == 1, f"{where}: {cafile} is not in exactly one mounted volume"
        (mount,) = mounts
        assert mount.get("readOnly") is True and "subPath" not in mount, where
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert volume["secret"]["secretName"] == kafka["tls"]["caSecret"], where
        assert {"key": kafka["tls"]["caKey"], "path": str(cafile.relative_to(mount["mountPath"]))} in volume[
            "secret"]["items"], where
        # The password: a secretKeyRef to the named Secret, never a value.
        password = next(e for e in entry["env"] if e["name"] == KAFKA_PASSWORD)
        assert "value" not in password, f"{where} has the SASL password in plain text"
        assert password["valueFrom"] == {"secretKeyRef": {"name": kafka["sasl"]["passwordSecret"],
                                                          "key": kafka["sasl"]["passwordKey"]}}, where
        # What the code makes of it: Settings.from_env accepts it and the Kafka clients get TLS and SASL.
        resolved = env_with_placeholders(entry)
        options = Settings.from_env(resolved).kafka_client_options()
        assert options["security_protocol"] == "SASL_SSL", where
        assert options["ssl_cafile"] == str(cafile), where
        assert options["sasl_mechanism"] == kafka["sasl"]["mechanism"], where
        assert options["sasl_plain_username"] == kafka["sasl"]["username"], where
        assert options["sasl_plain_password"] == resolved[KAFKA_PASSWORD], where


def test_the_kafka_password_is_never_a_value_in_any_manifest(chart: helm_python.Chart):
    """Whatever renders (Triton included), the SASL password is only ever a secretKeyRef and the chart makes no
    Secret for it; Triton, which does not talk to Kafka, gets none of the Kafka settings or the CA."""
    values = deep_merge(scenario_values("external-tls"), {"triton": {"enabled": True}})
    manifests = render(chart, values)
    kafka = values["kafka"]
    refs = 0
    for manifest in manifests:
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        for node in walk(manifest):
            if isinstance(node, dict) and node.get("name") == KAFKA_PASSWORD:
                assert set(node) == {"name", "valueFrom"}, f"{where}: {node}"
                refs += 1
            if isinstance(node, str):
                assert not re.search(r"sasl\.jaas|password=", node, flags=re.IGNORECASE), f"{where}: {node}"
    assert refs == len(SERVICES) + 1
    assert set(of_kind(manifests, "Secret")) <= {f"{RELEASE}-mongodb"}, "the chart made a Secret for Kafka"
    (triton,) = [d for d in of_kind(manifests, "Deployment").values() if component(d) == "triton"]
    text = json.dumps(triton["spec"]["template"]["spec"])
    assert "LABELSTREAM_KAFKA" not in text
    assert kafka["tls"]["caSecret"] not in text and kafka["sasl"]["passwordSecret"] not in text


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_kafka_client_has_the_security_settings_of_its_values(scenario: str):
    """PLAINTEXT scenarios get no CA, no SASL variable and no Kafka CA volume; the others exactly what they ask for."""
    manifests = manifests_of(scenario)
    kafka = merged_values(scenario)["kafka"]
    protocol = kafka["securityProtocol"]
    expected = {"LABELSTREAM_KAFKA_SECURITY_PROTOCOL"}
    if protocol in {"SSL", "SASL_SSL"} and kafka["tls"]["caSecret"]:
        expected.add("LABELSTREAM_KAFKA_SSL_CAFILE")
    if protocol.startswith("SASL_"):
        expected |= {"LABELSTREAM_KAFKA_SASL_MECHANISM", "LABELSTREAM_KAFKA_SASL_USERNAME", KAFKA_PASSWORD}
    for where, workload in kafka_clients(manifests).items():
        entry = container(workload)
        names = {e["name"] for e in entry["env"]}
        security = names & (KAFKA_CONNECTION - {"LABELSTREAM_KAFKA_BOOTSTRAP", "LABELSTREAM_KAFKA_TOPIC_PREFIX"})
        assert security == expected, where
        assert plain_env(entry)["LABELSTREAM_KAFKA_SECURITY_PROTOCOL"] == protocol, where
        volumes = workload["spec"]["template"]["spec"]["volumes"]
        ca_volumes = [v for v in volumes if v.get("secret", {}).get("secretName") == kafka["tls"]["caSecret"]]
        assert len(ca_volumes) == ("LABELSTREAM_KAFKA_SSL_CAFILE" in expected), where


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_network_policies_let_the_pods_reach_the_kafka_bootstrap_ports(scenario: str):
    values = merged_values(scenario)
    if not values["networkPolicy"]["enabled"]:
        return
    ports = {int(server.rsplit(":", 1)[1]) for server in values["kafka"]["bootstrap"].split(",")}
    assert ports <= set(values["networkPolicy"]["egress"]["kafka"]["ports"]), values["kafka"]["bootstrap"]
