"""Settings from environment variables: one table, validated at start.

Every variable is declared once in SETTINGS below; `labelstream settings` prints the table
and the README's table is checked against it by a test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable and what to do."""


@dataclass(frozen=True)
class Setting:
    env: str
    default: str
    help: str
    parse: Callable[[str], Any] = str


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("must be a port number between 0 and 65535")
    return value


def _log_level(raw: str) -> str:
    value = raw.upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return value


def _security_protocol(raw: str) -> str:
    value = raw.strip().upper()
    if value not in {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}:
        raise ValueError("must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")
    return value


def _sasl_mechanism(raw: str) -> str:
    value = raw.strip().upper()
    if value not in {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}:
        raise ValueError("must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
    return value


def _non_empty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


SETTINGS: dict[str, Setting] = {
    "kafka_bootstrap": Setting(
        "LABELSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:9092", "Kafka bootstrap servers, comma separated",
        _non_empty),
    "kafka_security_protocol": Setting(
        "LABELSTREAM_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
        _security_protocol),
    "kafka_ssl_cafile": Setting(
        "LABELSTREAM_KAFKA_SSL_CAFILE", "", "CA bundle that signed the brokers' certificates (SSL, SASL_SSL)"),
    "kafka_sasl_mechanism": Setting(
        "LABELSTREAM_KAFKA_SASL_MECHANISM", "PLAIN", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_*)",
        _sasl_mechanism),
    "kafka_sasl_username": Setting("LABELSTREAM_KAFKA_SASL_USERNAME", "", "SASL user name (SASL_*)"),
    "kafka_sasl_password": Setting(
        "LABELSTREAM_KAFKA_SASL_PASSWORD", "", "SASL password (SASL_*); give it from a Secret"),
    "kafka_topic_prefix": Setting(
        "LABELSTREAM_KAFKA_TOPIC_PREFIX", "", "Prefix added to every topic name (e.g. per environment)"),
    "kafka_session_timeout_ms": Setting(
        "LABELSTREAM_KAFKA_SESSION_TIMEOUT_MS", "10000",
        "Consumer group session timeout; a group join takes about half of it on the local broker",
        _positive_int),
    "kafka_heartbeat_interval_ms": Setting(
        "LABELSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS", "1000", "Consumer group heartbeat interval",
        _positive_int),
    "kafka_max_poll_interval_ms": Setting(
        "LABELSTREAM_KAFKA_MAX_POLL_INTERVAL_MS", "300000",
        "Longest time between polls before the consumer leaves its group", _positive_int),
    "kafka_poll_max_records": Setting(
        "LABELSTREAM_KAFKA_POLL_MAX_RECORDS", "64", "Largest batch handled (and committed) at once",
        _positive_int),
    "kafka_poll_timeout_ms": Setting(
        "LABELSTREAM_KAFKA_POLL_TIMEOUT_MS", "200", "How long a poll waits to fill a batch", _positive_int),
    "kafka_batch_wait_ms": Setting(
        "LABELSTREAM_KAFKA_BATCH_WAIT_MS", "0",
        "After a batch's first record, wait up to this long for it to fill (0: take what is there)",
        _non_negative_int),
    "mongodb_uri": Setting(
        "LABELSTREAM_MONGODB_URI", "mongodb://127.0.0.1:27017", "MongoDB connection string", _non_empty),
    "mongodb_database": Setting(
        "LABELSTREAM_MONGODB_DATABASE", "labelstream", "MongoDB database name", _non_empty),
    "grpc_port": Setting(
        "LABELSTREAM_GRPC_PORT", "50051", "Port of this service's gRPC server (API and health)", _port),
    "grpc_bind_host": Setting(
        "LABELSTREAM_GRPC_BIND_HOST", "0.0.0.0", "Address the gRPC server binds", _non_empty),
    "grpc_threads": Setting(
        "LABELSTREAM_GRPC_THREADS", "192",
        "Threads serving gRPC calls; calls waiting on the store share its round trips, so more threads "
        "make larger store batches", _positive_int),
    "store_gather_ms": Setting(
        "LABELSTREAM_STORE_GATHER_MS", "2",
        "How long a store batch with few requests waits for more (dispatcher); each store command costs a "
        "fixed amount of CPU, so bigger batches cost less per request; 0: at once", _non_negative_int),
    "metrics_port": Setting(
        "LABELSTREAM_METRICS_PORT", "9464", "Port serving Prometheus /metrics", _port),
    "log_level": Setting("LABELSTREAM_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR", _log_level),
    "trace_file": Setting(
        "LABELSTREAM_TRACE_FILE", "", "Write finished spans as JSON lines to this file (empty: no export)"),
    "triton_url": Setting(
        "LABELSTREAM_TRITON_URL", "127.0.0.1:8001", "Triton Inference Server gRPC address", _non_empty),
    "triton_timeout_s": Setting(
        "LABELSTREAM_TRITON_TIMEOUT_S", "30", "Timeout of one Triton request, seconds", _positive_int),
    "triton_model_repository": Setting(
        "LABELSTREAM_TRITON_MODEL_REPOSITORY", "",
        "Triton's model repository, writable, for serving refit heads as new versions (empty: no refits)"),
    "triton_max_concurrency": Setting(
        "LABELSTREAM_TRITON_MAX_CONCURRENCY", "2", "Most requests one inference process has in flight at Triton",
        _positive_int),
    "triton_retries": Setting(
        "LABELSTREAM_TRITON_RETRIES", "4", "Retries with exponential backoff when Triton is UNAVAILABLE",
        _non_negative_int),
    "max_item_bytes": Setting(
        "LABELSTREAM_MAX_ITEM_BYTES", "16384", "Largest item text accepted by ingest, UTF-8 bytes",
        _positive_int),
    "max_record_bytes": Setting(
        "LABELSTREAM_MAX_RECORD_BYTES", "65536", "Largest Kafka record any service consumes, bytes; checked "
        "before parsing, a larger record is dead-lettered as too_large (keep it above the largest text limit)",
        _positive_int),
    "record_attempts": Setting(
        "LABELSTREAM_RECORD_ATTEMPTS", "3", "How often a record that fails on its own (while the store, broker and "
        "Triton answer) is tried before it is dead-lettered as handler_error", _positive_int),
    "lease_seconds": Setting(
        "LABELSTREAM_LEASE_SECONDS", "60", "How long a worker holds a leased task before it is reassigned",
        _positive_int),
    "project_cache_seconds": Setting(
        "LABELSTREAM_PROJECT_CACHE_SECONDS", "5", "How long services cache a project's spec", _positive_int),
    "admin_token": Setting(
        "LABELSTREAM_ADMIN_TOKEN", "", "Token for the dispatcher's admin calls (worker accounts, gold, "
        "blocking); empty: admin calls are refused"),
    "worker_requests_per_minute": Setting(
        "LABELSTREAM_WORKER_REQUESTS_PER_MINUTE", "600", "Per-worker rate limit on the dispatcher's calls",
        _positive_int),
    "http_port": Setting(
        "LABELSTREAM_HTTP_PORT", "0", "Port of the web page (dispatcher: annotator page; monitor: dashboard); "
        "0: no web page", _port),
    "quality_watch_seconds": Setting(
        "LABELSTREAM_QUALITY_WATCH_SECONDS", "10", "How often the monitor checks quality gauges against "
        "their ranges and publishes alerts as quality events", _positive_int),
}


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    kafka_security_protocol: str
    kafka_ssl_cafile: str
    kafka_sasl_mechanism: str
    kafka_sasl_username: str
    kafka_sasl_password: str
    kafka_topic_prefix: str
    kafka_session_timeout_ms: int
    kafka_heartbeat_interval_ms: int
    kafka_max_poll_interval_ms: int
    kafka_poll_max_records: int
    kafka_poll_timeout_ms: int
    kafka_batch_wait_ms: int
    mongodb_uri: str
    mongodb_database: str
    grpc_port: int
    grpc_bind_host: str
    grpc_threads: int
    store_gather_ms: int
    metrics_port: int
    log_level: str
    trace_file: str
    triton_url: str
    triton_timeout_s: int
    triton_model_repository: str
    triton_max_concurrency: int
    triton_retries: int
    max_item_bytes: int
    max_record_bytes: int
    record_attempts: int
    lease_seconds: int
    project_cache_seconds: int
    admin_token: str
    worker_requests_per_minute: int
    http_port: int
    quality_watch_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, setting in SETTINGS.items():
            raw = environ.get(setting.env, setting.default)
            try:
                values[name] = setting.parse(raw)
            except ValueError as exc:
                problems.append(f"{setting.env}={raw!r}: {exc} ({setting.help})")
        if values.get("kafka_heartbeat_interval_ms", 0) >= values.get("kafka_session_timeout_ms", 1):
            problems.append(
                "LABELSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS must be smaller than "
                "LABELSTREAM_KAFKA_SESSION_TIMEOUT_MS (a third of it is usual)")
        if values.get("kafka_security_protocol", "").startswith("SASL") and not (
                values.get("kafka_sasl_username") and values.get("kafka_sasl_password")):
            problems.append("LABELSTREAM_KAFKA_SECURITY_PROTOCOL=SASL_* needs LABELSTREAM_KAFKA_SASL_USERNAME and "
                            "LABELSTREAM_KAFKA_SASL_PASSWORD")
        if problems:
            raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))
        return cls(**values)

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
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        for secret in ("kafka_sasl_password", "admin_token"):
            if shown[secret]:
                shown[secret] = "***"
        uri = shown["mongodb_uri"]
        if "@" in uri:
            scheme, rest = uri.split("://", 1)
            shown["mongodb_uri"] = f"{scheme}://***@{rest.split('@', 1)[1]}"
        return shown


def settings_table() -> str:
    """The Markdown table of every setting (the README embeds it)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS.values():
        default = f"`{setting.default}`" if setting.default else "(empty)"
        lines.append(f"| `{setting.env}` | {default} | {setting.help} |")
    return "\n".join(lines)
