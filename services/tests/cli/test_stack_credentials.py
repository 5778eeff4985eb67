"""The local stack's credentials: an admin and a service token made at start and kept in the run
folder's state (mode 600) for every later command, and with TLS the certificates it made, handed
to each service as settings it accepts and to each client as the CA to verify."""

from __future__ import annotations

from pathlib import Path

from labelstream.cli.stack import LocalStack, Ports, StackState, service_env
from labelstream.common import certificates
from labelstream.common.settings import Settings


def test_the_state_keeps_the_tokens_and_certificates_for_later_commands(tmp_path: Path):
    state = StackState(str(tmp_path), Ports.from_base(30000), tls=certificates.generate(tmp_path / "tls"),
                       mutual_tls=True)
    assert state.admin_token.startswith("lsa_") and state.service_token.startswith("lss_")
    state.save()
    assert (tmp_path / "stack.json").stat().st_mode & 0o077 == 0
    loaded = StackState.load(tmp_path)
    assert (loaded.admin_token, loaded.service_token, loaded.tls) == (state.admin_token, state.service_token,
                                                                       state.tls)
    target = loaded.grpc_target("ingest")
    assert target.token == state.admin_token and target.address == state.grpc_address("ingest")
    assert target.tls is not None
    assert (target.tls.ca_file, target.tls.cert_file) == (state.tls.ca, state.tls.client_cert)
    assert loaded.grpc_target("dispatcher", token="").token == ""


def test_every_service_gets_the_tokens_and_tls_settings(tmp_path: Path):
    state = StackState(str(tmp_path), Ports.from_base(30000), tls=certificates.generate(tmp_path / "tls"))
    for service in ("ingest", "dispatcher"):
        settings = Settings.from_env(service_env(state, service))
        assert (settings.admin_token, settings.service_token) == (state.admin_token, state.service_token)
        assert settings.grpc_tls_cert_file == state.tls.server_cert and settings.grpc_tls_ca_file == state.tls.ca
        assert not settings.grpc_tls_client_ca_file, "mutual TLS only when asked"


def test_without_tls_nothing_of_tls_is_set(tmp_path: Path):
    stack = LocalStack(tmp_path, 30000)
    settings = Settings.from_env(service_env(stack.state, "router"))
    assert not settings.grpc_tls_cert_file and stack.state.grpc_target("router").tls is None
    assert settings.service_token == stack.state.service_token
