"""Every RPC of every service, enumerated from the generated descriptors, against the access rules
on an in-process server with the real interceptor: anonymous -> UNAUTHENTICATED, a role the RPC
does not admit (or another project's owner) -> PERMISSION_DENIED, a role it admits -> served. A new
RPC without a rule fails here (and is refused to everyone by the interceptor)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from types import SimpleNamespace

import grpc
import pytest
from google.protobuf import symbol_database
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from labelstream.common import auth
from labelstream.common.auth import AuthInterceptor, Principal, Role, TokenDirectory, caller
from labelstream.common.channels import GrpcTarget, open_channel
from labelstream.ingest import __main__ as ingest_service
from labelstream.v1 import services_pb2, services_pb2_grpc

PROJECT, OTHER = "owned", "not-owned"
TOKENS = {Role.ADMIN: "lsa_admin", Role.SERVICE: "lss_service", Role.WORKER: "lsw_worker", Role.OWNER: "lso_owner"}
OTHER_OWNER = "lso_other"


def methods() -> list[MethodDescriptor]:
    return [method for service in services_pb2.DESCRIPTOR.services_by_name.values() for method in service.methods]


def full_name(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def message_class(descriptor):
    return symbol_database.Default().GetSymbol(descriptor.full_name)


class Directory(TokenDirectory):
    """Owners and workers from a dict instead of the store."""

    def _lookup(self, digest: str) -> Principal | None:
        known = {auth.hash_token(TOKENS[Role.WORKER]): Principal(Role.WORKER, "w1"),
                 auth.hash_token(TOKENS[Role.OWNER]): Principal(Role.OWNER, "o1", PROJECT),
                 auth.hash_token(OTHER_OWNER): Principal(Role.OWNER, "o2", OTHER)}
        return known.get(digest)


def directory() -> Directory:
    return Directory(None, admin_token=TOKENS[Role.ADMIN], service_token=TOKENS[Role.SERVICE])


def empty_reply(method: MethodDescriptor):
    reply = message_class(method.output_type)

    def handle(request, context):
        assert isinstance(caller(), Principal)
        return reply()
    return grpc.unary_unary_rpc_method_handler(
        handle, request_deserializer=message_class(method.input_type).FromString,
        response_serializer=reply.SerializeToString)


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """Every RPC served by a handler that answers an empty reply, behind the real interceptor."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[AuthInterceptor(directory())])
    for service in services_pb2.DESCRIPTOR.services_by_name.values():
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            service.full_name, {m.name: empty_reply(m) for m in service.methods}),))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "test.Hidden", {"Call": empty_reply(methods()[0])}),))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def request_for(method: MethodDescriptor, project_id: str):
    """The method's request naming `project_id` wherever its rule reads a project from."""
    request = message_class(method.input_type)()
    rule = auth.RULES.get(full_name(method))
    if rule and rule.project:
        *parents, leaf = rule.project.split(".")
        target = request
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, project_id)
    return request


def call(address: str, method: MethodDescriptor, token: str, project_id: str = PROJECT) -> grpc.StatusCode:
    with open_channel(GrpcTarget(address, token)) as channel:
        rpc = channel.unary_unary(full_name(method), request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=message_class(method.output_type).FromString)
        try:
            rpc(request_for(method, project_id), timeout=10)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_every_rpc_has_a_rule_and_every_rule_an_rpc():
    names = {full_name(m) for m in methods()}
    assert names - set(auth.RULES) == set(), "add these RPCs to labelstream.common.auth.RULES"
    assert set(auth.RULES) - names == set(), "these rules name no RPC"


@pytest.mark.parametrize("method", methods(), ids=full_name)
def test_a_rule_admitting_owners_names_a_string_project_field(method):
    rule = auth.RULES[full_name(method)]
    assert rule.roles, "a rule admits someone"
    if Role.OWNER in rule.roles:
        descriptor = method.input_type
        *parents, leaf = rule.project.split(".")
        for name in parents:
            descriptor = descriptor.fields_by_name[name].message_type
        assert descriptor.fields_by_name[leaf].type == FieldDescriptor.TYPE_STRING


