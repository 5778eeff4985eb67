"""Authentication, roles and TLS on the real services: every RPC of every service (enumerated from
the generated descriptors) refuses an anonymous caller and a role it does not admit, and a role it
admits gets through to the handler; a project owner works on their own project only; a service
started with TLS refuses a plaintext client and serves one that verifies its CA."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import symbol_database
from google.protobuf.descriptor import MethodDescriptor

from integration_tests.conftest import DEMO
from labelstream.cli import client
from labelstream.cli.projects import load_project
from labelstream.cli.stack import StackState, free_port_block, grpc_serving, service_env
from labelstream.common import auth, certificates
from labelstream.common.auth import Role
from labelstream.common.channels import ClientTls, GrpcTarget, open_channel
from labelstream.common.settings import Settings
from labelstream.common.topics import ensure_topics
from labelstream.simulation.workforce import sign_up
from labelstream.v1 import services_pb2, services_pb2_grpc

pytestmark = pytest.mark.integration
PROJECT = "auth-owned"
SERVICE_OF = {"IngestService": "ingest", "InferenceService": "inference", "RouterService": "router",
              "DispatcherService": "dispatcher", "AggregatorService": "aggregator", "MonitorService": "monitor"}
# What the interceptor says when it refuses (labelstream.common.auth); a handler may refuse an empty
# request with PERMISSION_DENIED too (SkipTask: "not leased to you"), which is no refusal of the caller.
AUTH_REFUSALS = ("sign in:", "this token is not valid", "needs a token of role", "your owner token is for project",
                 "has no access rule")


def methods() -> list[MethodDescriptor]:
    return [method for service in services_pb2.DESCRIPTOR.services_by_name.values() for method in service.methods]


def full_name(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


@pytest.fixture(scope="module")
def tokens(state: StackState) -> dict[Role, str]:
    owner = client.create_project_owner(state.grpc_target("ingest"), PROJECT, "auth-owner", rotate=True)
    worker = sign_up(state.grpc_target("dispatcher"), ["auth-worker"])["auth-worker"]
    return {Role.ADMIN: state.admin_token, Role.SERVICE: state.service_token, Role.OWNER: owner, Role.WORKER: worker}


def request_for(method: MethodDescriptor, project_id: str):
    """An empty request naming `project_id` where the rule reads it, and a worker nobody has."""
    message = symbol_database.Default().GetSymbol(method.input_type.full_name)()
    rule = auth.RULES[full_name(method)]
    if rule.project:
        *parents, leaf = rule.project.split(".")
        target = message
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, project_id)
    if "worker_id" in method.input_type.fields_by_name and method.name != "CreateWorker":
        message.worker_id = "auth-nobody"
    return message


def answer(state: StackState, method: MethodDescriptor, token: str, project_id: str = PROJECT,
           ) -> tuple[grpc.StatusCode, str]:
    reply = symbol_database.Default().GetSymbol(method.output_type.full_name)
    target = state.grpc_target(SERVICE_OF[method.containing_service.name], token=token)
    with open_channel(target) as channel:
        rpc = channel.unary_unary(full_name(method), request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=reply.FromString)
        try:
            rpc(request_for(method, project_id), timeout=30)
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def refusal(state: StackState, method: MethodDescriptor, token: str, project_id: str = PROJECT,
            ) -> grpc.StatusCode | None:
    """The interceptor's refusal of this caller, or None when the call reached the handler."""
    code, details = answer(state, method, token, project_id)
    return code if any(text in details for text in AUTH_REFUSALS) else None


@pytest.mark.parametrize("method", methods(), ids=full_name)
def test_every_rpc_of_the_running_services_checks_the_callers_role(state, tokens, method):
    rule = auth.RULES[full_name(method)]
    assert refusal(state, method, "") == grpc.StatusCode.UNAUTHENTICATED
    assert refusal(state, method, "lsw_forged") == grpc.StatusCode.UNAUTHENTICATED
    for role, token in tokens.items():
        refused = refusal(state, method, token)
        if role in rule.roles:
            assert refused is None, f"{role} refused: {answer(state, method, token)}"
        else:
            assert refused == grpc.StatusCode.PERMISSION_DENIED, role
    if Role.OWNER in rule.roles:
        assert refusal(state, method, tokens[Role.OWNER], project_id="someone-elses") == \
            grpc.StatusCode.PERMISSION_DENIED


def test_an_owner_applies_and_reads_their_project_only(state, tokens):
    spec = load_project(DEMO / "project.yaml")
    spec.project_id = PROJECT
    owner = state.grpc_target("ingest", token=tokens[Role.OWNER])
    client.apply_project(owner, spec)
    assert client.get_project(owner, PROJECT).project_id == PROJECT
    assert client.project_stats(state.grpc_target("monitor", token=tokens[Role.OWNER]), PROJECT).project_id == PROJECT
    spec.project_id = "not-" + PROJECT
    with pytest.raises(grpc.RpcError) as refused:
        client.apply_project(owner, spec)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "your owner token is for project" in refused.value.details()


@pytest.fixture(scope="module")
def tls_ingest(state: StackState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ClientTls]]:
    """A second ingest with gRPC over TLS (certificates made here), on topics of its own prefix."""
    files = certificates.generate(tmp_path_factory.mktemp("tls"))
    base = free_port_block(size=2, start=46000)
    prefix = "tls-check."
    ensure_topics(Settings.from_env({"LABELSTREAM_KAFKA_BOOTSTRAP": state.kafka_bootstrap,
                                     "LABELSTREAM_KAFKA_TOPIC_PREFIX": prefix}), partitions=1)
    env = service_env(state, "ingest", {
        "LABELSTREAM_GRPC_PORT": str(base), "LABELSTREAM_METRICS_PORT": str(base + 1), "LABELSTREAM_HTTP_PORT": "0",
        "LABELSTREAM_KAFKA_TOPIC_PREFIX": prefix, "LABELSTREAM_TRACE_FILE": "",
        "LABELSTREAM_GRPC_TLS_CERT_FILE": files.server_cert, "LABELSTREAM_GRPC_TLS_KEY_FILE": files.server_key})
    with Path(state.run_dir, "logs", "ingest-tls.log").open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "labelstream.ingest"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    address, tls = f"127.0.0.1:{base}", ClientTls(files.ca)
    deadline = time.monotonic() + 60
    while not grpc_serving(GrpcTarget(address, tls=tls)):
        assert process.poll() is None and time.monotonic() < deadline, "the TLS ingest did not start; see its log"
        time.sleep(0.3)
    yield address, tls
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_a_service_with_tls_refuses_a_plaintext_client(state, tls_ingest):
    address, tls = tls_ingest
    request = services_pb2.GetProjectRequest(project_id="sst2-demo")
    with open_channel(GrpcTarget(address, state.admin_token)) as channel, pytest.raises(grpc.RpcError) as refused:
        services_pb2_grpc.IngestServiceStub(channel).GetProject(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with open_channel(GrpcTarget(address, "", tls)) as channel, pytest.raises(grpc.RpcError) as anonymous:
        services_pb2_grpc.IngestServiceStub(channel).GetProject(request, timeout=10)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED, "TLS is no credential of its own"
    with open_channel(GrpcTarget(address, state.admin_token, tls)) as channel:
        try:
            services_pb2_grpc.IngestServiceStub(channel).GetProject(request, timeout=10)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND  # served: the demo project may not exist here
