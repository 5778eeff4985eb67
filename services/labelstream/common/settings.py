"""Settings from environment variables: declared once, as the fields of `Settings`, validated at start.

A field is the variable LABELSTREAM_<FIELD>: its type says how the value is checked, its default and
description fill the table `labelstream settings` prints (a test checks the README's copy of it).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Annotated, Any, NamedTuple

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

ENV_PREFIX = "LABELSTREAM_"
CROSS_FIELD = "cross_field"  # error type of a check between settings: its message names the variables itself


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable and what to do."""


def _checked(parse: Callable[[Any], Any], problem: str) -> BeforeValidator:
    """Validate the raw value (the variable's text, or the declared default) with `parse`; a failure reads
    `problem` rather than pydantic's generic text."""
    def validate(raw: Any) -> Any:
        try:
            return parse(raw)
        except ValueError:
            raise PydanticCustomError("setting", problem) from None
    return BeforeValidator(validate)


def _int_between(low: int, high: float = math.inf) -> Callable[[str | int], int]:
    def parse(raw: str | int) -> int:
        if not low <= (value := int(raw)) <= high:
            raise ValueError(raw)
        return value
    return parse


def _non_empty(raw: str) -> str:
    if not raw.strip():
        raise ValueError(raw)
    return raw.strip()


def _one_of(*choices: str) -> BeforeValidator:
    """A choice given in any case, kept in upper case."""
    def parse(raw: str) -> str:
        if (value := raw.strip().upper()) not in choices:
            raise ValueError(raw)
        return value
    return _checked(parse, "must be one of " + ", ".join(choices))