@pytest.mark.parametrize("method", methods(), ids=full_name)
def test_every_rpc_refuses_anonymous_and_wrong_roles_and_serves_right_ones(address, method):
    rule = auth.RULES[full_name(method)]
    assert call(address, method, "") == grpc.StatusCode.UNAUTHENTICATED
    assert call(address, method, "lsa_forged") == grpc.StatusCode.UNAUTHENTICATED
    for role, token in TOKENS.items():
        expected = grpc.StatusCode.OK if role in rule.roles else grpc.StatusCode.PERMISSION_DENIED
        assert call(address, method, token) == expected, role
    if Role.OWNER in rule.roles:
        assert call(address, method, OTHER_OWNER) == grpc.StatusCode.PERMISSION_DENIED, "another project's owner"
        assert call(address, method, TOKENS[Role.OWNER], project_id=OTHER) == grpc.StatusCode.PERMISSION_DENIED
        assert call(address, method, TOKENS[Role.OWNER], project_id="") == grpc.StatusCode.PERMISSION_DENIED


def test_an_rpc_without_a_rule_is_refused_to_everyone(address):
    hidden = SimpleNamespace(containing_service=SimpleNamespace(full_name="test.Hidden"), name="Call",
                             input_type=methods()[0].input_type, output_type=methods()[0].output_type)
    assert call(address, hidden, "") == grpc.StatusCode.UNAUTHENTICATED
    for token in TOKENS.values():
        assert call(address, hidden, token) == grpc.StatusCode.PERMISSION_DENIED


def test_health_checks_stay_open(address):
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_call_carrying_its_own_token_keeps_it_on_a_channel_with_another():
    seen: list[Principal] = []

    def handle(request, context):
        seen.append(caller())
        return services_pb2.WorkerStats()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=[AuthInterceptor(directory())])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("labelstream.v1.DispatcherService", {
        "GetMyStats": grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=services_pb2.GetMyStatsRequest.FromString,
            response_serializer=services_pb2.WorkerStats.SerializeToString)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with open_channel(GrpcTarget(f"127.0.0.1:{port}", TOKENS[Role.ADMIN])) as channel:
            stub = services_pb2_grpc.DispatcherServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetMyStats(services_pb2.GetMyStatsRequest(), timeout=10)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "needs a token of role worker; yours is of role admin" in refused.value.details()
            stub.GetMyStats(services_pb2.GetMyStatsRequest(), timeout=10,
                            metadata=(("authorization", f"Bearer {TOKENS[Role.WORKER]}"),))
    finally:
        server.stop(0)
    assert seen == [Principal(Role.WORKER, "w1")]


def test_the_real_ingest_registration_is_guarded():
    """Ingest registers its methods itself (add_registered_method_handlers): they pass the interceptor too."""
    runtime = SimpleNamespace(store=SimpleNamespace(get_project=lambda project_id: None),
                              settings=SimpleNamespace(max_item_bytes=1000), producer=None)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=[AuthInterceptor(directory())])
    ingest_service.register(runtime, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        request = services_pb2.GetProjectRequest(project_id=PROJECT)
        for token, expected in (("", grpc.StatusCode.UNAUTHENTICATED),
                                (TOKENS[Role.WORKER], grpc.StatusCode.PERMISSION_DENIED),
                                (TOKENS[Role.ADMIN], grpc.StatusCode.NOT_FOUND)):
            with open_channel(GrpcTarget(f"127.0.0.1:{port}", token)) as channel, \
                    pytest.raises(grpc.RpcError) as error:
                services_pb2_grpc.IngestServiceStub(channel).GetProject(request, timeout=10)
            assert error.value.code() == expected, token
    finally:
        server.stop(0)


def test_a_token_is_stored_and_compared_as_its_hash():
    tokens = directory()
    assert [known for known, _ in tokens.static] == [auth.hash_token(TOKENS[Role.ADMIN]),
                                                     auth.hash_token(TOKENS[Role.SERVICE])]
    assert tokens.identify(TOKENS[Role.SERVICE]) == Principal(Role.SERVICE, "service")
    assert auth.new_token(Role.OWNER).startswith("lso_")
