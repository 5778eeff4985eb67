"""The Helm chart, rendered with the real Helm engine (helm-python-sdk, no helm binary) for every
helm/labelstream/ci/*-values.yaml scenario, every manifest validated against the Kubernetes 1.30
schemas (kubernetes-validate, strict: unknown fields fail), and checked for what an SRE relies on.
"""

from __future__ import annotations

import base64
import copy
import functools
import importlib
import importlib.util
import inspect
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import numpy as np
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError
from opentelemetry.sdk import environment_variables as otel_environment

from labelstream.cli.stack import REPO_ROOT, SERVICES
from labelstream.common.producer import EventProducer
from labelstream.common.settings import SETTINGS, Settings
from labelstream.common.topics import Topics, consumer_group
from labelstream.common.web import HEALTH_PATH

CHART = REPO_ROOT / "helm" / "labelstream"
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))
KUBERNETES_VERSION = "1.30.0"
RELEASE, NAMESPACE = "labelstream", "labeling"
SETTING_NAMES = {s.env for s in SETTINGS.values()}
# The standard variables the OpenTelemetry SDK and its OTLP exporter read (the chart's `telemetry`).
OTEL_VARIABLES = {value for name, value in vars(otel_environment).items() if name.startswith("OTEL_")}
GPU = "nvidia.com/gpu"
# How every Kafka client connects (the services and the topic Job must agree on all of them).
KAFKA_CONNECTION = {SETTINGS[name].env for name in ("kafka_bootstrap", "kafka_topic_prefix", "kafka_security_protocol",
                                                   "kafka_ssl_cafile", "kafka_sasl_mechanism", "kafka_sasl_username",
                                                   "kafka_sasl_password")}
