"""gRPC channels and server credentials: one place where a client gets its bearer token and TLS,
and where a server gets its certificate.

A client names what it calls with a `GrpcTarget` (address, bearer token, TLS files); `open_channel`
makes the channel, which sends `authorization: Bearer <token>` on every call that carries no
authorization of its own (a worker's calls on a channel opened by an admin tool, say). A service
calling another uses `service_target`: the service token and the client TLS of its settings.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from labelstream.common.settings import Settings


@dataclass(frozen=True)
class ClientTls:
    """What a client needs to verify a server (the CA) and, for mutual TLS, to be verified."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True)
class GrpcTarget:
    address: str
    token: str = ""
    tls: ClientTls | None = None

    def __str__(self) -> str:
        return self.address

    def with_token(self, token: str) -> GrpcTarget:
        return replace(self, token=token)


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
        grpc.ClientCallDetails):
    pass


class _BearerInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                         grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the channel's bearer token to calls that carry no authorization of their own."""

    def __init__(self, token: str) -> None:
        self.header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or ())
        if any(key == "authorization" for key, _ in metadata):
            return details
        return _CallDetails(details.method, details.timeout, [*metadata, self.header], details.credentials,
                            getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {path!r} ({exc.strerror}); check the TLS settings") from None


def channel_credentials(tls: ClientTls) -> grpc.ChannelCredentials:
    cert = _read(tls.cert_file, "client certificate") if tls.cert_file else None
    key = _read(tls.key_file, "client key") if tls.key_file else None
    return grpc.ssl_channel_credentials(root_certificates=_read(tls.ca_file, "CA file"),
                                        private_key=key, certificate_chain=cert)


def open_channel(target: GrpcTarget, options: list[tuple[str, object]] | None = None) -> grpc.Channel:
    """A channel to `target`: TLS when it names a CA, and its token on every call."""
    if target.tls is not None:
        channel = grpc.secure_channel(target.address, channel_credentials(target.tls), options=options)
    else:
        channel = grpc.insecure_channel(target.address, options=options)
    if target.token:
        channel = grpc.intercept_channel(channel, _BearerInterceptor(target.token))
    return channel


def client_tls(settings: Settings) -> ClientTls | None:
    if not settings.grpc_tls_ca_file:
        return None
    return ClientTls(settings.grpc_tls_ca_file, settings.grpc_tls_client_cert_file, settings.grpc_tls_client_key_file)


def service_target(settings: Settings, address: str) -> GrpcTarget:
    """How this service calls another: its service token and the client TLS of its settings."""
    return GrpcTarget(address, settings.service_token, client_tls(settings))


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """The gRPC server's TLS credentials (None: plaintext); with a client CA, mutual TLS."""
    if not settings.grpc_tls_cert_file:
        return None
    pair = [(_read(settings.grpc_tls_key_file, "server key"), _read(settings.grpc_tls_cert_file, "server certificate"))]
    if settings.grpc_tls_client_ca_file:
        return grpc.ssl_server_credentials(pair, root_certificates=_read(settings.grpc_tls_client_ca_file,
                                                                         "client CA file"),
                                           require_client_auth=True)
    return grpc.ssl_server_credentials(pair)
