"""gRPC over TLS as a service binds it (labelstream.common.runtime) with certificates made by
labelstream.common.certificates: a plaintext client is refused, a client verifying the CA is
served; with a client CA (mutual TLS) a client without a certificate is refused too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from labelstream.cli.stack import free_ports
from labelstream.common import certificates
from labelstream.common.auth import TokenDirectory
from labelstream.common.channels import ClientTls, GrpcTarget, open_channel, service_target
from labelstream.common.runtime import bind, grpc_server, health_server
from labelstream.common.settings import Settings
from labelstream.v1 import services_pb2, services_pb2_grpc


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> certificates.CertificateFiles:
    return certificates.generate(tmp_path_factory.mktemp("tls"))


def serve(environ: dict[str, str]) -> Iterator[str]:
    settings = Settings.from_env({"LABELSTREAM_GRPC_BIND_HOST": "127.0.0.1", "LABELSTREAM_GRPC_PORT": "0",
                                  "LABELSTREAM_GRPC_THREADS": "2", "LABELSTREAM_SERVICE_TOKEN": "lss_test",
                                  **environ})
    server = grpc_server(settings, TokenDirectory(None, service_token=settings.service_token))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = bind(server, settings)
    assert port
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


@pytest.fixture
def tls_address(files) -> Iterator[str]:
    yield from serve({"LABELSTREAM_GRPC_TLS_CERT_FILE": files.server_cert,
                      "LABELSTREAM_GRPC_TLS_KEY_FILE": files.server_key})


@pytest.fixture
def mutual_address(files) -> Iterator[str]:
    yield from serve({"LABELSTREAM_GRPC_TLS_CERT_FILE": files.server_cert,
                      "LABELSTREAM_GRPC_TLS_KEY_FILE": files.server_key,
                      "LABELSTREAM_GRPC_TLS_CLIENT_CA_FILE": files.ca})


def health_code(target: GrpcTarget) -> grpc.StatusCode:
    with open_channel(target) as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_a_plaintext_client_is_refused_and_a_client_verifying_the_ca_served(files, tls_address):
    assert health_code(GrpcTarget(tls_address)) == grpc.StatusCode.UNAVAILABLE
    assert health_code(GrpcTarget(tls_address, tls=ClientTls(files.ca))) == grpc.StatusCode.OK


def test_a_client_trusting_another_ca_is_refused(tmp_path: Path, tls_address):
    stranger = certificates.generate(tmp_path / "stranger")
    assert health_code(GrpcTarget(tls_address, tls=ClientTls(stranger.ca))) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_refuses_a_client_without_a_certificate(files, mutual_address):
    assert health_code(GrpcTarget(mutual_address, tls=ClientTls(files.ca))) == grpc.StatusCode.UNAVAILABLE
    assert health_code(GrpcTarget(mutual_address)) == grpc.StatusCode.UNAVAILABLE
    assert health_code(GrpcTarget(mutual_address, tls=ClientTls(files.ca, files.client_cert, files.client_key))) \
        == grpc.StatusCode.OK


def test_a_service_calls_with_its_token_and_client_certificate(files, mutual_address):
    """service_target: the way one service calls another (the call passes TLS and authentication;
    this server serves no IngestService, so it ends UNIMPLEMENTED, not refused)."""
    settings = Settings.from_env({"LABELSTREAM_SERVICE_TOKEN": "lss_test", "LABELSTREAM_GRPC_TLS_CA_FILE": files.ca,
                                  "LABELSTREAM_GRPC_TLS_CLIENT_CERT_FILE": files.client_cert,
                                  "LABELSTREAM_GRPC_TLS_CLIENT_KEY_FILE": files.client_key})
    with open_channel(service_target(settings, mutual_address)) as channel, pytest.raises(grpc.RpcError) as error:
        services_pb2_grpc.IngestServiceStub(channel).GetProject(services_pb2.GetProjectRequest(), timeout=5)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_certificates_are_readable_by_their_owner_only(files):
    for path in (files.server_key, files.client_key):
        assert Path(path).stat().st_mode & 0o077 == 0


def test_probes_get_a_plaintext_health_port_beside_the_tls_api(files):
    servicer = health.HealthServicer()
    settings = Settings.from_env({"LABELSTREAM_GRPC_BIND_HOST": "127.0.0.1", "LABELSTREAM_GRPC_HEALTH_PORT": "0"})
    assert health_server(servicer, settings) is None
    port, = free_ports(1)
    settings = Settings.from_env({"LABELSTREAM_GRPC_BIND_HOST": "127.0.0.1", "LABELSTREAM_GRPC_HEALTH_PORT": str(port)})
    server = health_server(servicer, settings)
    try:
        assert health_code(GrpcTarget(f"127.0.0.1:{port}")) == grpc.StatusCode.OK
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as error:
            services_pb2_grpc.IngestServiceStub(channel).GetProject(services_pb2.GetProjectRequest(), timeout=5)
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED, "the health port serves health only"
    finally:
        server.stop(0)