KAFKA_PASSWORD = SETTINGS["kafka_sasl_password"].env
# The web page each service serves (dispatcher/web.py, monitor/dashboard_web.py), by values `web` key.
WEB_PAGES = {"dispatcher": "annotator", "monitor": "dashboard"}
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
    """The workload's main container: its only one, or the one named after its component (Triton's pod
    also runs the model-reloader sidecar when refits are enabled)."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    if len(containers) == 1:
        return containers[0]
    named = [c for c in containers if c["name"] == component(deployment)]
    assert len(named) == 1, deployment["metadata"]["name"]
    return named[0]


def init_containers(deployment: Manifest) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"].get("initContainers", [])}


def sidecars(deployment: Manifest) -> dict[str, dict[str, Any]]:
    main = container(deployment)
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"] if c is not main}


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


def serving_web_pages(scenario: str) -> dict[str, str]:
    """service -> the web page it serves in the scenario (enabled in values `web`)."""
    values = merged_values(scenario)
    return {service: page for service, page in WEB_PAGES.items()
            if values["services"][service]["enabled"] and values["web"][page]["enabled"]}


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
    assert {"minimal", "production-gpu", "external-tls", "keda", "web-ingress"} <= set(SCENARIOS)


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
    pytest.param({"triton": {"models": {"encoder_fewshot": {"maxQueueDelayMicroseconds": -1}}}},
                 ["/triton/models/encoder_fewshot/maxQueueDelayMicroseconds", "minimum: got -1, want 0"],
                 id="negative-queue-delay"),
    pytest.param({"triton": {"models": {"encoder_fewshot": {"maxBatchSize": 32}}}},
                 ["/triton/models/encoder_fewshot/maxBatchSize", "minimum: got 32, want 64"],
                 id="batch-smaller-than-inference-requests"),
    pytest.param({"triton": {"models": {"encoder_fewshot": {"instanceGroup": {"kind": "KIND_TPU", "count": 1}}}}},
                 ["/triton/models/encoder_fewshot/instanceGroup/kind", "'KIND_MODEL'"], id="model-instance-kind"),
    pytest.param({"triton": {"models": {"encoder_fewshot": {"maxBatchSise": 128}}}},
                 ["/triton/models/encoder_fewshot", "'maxBatchSise' not allowed"], id="misspelt-model-setting"),
    pytest.param({"triton": {"models": {"encoder-fewshot": {"maxBatchSize": 128}}}},
                 ["'encoder-fewshot' does not match pattern"], id="model-name-not-a-variable-name"),
    pytest.param({"refits": {"enabled": True, "persistence": {"accessMode": "ReadOnlyMany"}}},
                 ["/refits/persistence/accessMode", "'ReadWriteMany'"], id="refits-read-only-volume"),
    pytest.param({"refits": {"persistence": {"size": "lots"}}}, ["/refits/persistence/size", "does not match pattern"],
                 id="refits-volume-size"),
    pytest.param({"refits": {"persistence": {"subPath": "/abs"}}}, ["/refits/persistence/subPath"],
                 id="refits-absolute-sub-path"),
    pytest.param({"services": {"inference": {"env": {"LABELSTREAM_TRITON_MODEL_REPOSITORY": "/models"}}}},
                 ["LABELSTREAM_TRITON_MODEL_REPOSITORY"], id="model-repository-as-plain-env"),
    pytest.param({"triton": {"instructModel": {"tensorParallelSize": 0}}},
                 ["/triton/instructModel/tensorParallelSize", "minimum"], id="instruct-model-no-gpu"),
    pytest.param({"triton": {"instructModel": {"modelId": "Qwen/Qwen\"bad"}}}, ["/triton/instructModel/modelId"],
                 id="instruct-model-id"),
    pytest.param({"securityContext": {"runAsUser": 0}}, ["/securityContext/runAsUser", "minimum"], id="root"),
    pytest.param({"replicaCount": 3}, ["'replicaCount' not allowed"], id="unknown-top-level-key"),
    pytest.param({"ingress": {"annotator": {"host": "https://annotate.example.com/"}}},
                 ["/ingress/annotator/host", "does not match pattern"], id="ingress-host-is-a-url"),
    pytest.param({"ingress": {"hosts": ["annotate.example.com"]}}, ["/ingress", "'hosts' not allowed"],
                 id="ingress-misspelt-key"),
    pytest.param({"ingress": {"tls": {"secretName": "Web TLS"}}}, ["/ingress/tls/secretName", "does not match pattern"],
                 id="ingress-tls-secret-name"),
    pytest.param({"ingress": {"dashboard": {"annotations": {"nginx.ingress.kubernetes.io/auth-tls-verify-depth": 1}}}},
                 ["/ingress/dashboard/annotations/nginx.ingress.kubernetes.io~1auth-tls-verify-depth", "want string"],
                 id="ingress-annotation-not-a-string"),
    pytest.param({"web": {"annotator": {"enabled": "yes"}}}, ["/web/annotator/enabled", "want boolean"],
                 id="web-page-enabled-not-a-boolean"),
    pytest.param({"ports": {"http": 70000}}, ["/ports/http", "maximum"], id="web-port-out-of-range"),
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
    pytest.param({"refits": {"enabled": True, "persistence": {"accessMode": "ReadWriteOnce"}},
                  "services": {"inference": {"replicas": 2}}},
                 "refits.persistence.accessMode is ReadWriteOnce: the model repository volume can be mounted on one "
                 "node only, but services.inference can run 2 replicas and triton.replicas is 1",
                 id="refits-read-write-once-with-two-inference-replicas"),
    pytest.param({"refits": {"enabled": True, "persistence": {"accessMode": "ReadWriteOnce"}},
                  "triton": {"replicas": 2}},
                 "services.inference can run 1 replicas and triton.replicas is 2",
                 id="refits-read-write-once-two-tritons"),
    pytest.param({"refits": {"enabled": True}, "triton": {"enabled": False, "externalUrl": "triton.ml:8001"}},
                 "refits.enabled needs the chart's Triton (triton.enabled)", id="refits-with-an-external-triton"),
    pytest.param({"refits": {"enabled": True}, "triton": {"modelRepository": {"existingClaim": "models"}}},
                 "refits.enabled and triton.modelRepository.existingClaim (models) are both set",
                 id="refits-and-ro-claim"),
    pytest.param({"triton": {"instructModel": {"enabled": True, "tensorParallelSize": 2},
                             "resources": {"limits": {"cpu": "2", "memory": "2Gi", GPU: 1}}}},
                 "shards Qwen/Qwen2.5-7B-Instruct over tensorParallelSize 2 GPUs, but triton.resources.limits "
                 "gives the Triton pod 1 nvidia.com/gpu", id="instruct-model-with-too-few-gpus"),
    pytest.param({"triton": {"instructModel": {"enabled": True}, "resources": {"limits": {GPU: 1}},
                             "models": {"instruct_lm": {"instanceGroup": {"kind": "KIND_GPU", "count": 2}}}}},
                 "the instruction model runs as one KIND_MODEL instance", id="instruct-model-instances"),
    pytest.param({"kafka": {"securityProtocol": "SSL"}, "keda": {"enabled": True},
                  "services": {"router": {"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3}}}},
                 "keda.enabled with kafka.securityProtocol SSL is not supported", id="keda-with-kafka-tls"),
    pytest.param({"ingress": {"enabled": True}},
                 "ingress.enabled is true but neither ingress.annotator.host nor ingress.dashboard.host is set",
                 id="ingress-without-hosts"),
    pytest.param({"ingress": {"enabled": True, "dashboard": {"host": "dashboard.example.com"}},
                  "web": {"dashboard": {"enabled": False}}},
                 "ingress.dashboard.host is dashboard.example.com but the dashboard page is not served: set "
                 "web.dashboard.enabled to true", id="ingress-for-a-page-not-served"),
    pytest.param({"ingress": {"enabled": True, "annotator": {"host": "annotate.example.com"}},
                  "services": {"dispatcher": {"enabled": False}}},
                 "ingress.annotator.host is annotate.example.com but services.dispatcher.enabled is false",
                 id="ingress-for-a-service-not-deployed"),
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
        for entry in spec.get("initContainers", []) + spec["containers"]:
            requests, limits = entry["resources"]["requests"], entry["resources"]["limits"]
            assert {"cpu", "memory"} <= set(requests) and "memory" in limits, where
            security = entry["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert security.get("privileged", False) is False, where
            if where.startswith("Deployment/") and entry in spec["containers"]:
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert probe in entry, f"{where} has no {probe}"
    pages = serving_web_pages(scenario)
    for name, deployment in service_deployments(manifests).items():
        entry = container(deployment)
        grpc_port = int(plain_env(entry)["LABELSTREAM_GRPC_PORT"])
        assert {"name": "grpc", "containerPort": grpc_port, "protocol": "TCP"} in entry["ports"], name
        # with TLS on the gRPC port, the probes (which speak no TLS) ask the plaintext health-only port
        probe_port = int(plain_env(entry).get("LABELSTREAM_GRPC_HEALTH_PORT") or grpc_port)
        if probe_port != grpc_port:
            assert {"name": "grpc-health", "containerPort": probe_port, "protocol": "TCP"} in entry["ports"], name
        assert entry["startupProbe"]["grpc"] == {"port": probe_port}, f"{name} startupProbe is no gRPC health check"
        for probe in ("readinessProbe", "livenessProbe"):
            if name in pages:  # the web page's health path, which answers what the gRPC health service says
                http_port = int(plain_env(entry)["LABELSTREAM_HTTP_PORT"])
                assert {"name": "http", "containerPort": http_port, "protocol": "TCP"} in entry["ports"], name
                assert entry[probe] == {"httpGet": {"path": HEALTH_PATH, "port": "http"},
                                        **merged_values(scenario)["probes"][probe.removesuffix("Probe")]}, name
            else:
                assert entry[probe]["grpc"] == {"port": probe_port}, f"{name} {probe} is not the gRPC health check"
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
        if name in serving_web_pages(scenario):
            http_port = int(plain_env(container(deployment))["LABELSTREAM_HTTP_PORT"])
            assert ports["http"] == {"name": "http", "port": http_port, "targetPort": "http", "protocol": "TCP",
                                     "appProtocol": "http"}, name
        else:
            assert "http" not in ports, name


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
        unknown = set(names) - SETTING_NAMES - OTEL_VARIABLES
        assert not unknown, f"{name}: neither in the settings table nor an OpenTelemetry variable: {unknown}"
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
        # a web page only where the chart serves one (0: none), on the port its Service and probes use
        web_port = values["ports"]["http"] if name in serving_web_pages(scenario) else 0
        assert settings.http_port == web_port, name
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
    settings = Settings.from_env({"LABELSTREAM_KAFKA_TOPIC_PREFIX": prefix})
    code = code_subscriptions()
    assert set(code) == set(SERVICES)
    deployments = service_deployments(manifests)
    for name, deployment in deployments.items():
        annotations = deployment["metadata"]["annotations"]
        assert annotations["labelstream.io/consumer-group"] == consumer_group(settings, name)
        assert annotations["labelstream.io/topics"].split(",") == [prefix + t for t in code[name]], name
        assert set(code[name]) <= set(Topics.ALL)
    scaled = of_kind(manifests, "ScaledObject")
    for so in scaled.values():
        target = so["spec"]["scaleTargetRef"]["name"]
        name = component(deployments_by_name(manifests)[target])
        kafka = [t["metadata"] for t in so["spec"]["triggers"] if t["type"] == "kafka"]
        assert {t["consumerGroup"] for t in kafka} == {consumer_group(settings, name)}
        assert sorted(t["topic"] for t in kafka) == sorted(prefix + t for t in code[name])
        assert {t["bootstrapServers"] for t in kafka} == {merged_values(scenario)["kafka"]["bootstrap"]}
        assert all(t["allowIdleConsumers"] == "false" and t["offsetResetPolicy"] == "earliest" for t in kafka)


def deployments_by_name(manifests: list[Manifest]) -> dict[str, Manifest]:
    return of_kind(manifests, "Deployment")


# --- the web pages -------------------------------------------------------------------------------


def test_the_web_pages_are_routed_by_host_to_the_web_port_of_their_services_pods():
    manifests = manifests_of("web-ingress")
    values = merged_values("web-ingress")["ingress"]
    services = of_kind(manifests, "Service")
    deployments = service_deployments(manifests)
    ingresses = of_kind(manifests, "Ingress")
    assert set(ingresses) == {f"{RELEASE}-{page}" for page in WEB_PAGES.values()}
    for name, page in WEB_PAGES.items():
        ingress = ingresses[f"{RELEASE}-{page}"]
        annotations = ingress["metadata"]["annotations"]
        annotations.pop("test/template")
        assert annotations == {**values["annotations"], **values[page]["annotations"]}, page  # the page's own win
        spec = ingress["spec"]
        host = values[page]["host"]
        assert spec["ingressClassName"] == values["className"]
        assert spec["tls"] == [{"hosts": [host], "secretName": values["tls"]["secretName"]}]
        (rule,) = spec["rules"]
        assert rule["host"] == host
        (path,) = rule["http"]["paths"]
        assert (path["path"], path["pathType"]) == ("/", "Prefix"), "the page and its /api/ calls"
        backend = path["backend"]["service"]
        deployment = deployments[name]
        assert backend["name"] == deployment["metadata"]["name"]
        service = services[backend["name"]]
        assert labels_match(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
        (port,) = [p for p in service["spec"]["ports"] if p["name"] == backend["port"]["name"]]
        entry = container(deployment)
        (target,) = [p for p in entry["ports"] if p["name"] == port["targetPort"]]
        assert target["containerPort"] == int(plain_env(entry)["LABELSTREAM_HTTP_PORT"]), page


def test_no_ingress_unless_asked_and_a_page_can_be_left_out(chart: helm_python.Chart):
    assert not of_kind(manifests_of("minimal"), "Ingress")
    values = deep_merge(scenario_values("minimal"), {
        "web": {"dashboard": {"enabled": False}},
        "ingress": {"enabled": True, "annotator": {"host": "annotate.example.com"}}})
    manifests = render(chart, values)
    assert set(of_kind(manifests, "Ingress")) == {f"{RELEASE}-annotator"}
    (ingress,) = of_kind(manifests, "Ingress").values()
    assert "tls" not in ingress["spec"] and "ingressClassName" not in ingress["spec"]
    deployments = service_deployments(manifests)
    monitor = container(deployments["monitor"])
    assert "LABELSTREAM_HTTP_PORT" not in plain_env(monitor)
    assert [p["name"] for p in monitor["ports"]] == ["grpc", "metrics"]
    assert "grpc" in monitor["readinessProbe"] and "grpc" in monitor["livenessProbe"]
    assert {p["name"] for p in of_kind(manifests, "Service")[f"{RELEASE}-monitor"]["spec"]["ports"]} == {
        "grpc", "metrics"}
    assert container(deployments["dispatcher"])["readinessProbe"]["httpGet"]["path"] == HEALTH_PATH


def test_the_autoscalers_scale_the_pods_that_serve_the_web_pages():
    manifests = manifests_of("web-ingress")
    autoscalers = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(manifests, "HorizontalPodAutoscaler").values()}
    deployments = service_deployments(manifests)
    for name in WEB_PAGES:
        deployment = deployments[name]
        assert deployment["metadata"]["name"] in autoscalers, f"{name} serves a page and does not autoscale"
        assert "replicas" not in deployment["spec"], f"{name}: a fixed replica count fights the autoscaler"


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "minimal"])
def test_only_the_pods_with_a_web_page_take_web_traffic_and_only_from_web_from(scenario: str):
    manifests = manifests_of(scenario)
    values = merged_values(scenario)
    web_rule = {"ports": [{"port": values["ports"]["http"], "protocol": "TCP"}]}
    if values["networkPolicy"]["webFrom"]:
        web_rule["from"] = values["networkPolicy"]["webFrom"]
    pages = serving_web_pages(scenario)
    for name, deployment in service_deployments(manifests).items():
        rules = of_kind(manifests, "NetworkPolicy")[deployment["metadata"]["name"]]["spec"]["ingress"]
        web = [r for r in rules if {p["port"] for p in r["ports"]} == {values["ports"]["http"]}]
        assert web == ([web_rule] if name in pages else []), name


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


def test_the_image_exposes_every_port_the_chart_serves_on():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    containerfile = (REPO_ROOT / "deploy" / "image" / "Containerfile").read_text()
    exposed = {int(port) for line in containerfile.splitlines() if line.startswith("EXPOSE ")
               for port in line.split()[1:]}
    ports = values["ports"]
    assert {ports["grpc"], ports["metrics"], ports["http"], values["grpcTls"]["healthPort"]} <= exposed


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
    (rule,) = [r for name, r in of_kind(manifests, "PrometheusRule").items() if not name.endswith("-quality")]
    quality_rule = of_kind(manifests, "PrometheusRule")[f"{RELEASE}-quality"]
    assert {r["alert"] for g in quality_rule["spec"]["groups"] for r in g["rules"]} >= {
        "LabelstreamLowAgreement", "LabelstreamLowWorkerAccuracy"}
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
    (rule,) = [r for name, r in of_kind(manifests_of("production-gpu"), "PrometheusRule").items()
               if not name.endswith("-quality")]
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
                {"series": 'kafka_consumergroup_lag{consumergroup="prod.labelstream-router", topic="prod.predictions"}',
                 "values": "5000x20"},
                {"series": 'kafka_consumergroup_lag{consumergroup="other.labelstream-router", '
                           'topic="other.predictions"}',
                 "values": "5000x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "6m", "alertname": "LabelstreamServiceDown", "exp_alerts": []},  # for: 5m
                {"eval_time": "9m", "alertname": "LabelstreamServiceDown", "exp_alerts": [{
                    "exp_labels": {"severity": "critical", "labelstream_service": "ingest"},
                    "exp_annotations": next(r["annotations"] for g in rule["spec"]["groups"] for r in g["rules"]
                                            if r.get("labels", {}).get("labelstream_service") == "ingest")}]},
                {"eval_time": "15m", "alertname": "LabelstreamConsumerLagHigh", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "consumergroup": "prod.labelstream-router",
                                   "topic": "prod.predictions"},
                    "exp_annotations": {
                        "summary": "Consumer lag of prod.labelstream-router on prod.predictions is high",
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


# --- head refits: the model repository on a shared read-write volume -----------------------------

REFIT_SCENARIOS = [s for s in SCENARIOS if merged_values(s)["refits"]["enabled"]]
MODEL_REPOSITORY = SETTINGS["triton_model_repository"].env
ENTRYPOINT = REPO_ROOT / "deploy" / "image" / "entrypoint.sh"
MODELS = REPO_ROOT / "deploy" / "triton" / "models"
INSTRUCT_MODEL = CHART / "files" / "instruct_lm" / "model.py"


def triton_deployment(manifests: list[Manifest]) -> Manifest:
    (triton,) = [d for d in of_kind(manifests, "Deployment").values() if component(d) == "triton"]
    return triton


def claim_mount(pod: dict[str, Any], entry: dict[str, Any], path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (volumeMount, volume) of `entry` that holds `path`, a PersistentVolumeClaim."""
    mounts = [m for m in entry.get("volumeMounts", []) if PurePosixPath(path).is_relative_to(m["mountPath"])]
    assert len(mounts) == 1, f"{entry['name']}: {path} is not in exactly one mounted volume"
    (volume,) = [v for v in pod["volumes"] if v["name"] == mounts[0]["name"]]
    assert "persistentVolumeClaim" in volume, f"{entry['name']}: {path} is not on a PersistentVolumeClaim"
    return mounts[0], volume