Positive = Annotated[int, _checked(_int_between(1), "must be a positive integer")]
NonNegative = Annotated[int, _checked(_int_between(0), "must be zero or a positive integer")]
Port = Annotated[int, _checked(_int_between(0, 65535), "must be a port number between 0 and 65535")]
NonEmpty = Annotated[str, _checked(_non_empty, "must not be empty")]
LogLevel = Annotated[str, _one_of("DEBUG", "INFO", "WARNING", "ERROR")]
SecurityProtocol = Annotated[str, _one_of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")]
SaslMechanism = Annotated[str, _one_of("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")]


class _EnvironSource(EnvSettingsSource):
    """pydantic-settings' environment source reading `environ` instead of os.environ (as its .env source
    reads a file), so that a mapping handed to from_env is read alone, never mixed with os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self.environ = environ  # before super().__init__, which loads the variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self.environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class Settings(BaseSettings):
    # validate_default: the defaults pass the same checks as given values, the cross-field ones included.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, validate_default=True)

    kafka_bootstrap: NonEmpty = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated")
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    kafka_ssl_cafile: str = Field("", description="CA bundle that signed the brokers' certificates (SSL, SASL_SSL)")
    kafka_sasl_mechanism: SaslMechanism = Field(
        "PLAIN", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_*)")
    kafka_sasl_username: str = Field("", description="SASL user name (SASL_*)")
    kafka_sasl_password: str = Field("", description="SASL password (SASL_*); give it from a Secret")
    kafka_topic_prefix: str = Field("", description="Prefix added to every topic name (e.g. per environment)")
    kafka_session_timeout_ms: Positive = Field(10000, description=(
        "Consumer group session timeout; a group join takes about half of it on the local broker"))
    kafka_heartbeat_interval_ms: Positive = Field(1000, description="Consumer group heartbeat interval")
    kafka_max_poll_interval_ms: Positive = Field(
        300000, description="Longest time between polls before the consumer leaves its group")
    kafka_poll_max_records: Positive = Field(64, description="Largest batch handled (and committed) at once")
    kafka_poll_timeout_ms: Positive = Field(200, description="How long a poll waits to fill a batch")
    kafka_batch_wait_ms: NonNegative = Field(0, description=(
        "After a batch's first record, wait up to this long for it to fill (0: take what is there)"))
    mongodb_uri: NonEmpty = Field("mongodb://127.0.0.1:27017", description="MongoDB connection string")
    mongodb_database: NonEmpty = Field("labelstream", description="MongoDB database name")
    grpc_port: Port = Field(50051, description="Port of this service's gRPC server (API and health)")
    grpc_bind_host: NonEmpty = Field("0.0.0.0", description="Address the gRPC server binds")
    grpc_threads: Positive = Field(192, description=(
        "Threads serving gRPC calls; calls waiting on the store share its round trips, so more threads "
        "make larger store batches"))
    grpc_health_port: Port = Field(0, description=(
        "A second, plaintext port serving only the gRPC health service, for probes that speak no TLS "
        "(Kubernetes gRPC probes) when the API port uses TLS; 0: none"))
    grpc_tls_cert_file: str = Field("", description=(
        "PEM certificate (chain) of this service's gRPC server; with LABELSTREAM_GRPC_TLS_KEY_FILE the server "
        "speaks TLS only (empty: plaintext)"))
    grpc_tls_key_file: str = Field("", description="PEM private key of LABELSTREAM_GRPC_TLS_CERT_FILE")
    grpc_tls_client_ca_file: str = Field("", description=(
        "Mutual TLS: the server requires client certificates signed by this PEM CA (empty: no client "
        "certificate asked)"))
    grpc_tls_ca_file: str = Field("", description=(
        "PEM CA this service's gRPC clients verify servers with (empty: plaintext clients)"))
    grpc_tls_client_cert_file: str = Field("", description=(
        "PEM certificate this service's gRPC clients present for mutual TLS (with "
        "LABELSTREAM_GRPC_TLS_CLIENT_KEY_FILE)"))
    grpc_tls_client_key_file: str = Field("", description="PEM private key of LABELSTREAM_GRPC_TLS_CLIENT_CERT_FILE")
    store_gather_ms: NonNegative = Field(2, description=(
        "How long a store batch with few requests waits for more (dispatcher); each store command costs a "
        "fixed amount of CPU, so bigger batches cost less per request; 0: at once"))
    metrics_port: Port = Field(9464, description="Port serving Prometheus /metrics")
    log_level: LogLevel = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    trace_file: str = Field("", description="Write finished spans as JSON lines to this file (empty: no export)")
    otel_instrument: str = Field("grpc,pymongo", description=(
        "Libraries given spans when OTEL_EXPORTER_OTLP_ENDPOINT names a collector: a comma list of grpc "
        "(servers and clients) and pymongo (every command); none: only labelstream's own spans"))
    triton_url: NonEmpty = Field("127.0.0.1:8001", description="Triton Inference Server gRPC address")
    triton_timeout_s: Positive = Field(30, description="Timeout of one Triton request, seconds")
    triton_model_repository: str = Field("", description=(
        "Triton's model repository, writable, for serving refit heads as new versions (empty: no refits)"))
    triton_max_concurrency: Positive = Field(
        2, description="Most requests one inference process has in flight at Triton")
    triton_retries: NonNegative = Field(
        4, description="Retries with exponential backoff when Triton is UNAVAILABLE")
    max_item_bytes: Positive = Field(16384, description="Largest item text accepted by ingest, UTF-8 bytes")
    max_record_bytes: Positive = Field(65536, description=(
        "Largest Kafka record any service consumes, bytes; checked before parsing, a larger record is "
        "dead-lettered as too_large (keep it above the largest text limit)"))
    record_attempts: Positive = Field(3, description=(
        "How often a record that fails on its own (while the store, broker and Triton answer) is tried "
        "before it is dead-lettered as handler_error"))
    lease_seconds: Positive = Field(
        60, description="How long a worker holds a leased task before it is reassigned")
    project_cache_seconds: Positive = Field(5, description="How long services cache a project's spec")
    admin_token: str = Field("", description=(
        "The admin's bearer token on every service's gRPC API (projects, owners, worker accounts, gold, blocking); "
        "give it from a Secret; empty: no admin calls"))
    service_token: str = Field("", description=(
        "The services' own bearer token: calls between services and from upstream systems feeding items; give "
        "it from a Secret; empty: no service calls"))
    worker_requests_per_minute: Positive = Field(
        600, description="Per-worker rate limit on the dispatcher's calls")
    http_port: Port = Field(0, description=(
        "Port of the web page (dispatcher: annotator page; monitor: dashboard); 0: no web page"))
    quality_watch_seconds: Positive = Field(10, description=(
        "How often the monitor checks quality gauges against their ranges and publishes alerts as quality events"))

    # The checks between settings are field validators on the later field (info.data holds the valid earlier
    # ones), not a model validator, which would run only once every field is valid: all problems show at once.
    @field_validator("kafka_heartbeat_interval_ms")
    @classmethod
    def _heartbeat_below_session_timeout(cls, value: int, info: ValidationInfo) -> int:
        if value >= info.data.get("kafka_session_timeout_ms", math.inf):
            raise PydanticCustomError(CROSS_FIELD, "LABELSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS must be smaller than "
                                      "LABELSTREAM_KAFKA_SESSION_TIMEOUT_MS (a third of it is usual)")
        return value

    @field_validator("grpc_tls_key_file", "grpc_tls_client_key_file")
    @classmethod
    def _certificate_with_key(cls, value: str, info: ValidationInfo) -> str:
        cert = "grpc_tls_cert_file" if info.field_name == "grpc_tls_key_file" else "grpc_tls_client_cert_file"
        if bool(info.data.get(cert)) != bool(value):
            raise PydanticCustomError(CROSS_FIELD, f"LABELSTREAM_{cert.upper()} and "
                                      f"LABELSTREAM_{str(info.field_name).upper()} go together: set both or neither")
        return value

    @field_validator("grpc_tls_client_ca_file")
    @classmethod
    def _mutual_tls_needs_tls(cls, value: str, info: ValidationInfo) -> str:
        if value and not info.data.get("grpc_tls_key_file"):
            raise PydanticCustomError(CROSS_FIELD, "LABELSTREAM_GRPC_TLS_CLIENT_CA_FILE (mutual TLS) needs the "
                                      "server's own LABELSTREAM_GRPC_TLS_CERT_FILE and LABELSTREAM_GRPC_TLS_KEY_FILE")
        return value

    @field_validator("kafka_sasl_password")
    @classmethod
    def _sasl_has_credentials(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("kafka_security_protocol", "").startswith("SASL") and not (
                info.data.get("kafka_sasl_username") and value):
            raise PydanticCustomError(CROSS_FIELD, "LABELSTREAM_KAFKA_SECURITY_PROTOCOL=SASL_* needs "
                                      "LABELSTREAM_KAFKA_SASL_USERNAME and LABELSTREAM_KAFKA_SASL_PASSWORD")
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from `environ` plus the defaults; None: from os.environ."""
        source = _EnvironSource(cls, os.environ if environ is None else environ)
        try:
            return cls(_build_sources=((source,), {}))
        except ValidationError as exc:
            raise SettingsError("invalid settings:\n  " + "\n  ".join(map(_problem, exc.errors()))) from None

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options every Kafka client of this service takes (kafka-python names)."""
        options: dict[str, Any] = {"bootstrap_servers": self.kafka_bootstrap.split(","),
                                   "security_protocol": self.kafka_security_protocol}
        if self.kafka_ssl_cafile:
            options["ssl_cafile"] = self.kafka_ssl_cafile
        if self.kafka_security_protocol.startswith("SASL"):
            options.update(sasl_mechanism=self.kafka_sasl_mechanism,
                           sasl_plain_username=self.kafka_sasl_username,
                           sasl_plain_password=self.kafka_sasl_password)
        return options

    def redacted(self) -> dict[str, Any]:
        """The effective settings for the start-up log, with credentials in URIs hidden."""
        shown = self.model_dump()
        for secret in ("kafka_sasl_password", "admin_token", "service_token"):
            if shown[secret]:
                shown[secret] = "***"
        uri = shown["mongodb_uri"]
        if "@" in uri:
            scheme, rest = uri.split("://", 1)
            shown["mongodb_uri"] = f"{scheme}://***@{rest.split('@', 1)[1]}"
        return shown


class Setting(NamedTuple):
    """One variable as callers see it: derived from its field, not declared again."""
    env: str
    default: str
    help: str


SETTINGS: dict[str, Setting] = {
    name: Setting(ENV_PREFIX + name.upper(), str(field.default), field.description or "")
    for name, field in Settings.model_fields.items()}


def _problem(error: ErrorDetails) -> str:
    """One line of a SettingsError: the variable, its raw value, what is wrong and what it is for."""
    if error["type"] == CROSS_FIELD:
        return error["msg"]
    setting = SETTINGS[str(error["loc"][0])]
    return f"{setting.env}={error['input']!r}: {error['msg']} ({setting.help})"


def settings_table() -> str:
    """The Markdown table of every setting (the README embeds it)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS.values():
        default = f"`{setting.default}`" if setting.default else "(empty)"
        lines.append(f"| `{setting.env}` | {default} | {setting.help} |")
    return "\n".join(lines)
