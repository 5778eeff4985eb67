"""Structured JSON logs, OpenTelemetry tracing through Kafka headers, Prometheus metrics."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import Counter, Histogram, start_http_server

Headers = list[tuple[str, bytes]]

MESSAGES = Counter(
    "labelstream_messages_total", "Kafka messages handled", ["service", "topic", "outcome"])
HANDLE_SECONDS = Histogram(
    "labelstream_batch_handle_seconds", "Time to handle one consumed batch", ["service"])
PUBLISHED = Counter("labelstream_published_total", "Kafka messages published", ["service", "topic"])


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
        extra = getattr(record, "fields", None)
        if extra:
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str) -> logging.Logger:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    return logging.getLogger(f"labelstream.{service}")


def log_fields(**fields: Any) -> dict[str, Any]:
    """`logger.info(msg, extra=log_fields(k=v))` puts k=v into the JSON line."""
    return {"fields": fields}


class JsonLinesSpanExporter(SpanExporter):
    """Appends finished spans to a file, one JSON object a line (for local runs and tests)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            ctx = span.get_span_context()
            lines.append(json.dumps({
                "name": span.name,
                "service": span.resource.attributes.get("service.name"),
                "trace_id": format(ctx.trace_id, "032x"),
                "span_id": format(ctx.span_id, "016x"),
                "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
                "start_ns": span.start_time,
                "end_ns": span.end_time,
                "attributes": dict(span.attributes or {}),
            }))
        with self._lock, open(self._path, "a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def otlp_configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard OpenTelemetry variables name a collector to send traces to."""
    return any(environ.get(name) for name in OTLP_ENDPOINT_VARIABLES) and \
        environ.get("OTEL_TRACES_EXPORTER", "otlp") != "none"


def configure_tracing(service: str, trace_file: str, instrument: str = "grpc,pymongo") -> TracerProvider:
    """Spans to a JSON-lines file (local runs and tests) and/or over OTLP/gRPC to a collector, as
    the standard variables say (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _CERTIFICATE, _INSECURE,
    OTEL_SERVICE_NAME...). With a collector, gRPC servers and clients and pymongo are
    instrumented too (a span per call and per database command): worth it where a collector
    samples and keeps them, not for the local file."""
    # OTEL_SERVICE_NAME, when set, names the service (the SDK's resource detector reads it).
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": f"labelstream-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    if trace_file:
        provider.add_span_processor(
            BatchSpanProcessor(JsonLinesSpanExporter(trace_file), schedule_delay_millis=200))
    if otlp_configured():
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    if otlp_configured():
        instrument_libraries(provider, instrument)
    return provider


def instrument_libraries(provider: TracerProvider, libraries: str) -> None:
    """gRPC servers and clients and/or pymongo (a comma list), before any server, channel or
    client is made."""
    chosen = {name.strip() for name in libraries.split(",") if name.strip()}
    instrumentors = []
    if "grpc" in chosen:
        from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient, GrpcInstrumentorServer

        instrumentors += [GrpcInstrumentorServer(), GrpcInstrumentorClient()]
    if "pymongo" in chosen:
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

        instrumentors.append(PymongoInstrumentor())
    for instrumentor in instrumentors:
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)


@functools.cache
def tracer() -> trace.Tracer:
    """One tracer per process (a get_tracer call takes the provider's lock and builds a new one:
    per answer, it was a tenth of the dispatcher's time). Before configure_tracing it is a proxy
    that follows the provider set later."""
    return trace.get_tracer("labelstream")


def context_from_headers(headers: Sequence[tuple[str, bytes]] | None) -> otel_context.Context:
    carrier = {key: value.decode("utf-8", "replace") for key, value in headers or []}
    return extract(carrier)


def trace_headers(ctx: otel_context.Context | None = None) -> Headers:
    """W3C trace context of `ctx` (default: the current span) as Kafka headers."""
    carrier: dict[str, str] = {}
    inject(carrier, context=ctx)
    return [(key, value.encode()) for key, value in carrier.items()]


def traceparent() -> str:
    """The current trace context as a traceparent string, for storing beside a record."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent", "")


def context_from_traceparent(value: str) -> otel_context.Context:
    return extract({"traceparent": value}) if value else otel_context.Context()


def start_metrics_server(port: int) -> None:
    start_http_server(port)


def now_ms() -> int:
    return int(time.time() * 1000)