def test_the_refit_scenarios_exist():
    assert {"production-gpu", "refits"} <= set(REFIT_SCENARIOS)
    assert {"minimal", "external-tls", "keda"}.isdisjoint(REFIT_SCENARIOS)


@pytest.mark.parametrize("scenario", REFIT_SCENARIOS)
def test_refits_put_the_model_repository_on_one_claim_triton_and_inference_write(scenario: str):
    """Triton (init container, server, reloader) and the inference pods mount the same claim at the same
    path; the repository inference writes refit versions to (its LABELSTREAM_TRITON_MODEL_REPOSITORY, the
    only workload that gets it) is the one Triton serves with explicit model control and the seed fills."""
    manifests = manifests_of(scenario)
    values = merged_values(scenario)
    persistence = values["refits"]["persistence"]
    inference = service_deployments(manifests)["inference"]
    entry = container(inference)
    repository = plain_env(entry)[MODEL_REPOSITORY]
    assert Settings.from_env(env_with_placeholders(entry)).triton_model_repository == repository
    mount, volume = claim_mount(inference["spec"]["template"]["spec"], entry, repository)
    assert not mount.get("readOnly") and not volume["persistentVolumeClaim"].get("readOnly")
    claim = volume["persistentVolumeClaim"]["claimName"]
    assert mount.get("subPath", "") == persistence["subPath"]

    triton = triton_deployment(manifests)
    pod = triton["spec"]["template"]["spec"]
    server = container(triton)
    env = plain_env(server)
    assert env["TRITON_MODEL_REPOSITORY"] == repository and env["TRITON_MODEL_REPOSITORY_IN_PLACE"] == "true"
    assert server["args"][0] == "triton"
    assert {"--model-control-mode=explicit", "--load-model=*"} <= set(server["args"])
    (seed,) = init_containers(triton).values()
    (reloader,) = sidecars(triton).values()
    assert seed["args"] == ["seed-models", repository]
    assert seed["image"] == server["image"] == reloader["image"]
    # The seed renders the configs exactly as the server would: the same model settings.
    model_env = {k: v for k, v in env.items() if k.startswith(("TRITON_INSTANCE_", "TRITON_MODEL_"))
                 and k not in {"TRITON_MODEL_REPOSITORY", "TRITON_MODEL_REPOSITORY_IN_PLACE"}}
    assert model_env and plain_env(seed) == model_env
    assert reloader["args"] == ["model-reloader"] and plain_env(reloader)["TRITON_MODEL_REPOSITORY"] == repository
    for what, user, read_only in (("seed", seed, False), ("server", server, False), ("reloader", reloader, True)):
        their_mount, their_volume = claim_mount(pod, user, repository)
        assert their_mount["mountPath"] == mount["mountPath"], what
        assert their_mount.get("subPath", "") == mount.get("subPath", ""), what
        assert their_volume["persistentVolumeClaim"]["claimName"] == claim, what
        assert bool(their_mount.get("readOnly")) is read_only, what
    # Non-root, and the volume's files belong to the pods' group.
    for spec in (pod, inference["spec"]["template"]["spec"]):
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True and security["fsGroup"] == values["securityContext"]["runAsGroup"]
        assert security["fsGroupChangePolicy"] == "OnRootMismatch"

    # The claim: the chart's, ReadWriteMany and kept on uninstall, unless an existing one is named.
    claims = of_kind(manifests, "PersistentVolumeClaim")
    if persistence["existingClaim"]:
        assert claim == persistence["existingClaim"] and not claims
    else:
        pvc = claims[claim]
        assert pvc["spec"]["accessModes"] == [persistence["accessMode"]] == ["ReadWriteMany"]
        assert pvc["spec"]["resources"]["requests"]["storage"] == persistence["size"]
        assert pvc["spec"].get("storageClassName") == (persistence["storageClass"] or None)
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    # Only inference learns where the repository is; no other container mounts the claim.
    for where, spec in pod_specs(manifests).items():
        for other in spec.get("initContainers", []) + spec["containers"]:
            if other is not entry:
                assert MODEL_REPOSITORY not in {e["name"] for e in other.get("env", [])}, f"{where}/{other['name']}"
        claims_used = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
        if claim in claims_used:
            assert where in {f"Deployment/{inference['metadata']['name']}", f"Deployment/{triton['metadata']['name']}"}


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s not in REFIT_SCENARIOS])
def test_without_refits_triton_serves_the_image_repository_as_before(scenario: str):
    manifests = manifests_of(scenario)
    assert not of_kind(manifests, "PersistentVolumeClaim")
    for where, spec in pod_specs(manifests).items():
        text = json.dumps(spec)
        assert MODEL_REPOSITORY not in text and "TRITON_MODEL_REPOSITORY" not in text, where
        assert "persistentVolumeClaim" not in text and "initContainers" not in spec, where
        assert "fsGroupChangePolicy" not in spec["securityContext"], where
    if merged_values(scenario)["triton"]["enabled"]:
        triton = triton_deployment(manifests)
        assert [c["name"] for c in triton["spec"]["template"]["spec"]["containers"]] == ["triton"]
        assert not [a for a in container(triton)["args"] if a.startswith(("--model-control-mode", "--load-model"))]


