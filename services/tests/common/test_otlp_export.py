"""Spans leave over OTLP/gRPC when the standard variables name a collector: a receiver built from
the opentelemetry-proto service definitions gets them, with the service's name."""

from __future__ import annotations

import socket
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from labelstream.common import telemetry


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []

    def Export(self, request, context):  # noqa: N802 - the OTLP service's method name
        for resource_spans in request.resource_spans:
            service = next(a.value.string_value for a in resource_spans.resource.attributes
                           if a.key == "service.name")
            self.spans += [(service, span.name) for scope in resource_spans.scope_spans for span in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_otlp_is_configured_by_the_standard_variables():
    assert not telemetry.otlp_configured({})
    assert telemetry.otlp_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert telemetry.otlp_configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"})
    assert not telemetry.otlp_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
                                          "OTEL_TRACES_EXPORTER": "none"})


def test_spans_reach_an_otlp_receiver_over_the_wire(monkeypatch):
    port = free_port()
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    try:
        # instrument="none": the libraries of the test process stay as they are
        provider = telemetry.configure_tracing("unit", "", instrument="none")
        with provider.get_tracer("test").start_as_current_span("labelstream.test-span"):
            pass
        assert provider.force_flush(10_000)
        assert ("labelstream-unit", "labelstream.test-span") in receiver.spans
        provider.shutdown()
    finally:
        server.stop(grace=None)