def test_a_read_only_model_repository_claim_stays_read_only(chart: helm_python.Chart):
    """triton.modelRepository.existingClaim (a repository managed elsewhere) is unchanged by refits being off."""
    manifests = render(chart, deep_merge(scenario_values("minimal"),
                                         {"triton": {"modelRepository": {"existingClaim": "my-models"}}}))
    triton = triton_deployment(manifests)
    env = plain_env(container(triton))
    assert env["TRITON_MODEL_REPOSITORY"] == "/models" and "TRITON_MODEL_REPOSITORY_IN_PLACE" not in env
    mount, volume = claim_mount(triton["spec"]["template"]["spec"], container(triton), "/models")
    assert mount["readOnly"] is True and volume["persistentVolumeClaim"] == {"claimName": "my-models", "readOnly": True}
    assert MODEL_REPOSITORY not in plain_env(container(service_deployments(manifests)["inference"]))


# --- what the image makes of it: the entrypoint run on the rendered environment -------------------


def baked_repository(home: Path) -> Path:
    """A copy of deploy/triton/models as the image bakes it (configs, tokenizer, version directories),
    without weights assembled at run time."""
    models = home / "models"
    shutil.copytree(MODELS, models, ignore=shutil.ignore_patterns("__pycache__", "weights", ".*"))
    return models


def entrypoint(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    base = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": env.get("TMPDIR", "/tmp")}
    result = subprocess.run(["sh", str(ENTRYPOINT), *args], env=base | env, capture_output=True, text=True,
                            timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


class PodFiles:
    """The volumes of rendered pods as directories under `root`: one per claim (and subPath), shared by
    every pod that mounts it, a fresh one per emptyDir, and ConfigMaps written out with their items."""

    def __init__(self, root: Path, manifests: list[Manifest]) -> None:
        self.root = root
        self.config_maps = of_kind(manifests, "ConfigMap")

    def volume_dir(self, pod_name: str, volume: dict[str, Any], sub_path: str = "") -> Path:
        if "persistentVolumeClaim" in volume:
            path = self.root / "claims" / volume["persistentVolumeClaim"]["claimName"] / sub_path
        elif "configMap" in volume:
            path = self.root / "configmaps" / volume["configMap"]["name"]
            data = self.config_maps[volume["configMap"]["name"]]["data"]
            for item in volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
                (path / item["path"]).parent.mkdir(parents=True, exist_ok=True)
                (path / item["path"]).write_text(data[item["key"]])
        else:
            path = self.root / "pods" / pod_name / volume["name"]
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _mounts(self, pod_name: str, pod: dict[str, Any], entry: dict[str, Any]) -> dict[str, Path]:
        volumes = {v["name"]: v for v in pod["volumes"]}
        return {m["mountPath"]: self.volume_dir(pod_name, volumes[m["name"]], m.get("subPath", ""))
                for m in entry.get("volumeMounts", [])}

    def path(self, mounts: dict[str, Path], value: str) -> str:
        """`value` with a leading path inside a mount moved to that mount's directory. Every absolute path
        must be inside a mount: nothing the test runs may touch this machine's own /models or /etc."""
        inside = [p for p in mounts if value == p or value.startswith(p.rstrip("/") + "/")]
        if not inside:
            assert not value.startswith("/"), f"{value} is not inside a volume of the pod"
            return value
        mount = max(inside, key=len)
        return str(mounts[mount]) + value[len(mount):]

    def env(self, pod_name: str, pod: dict[str, Any], entry: dict[str, Any]) -> dict[str, str]:
        """The container's plain environment with every path moved to its mount's directory."""
        mounts = self._mounts(pod_name, pod, entry)
        env = {name: self.path(mounts, value) for name, value in plain_env(entry).items()}
        return env | {"TMPDIR": str(mounts["/tmp"])}

    def args(self, pod_name: str, pod: dict[str, Any], entry: dict[str, Any]) -> list[str]:
        """The container's arguments with every absolute path moved to its mount's directory."""
        mounts = self._mounts(pod_name, pod, entry)
        return [self.path(mounts, a) if a.startswith("/") else a for a in entry["args"]]


def served_configs(dry_run: str) -> dict[str, Any]:
    """name -> ModelConfig of every model in the repositories a `triton --dry-run` command line serves."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    configs = {}
    for arg in dry_run.splitlines():
        if arg.startswith("--model-repository="):
            for path in sorted(Path(arg.split("=", 1)[1]).glob("*/config.pbtxt")):
                assert path.parent.name not in configs, f"model {path.parent.name} served twice"
                configs[path.parent.name] = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    return configs


@pytest.mark.parametrize("scenario", ["minimal", *REFIT_SCENARIOS])
def test_the_image_renders_the_model_settings_the_chart_gives_triton(scenario: str, tmp_path: Path):
    """The Triton pod's containers, run by the image's entrypoint with the environment the chart renders
    (paths moved to directories standing for the pod's volumes): the seed fills the claim that inference's
    LABELSTREAM_TRITON_MODEL_REPOSITORY names, and every model Triton would serve has the instance group,
    max_batch_size and queue delay of the values (triton.models, else triton.instanceGroup and the config)."""
    manifests = manifests_of(scenario)
    values = merged_values(scenario)["triton"]
    home = tmp_path / "image"
    baked = baked_repository(home)
    files = PodFiles(tmp_path, manifests)
    triton = triton_deployment(manifests)
    pod = triton["spec"]["template"]["spec"]
    for seed in init_containers(triton).values():
        entrypoint(*files.args("triton", pod, seed),
                   env=files.env("triton", pod, seed) | {"LABELSTREAM_HOME": str(home)})
    server = container(triton)
    dry_run = entrypoint(server["args"][0], "--dry-run", *server["args"][1:],
                         env=files.env("triton", pod, server) | {"LABELSTREAM_HOME": str(home)}).stdout
    assert dry_run.splitlines()[-len(server["args"]) + 1:] == server["args"][1:]  # the chart's arguments pass through
    configs = served_configs(dry_run)
    instruct = values["instructModel"]
    expected_models = {p.name for p in baked.iterdir()} | ({instruct["name"]} if instruct["enabled"] else set())
    assert set(configs) == expected_models
    for name, config in configs.items():
        own = values["models"].get(name, {})
        original = (text_format_parse(baked / name / "config.pbtxt") if name != instruct["name"] else None)
        group = own.get("instanceGroup") or (
            {"kind": "KIND_MODEL", "count": 1} if name == instruct["name"] else values["instanceGroup"])
        assert [(model_kind(g.kind), g.count) for g in config.instance_group] == [(group["kind"], group["count"])], name
        batch = own.get("maxBatchSize", original.max_batch_size if original else 64)
        assert config.max_batch_size == batch, name
        delay = own.get("maxQueueDelayMicroseconds", original.dynamic_batching.max_queue_delay_microseconds
                        if original else 10000)
        assert config.dynamic_batching.max_queue_delay_microseconds == delay, name
    for name in values["models"]:
        assert name in configs, f"triton.models.{name} names no model Triton serves"
    if merged_values(scenario)["refits"]["enabled"]:
        inference = service_deployments(manifests)["inference"]
        inference_env = files.env("inference", inference["spec"]["template"]["spec"], container(inference))
        repository = Path(inference_env[MODEL_REPOSITORY])
        assert (repository / "encoder_fewshot" / "1" / "model.py").is_file()
        assert f"--model-repository={repository}" in dry_run.splitlines()  # served where inference writes


def text_format_parse(path: Path) -> Any:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def model_kind(kind: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.ModelInstanceGroup.Kind.Name(kind)


def test_seeding_adds_what_is_missing_and_never_replaces_a_version(tmp_path: Path):
    home = tmp_path / "image"
    baked = baked_repository(home)
    claim = tmp_path / "claim" / "repository"
    env = {"LABELSTREAM_HOME": str(home), "TMPDIR": str(tmp_path), "TRITON_INSTANCE_KIND": "KIND_CPU",
           "TRITON_MODEL_ENCODER_FEWSHOT_MAX_BATCH_SIZE": "128"}
    first = entrypoint("seed-models", str(claim), env=env)
    assert "encoder_fewshot: copied 1/" in first.stderr
    encoder = claim / "encoder_fewshot"
    assert (encoder / "1" / "model.py").read_bytes() == (baked / "encoder_fewshot" / "1" / "model.py").read_bytes()
    assert (encoder / "tokenizer.json").is_file()
    # Refits happen: a new version; version 1 is left as it is by an older image (here: changed).
    shutil.copytree(encoder / "1", encoder / "2")
    (encoder / "2" / "training").mkdir()
    (encoder / "2" / "training" / "sst2.json").write_text("{}")
    (encoder / "1" / "model.py").write_text("# version 1 as an older image seeded it\n")
    config_inode = (encoder / "config.pbtxt").stat().st_ino
    # A new image brings a version 3 the claim does not have, and the same settings: nothing else changes.
    shutil.copytree(baked / "encoder_fewshot" / "1", baked / "encoder_fewshot" / "3")
    second = entrypoint("seed-models", str(claim), env=env)
    assert "encoder_fewshot: copied 3/; versions 1 2 3" in second.stderr
    assert (encoder / "1" / "model.py").read_text() == "# version 1 as an older image seeded it\n"
    assert (encoder / "2" / "training" / "sst2.json").read_text() == "{}"
    assert (encoder / "config.pbtxt").stat().st_ino == config_inode  # unchanged: not rewritten
    assert not [p for p in encoder.iterdir() if p.name.startswith(".")]  # nothing staged is left behind
    # New settings: the config is replaced (atomically, by rename), the versions stay.
    entrypoint("seed-models", str(claim), env=env | {"TRITON_MODEL_ENCODER_FEWSHOT_MAX_BATCH_SIZE": "256"})
    assert text_format_parse(encoder / "config.pbtxt").max_batch_size == 256
    assert sorted(p.name for p in encoder.iterdir() if p.is_dir()) == ["1", "2", "3"]
    # Triton then serves the claim in place with the same settings: nothing to rewrite.
    config_inode = (encoder / "config.pbtxt").stat().st_ino
    served = entrypoint("triton", "--dry-run", env=env | {"TRITON_MODEL_ENCODER_FEWSHOT_MAX_BATCH_SIZE": "256",
                                                          "TRITON_MODEL_REPOSITORY": str(claim),
                                                          "TRITON_MODEL_REPOSITORY_IN_PLACE": "true"})
    assert f"--model-repository={claim}" in served.stdout.splitlines()
    assert (encoder / "config.pbtxt").stat().st_ino == config_inode


BAD_MODEL_SETTINGS = [
    # (seed-models cannot tell: the models of TRITON_EXTRA_MODELS are only the server's.)
    pytest.param({"TRITON_MODEL_ENCODER_FEWSHOOT_MAX_BATCH_SIZE": "128"},
                 "settings for models that are not in the repository: ENCODER_FEWSHOOT (models: CAUSAL_LM "
                 "ENCODER_FEWSHOT)", id="unknown-model"),
    pytest.param({"TRITON_MODEL_ENCODER_FEWSHOT_MAX_QUEUE_DELAY_US": "-5"},
                 "TRITON_MODEL_ENCODER_FEWSHOT_MAX_QUEUE_DELAY_US must be a whole number of at least 0, not '-5'",
                 id="negative-delay"),
    pytest.param({"TRITON_MODEL_ENCODER_FEWSHOT_MAX_BATCH_SIZE": "0"},
                 "TRITON_MODEL_ENCODER_FEWSHOT_MAX_BATCH_SIZE must be a whole number of at least 1, not '0'",
                 id="zero-batch"),
    pytest.param({"TRITON_INSTANCE_KIND": "GPU"}, "TRITON_INSTANCE_KIND must be KIND_CPU, KIND_GPU or KIND_MODEL",
                 id="kind"),
    pytest.param({"TRITON_MODEL_ENCODER_FEWSHOT_INSTANCE_KIND": "KIND_GPU",
                  "TRITON_MODEL_ENCODER_FEWSHOT_INSTANCE_COUNT": "two"},
                 "TRITON_MODEL_ENCODER_FEWSHOT_INSTANCE_COUNT must be a whole number of at least 1", id="count"),
]


@pytest.mark.parametrize(("env", "message"), BAD_MODEL_SETTINGS)
def test_the_image_refuses_model_settings_it_cannot_apply(tmp_path: Path, env: dict[str, str], message: str):
    home = tmp_path / "image"
    baked_repository(home)
    commands = [["triton", "--dry-run"]]
    if "not in the repository" not in message:
        commands.append(["seed-models", str(tmp_path / "claim")])
    for argv in commands:
        result = entrypoint(*argv, env={"LABELSTREAM_HOME": str(home), "TMPDIR": str(tmp_path)} | env, check=False)
        assert result.returncode == 2 and message in result.stderr, (argv, result.stderr)


class FakeTriton:
    """Triton's HTTP repository API as the reloader uses it: the index of loaded versions, and loads."""

    def __init__(self, ready: dict[str, list[int]]) -> None:
        import http.server
        import threading

        self.ready, self.loads = ready, []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/v2/repository/index":
                    body = json.dumps([{"name": n, "version": str(v), "state": "READY"}
                                       for n, versions in fake.ready.items() for v in versions]).encode()
                elif self.path.endswith("/load"):
                    fake.loads.append(self.path.split("/")[-2])
                    body = b""
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_the_reloader_loads_a_model_whose_versions_on_the_volume_changed(tmp_path: Path):
    """A refit another Triton replica was asked to load (version 3 on disk, 1 and 2 served here) is loaded;
    a model serving what is on disk is not; a Triton that is down is not an error."""
    repository = tmp_path / "repository"
    for model, versions in {"encoder_fewshot": [1, 2, 3], "causal_lm": [1]}.items():
        for version in versions:
            (repository / model / str(version)).mkdir(parents=True)
        (repository / model / "config.pbtxt").write_text(f'name: "{model}"\n')
    fake = FakeTriton({"encoder_fewshot": [1, 2], "causal_lm": [1]})
    heartbeat = tmp_path / "alive"
    env = {"TRITON_MODEL_REPOSITORY": str(repository), "TRITON_HTTP_URL": fake.url,
           "TRITON_RELOADER_HEARTBEAT": str(heartbeat), "TRITON_RELOAD_INTERVAL_S": "30"}
    try:
        assert entrypoint("model-reloader", "--healthy", env=env, check=False).returncode != 0  # never ran
        result = entrypoint("model-reloader", "--once", env=env)
        assert fake.loads == ["encoder_fewshot"], result.stdout
        assert json.loads(result.stdout.splitlines()[-1])["versions"] == [1, 2, 3]
        assert entrypoint("model-reloader", "--healthy", env=env).returncode == 0
        fake.ready["encoder_fewshot"] = [1, 2, 3]
        entrypoint("model-reloader", "--once", env=env)
        assert fake.loads == ["encoder_fewshot"]  # serving what is on disk: nothing to load
    finally:
        fake.server.shutdown()
        fake.server.server_close()
    down = entrypoint("model-reloader", "--once", env=env)
    assert "triton not reachable" in down.stdout


# --- production GPU values: per-model batching and the instruction model ---------------------------


def test_the_gpu_scenario_renders_per_model_batching_and_a_larger_instruction_model():
    manifests = manifests_of("production-gpu")
    values = merged_values("production-gpu")["triton"]
    instruct = values["instructModel"]
    assert instruct["enabled"] and values["models"]["encoder_fewshot"]["maxBatchSize"] > 64
    triton = triton_deployment(manifests)
    server = container(triton)
    env = plain_env(server)
    encoder = values["models"]["encoder_fewshot"]
    assert env["TRITON_MODEL_ENCODER_FEWSHOT_INSTANCE_KIND"] == encoder["instanceGroup"]["kind"] == "KIND_GPU"
    assert env["TRITON_MODEL_ENCODER_FEWSHOT_INSTANCE_COUNT"] == str(encoder["instanceGroup"]["count"])
    assert env["TRITON_MODEL_ENCODER_FEWSHOT_MAX_BATCH_SIZE"] == str(encoder["maxBatchSize"])
    assert env["TRITON_MODEL_ENCODER_FEWSHOT_MAX_QUEUE_DELAY_US"] == str(encoder["maxQueueDelayMicroseconds"])
    assert env["TRITON_MODEL_INSTRUCT_LM_INSTANCE_KIND"] == "KIND_MODEL"
    # The GPUs the instruction model is sharded over are the Triton pod's.
    assert int(server["resources"]["limits"][GPU]) >= instruct["tensorParallelSize"] >= 1
    # Its config: the values as the model's parameters, served from the ConfigMap mounted into the pod.
    (config_map,) = [c for c in of_kind(manifests, "ConfigMap").values() if "instruct" in c["metadata"]["name"]]
    config = text_format_parse_text(config_map["data"]["config.pbtxt"])
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert config.name == instruct["name"] and config.backend == "python"
    assert params["model"] == instruct["modelId"]
    assert params["tensor_parallel_size"] == str(instruct["tensorParallelSize"])
    assert params["max_model_len"] == str(instruct["maxModelLen"])
    assert float(params["gpu_memory_utilization"]) == instruct["gpuMemoryUtilization"]
    assert [i.name for i in config.input] == ["TEXT", "PROJECT"] and [o.name for o in config.output] == ["PROBS"]
    assert config_map["data"]["model.py"] == INSTRUCT_MODEL.read_text()
    annotations = triton["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/instruct-model" in annotations  # a changed model or config rolls the Triton pods
    # Weights from a claim: offline, read-only, and Triton's NetworkPolicy allows no egress beyond DNS.
    assert env["HF_HUB_OFFLINE"] == "1"
    mount, volume = claim_mount(triton["spec"]["template"]["spec"], server, env["HF_HUB_CACHE"])
    assert mount["readOnly"] and volume["persistentVolumeClaim"]["claimName"] == instruct["weights"]["existingClaim"]
    policy = of_kind(manifests, "NetworkPolicy")[triton["metadata"]["name"]]
    assert {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]} == {53}
    # Only Triton pulls the vLLM image.
    assert server["image"].endswith(":0.1.0-vllm")
    assert not [d for d in service_deployments(manifests).values() if container(d)["image"] == server["image"]]


def text_format_parse_text(text: str) -> Any:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_an_instruction_model_downloaded_at_start_gets_https_egress_and_its_token_from_a_secret(
        chart: helm_python.Chart):
    values = deep_merge(scenario_values("production-gpu"), {"triton": {"instructModel": {
        "weights": {"existingClaim": ""},
        "download": {"hfTokenSecret": "hf-token", "egressTo": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}}}})
    manifests = render(chart, values)
    triton = triton_deployment(manifests)
    server = container(triton)
    assert secret_refs(server)["HF_TOKEN"] == {"name": "hf-token", "key": "token"}
    env = plain_env(server)
    assert "HF_HUB_OFFLINE" not in env and env["HF_HUB_CACHE"].startswith("/llm-cache/")
    volumes = {v["name"]: v for v in triton["spec"]["template"]["spec"]["volumes"]}
    assert volumes["llm-cache"]["emptyDir"]["sizeLimit"] == merged_values("production-gpu")["triton"][
        "instructModel"]["cacheSizeLimit"]
    policy = of_kind(manifests, "NetworkPolicy")[triton["metadata"]["name"]]
    (https,) = [r for r in policy["spec"]["egress"] if r["ports"] == [{"port": 443, "protocol": "TCP"}]]
    assert https["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    for manifest in manifests:
        manifest["metadata"]["annotations"].pop("test/template")
        if manifest["kind"] not in CRD_SCHEMAS:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_the_smallest_batch_a_model_may_have_is_what_inference_sends():
    from labelstream.inference.triton import MAX_ROWS_PER_REQUEST

    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["definitions"]["tritonModel"]["properties"]["maxBatchSize"]["minimum"] == MAX_ROWS_PER_REQUEST
    for config in MODELS.glob("*/config.pbtxt"):
        assert text_format_parse(config).max_batch_size >= MAX_ROWS_PER_REQUEST, config


# --- the instruction model's scoring, with a stand-in for vLLM --------------------------------------


class WordTokenizer:
    """Words as tokens; a chat template of one user turn."""

    BOS, USER, ASSISTANT = 1, 2, 3

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.words: dict[int, str] = {}

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        tokens = []
        for word in text.split():
            if word not in self.ids:
                self.ids[word] = len(self.ids) + 10
                self.words[self.ids[word]] = word
            tokens.append(self.ids[word])
        return ([self.BOS] if add_special_tokens else []) + tokens

    def decode(self, tokens: list[int]) -> str:
        return " ".join(self.words[t] for t in tokens)

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool, tokenize: bool):
        assert add_generation_prompt and tokenize and [m["role"] for m in messages] == ["user"]
        return [self.BOS, self.USER, *self.encode(messages[0]["content"], add_special_tokens=False), self.ASSISTANT]


class KeywordEngine:
    """log p(label tokens | prompt): each label word that appears in the item (the words after the last
    'Text:') gains 3 nats; every token costs 1. Records its calls."""

    def __init__(self, tokenizer: WordTokenizer) -> None:
        self.tokenizer = tokenizer
        self.calls: list[int] = []

    def tail_logprobs(self, sequences: list[list[int]], tails: list[int]) -> list[float]:
        self.calls.append(len(sequences))
        text_id, label_id = self.tokenizer.ids["Text:"], self.tokenizer.ids["Label:"]
        scores = []
        for tokens, tail in zip(sequences, tails, strict=True):
            prompt, label = tokens[:-tail], tokens[-tail:]
            start = len(prompt) - prompt[::-1].index(text_id)
            item = set(prompt[start:prompt.index(label_id, start)])
            scores.append(sum(3.0 if t in item else 0.0 for t in label) - len(label))
        return scores


def instruct_model() -> Any:
    spec = importlib.util.spec_from_file_location("instruct_lm_model", INSTRUCT_MODEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_instruction_model_turns_label_scores_into_probabilities_over_the_label_set():
    module = instruct_model()
    tokenizer = WordTokenizer()
    engine = KeywordEngine(tokenizer)
    classifier = module.InstructLMClassifier(engine, tokenizer, max_model_len=512, option_orders=2,
                                             max_examples_per_label=2, max_item_tokens=32)
    project = {"project_id": "p", "labels": ["positive", "negative", "not sure"], "instructions": "Rate the review.",
               "examples": [{"text": "great fun", "label": "positive"}, {"text": "awful", "label": "negative"}]}
    texts = ["a positive surprise", "so negative and dull", "not sure what to think"]
    probs = classifier.predict(texts, project)
    assert probs.shape == (3, 3) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert [project["labels"][i] for i in probs.argmax(axis=1)] == ["positive", "negative", "not sure"]
    # One engine call for the batch: texts x option orders x labels sequences.
    assert engine.calls == [3 * 2 * 3]
    # The options' orders come from the sorted label set: permuting the labels permutes the columns only.
    permuted = classifier.predict(texts, project | {"labels": ["not sure", "positive", "negative"]})
    assert np.allclose(permuted, probs[:, [2, 0, 1]], atol=1e-6)
    assert classifier.predict([], project).shape == (0, 3)


def test_the_instruction_model_fits_its_prompts_into_the_context():
    module = instruct_model()
    tokenizer = WordTokenizer()
    classifier = module.InstructLMClassifier(KeywordEngine(tokenizer), tokenizer, max_model_len=160,
                                             max_examples_per_label=4, max_item_tokens=8)
    examples = [{"text": " ".join(f"w{i}{j}" for j in range(20)), "label": label}
                for i, label in enumerate(["a", "b"] * 4)]
    prompts = classifier.prompts({"labels": ["a", "b"], "examples": examples})
    kept = sum(len(v) for v in prompts.examples.values())
    assert 0 < kept < 8  # examples dropped until the longest prompt leaves room for an item and a label
    long_item = " ".join(f"x{i}" for i in range(50))
    assert len(classifier._item_text(long_item).split()) == 8
    with pytest.raises(ValueError, match="max_model_len leaves"):
        classifier.prompts({"labels": ["a", "b"], "instructions": " ".join(["word"] * 200)})
    with pytest.raises(ValueError, match="distinct"):
        classifier.prompts({"labels": ["a", "a"]})


def test_traces_go_to_the_collector_only_when_an_endpoint_is_set():
    for name, deployment in service_deployments(manifests_of("minimal")).items():
        assert not [key for key in plain_env(container(deployment)) if key.startswith("OTEL_")], name
    for name, deployment in service_deployments(manifests_of("production-gpu")).items():
        env = plain_env(container(deployment))
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4317", name
        assert env["OTEL_SERVICE_NAME"] == f"labelstream-{name}"
        assert (env["OTEL_TRACES_SAMPLER"], env["OTEL_TRACES_SAMPLER_ARG"]) == ("parentbased_traceidratio", "0.1")
        assert env["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment=production"
        assert env["LABELSTREAM_OTEL_INSTRUMENT"] == "grpc,pymongo" and env["OTEL_EXPORTER_OTLP_INSECURE"] == "true"
        headers = secret_refs(container(deployment))["OTEL_EXPORTER_OTLP_HEADERS"]
        assert headers == {"name": "labelstream-otlp-headers", "key": "headers"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_api_tokens_and_grpc_tls_come_from_secrets(scenario: str):
    """The admin and service tokens only through secretKeyRef; with grpcTls the certificate Secret is
    mounted and every service serves TLS, verifies the CA as a client and (mutual) shows its certificate."""
    manifests = manifests_of(scenario)
    values = merged_values(scenario)
    auth, tls = values["auth"], values["grpcTls"]
    for name, deployment in service_deployments(manifests).items():
        entry = container(deployment)
        env = {e["name"]: e for e in entry["env"]}
        for variable, key, given in (("LABELSTREAM_ADMIN_TOKEN", auth["adminTokenKey"], auth["adminToken"]),
                                     ("LABELSTREAM_SERVICE_TOKEN", auth["serviceTokenKey"], auth["serviceToken"])):
            if auth["existingSecret"] or given:
                assert env[variable]["valueFrom"]["secretKeyRef"] == {
                    "name": auth["existingSecret"] or f"{RELEASE}-auth", "key": key}, name
            else:
                assert variable not in env, name
        settings = Settings.from_env(env_with_placeholders(entry))
        assert bool(settings.grpc_tls_cert_file) == tls["enabled"], name
        assert bool(settings.grpc_tls_client_ca_file) == (tls["enabled"] and tls["mutual"]), name
        mounts = {m["name"]: m for m in entry["volumeMounts"]}
        if tls["enabled"]:
            assert settings.grpc_tls_ca_file and settings.grpc_health_port == tls["healthPort"], name
            assert mounts["grpc-tls"]["mountPath"] == "/etc/labelstream/grpc-tls", name
            volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
            assert volumes["grpc-tls"]["secret"]["secretName"] == tls["secret"], name
            assert settings.grpc_tls_cert_file.startswith(mounts["grpc-tls"]["mountPath"]), name
        else:
            assert "grpc-tls" not in mounts and settings.grpc_health_port == 0, name


def test_the_production_scenario_authenticates_and_uses_mutual_tls():
    values = merged_values("production-gpu")
    assert values["auth"]["existingSecret"] and values["grpcTls"]["enabled"] and values["grpcTls"]["mutual"]


def test_tokens_given_in_values_go_into_a_secret_of_the_chart(chart: helm_python.Chart):
    values = deep_merge(scenario_values("minimal"), {"auth": {"adminToken": "lsa_x1", "serviceToken": "lss_y2"}})
    manifests = render(chart, values)
    secret = of_kind(manifests, "Secret")[f"{RELEASE}-auth"]
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "admin-token": "lsa_x1", "service-token": "lss_y2"}
    for where, spec in pod_specs(manifests).items():
        assert "lsa_x1" not in json.dumps(spec) and "lss_y2" not in json.dumps(spec), where
