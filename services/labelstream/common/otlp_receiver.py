"""An OTLP/gRPC trace receiver built from the opentelemetry-proto service definitions: what a
collector (or Jaeger, or Tempo) receives from the services, kept in memory as span dicts (trace_id
and span_id in hex, name, service, attributes). The unit and integration tests use it to show that
spans leave over the wire; it is no collector (nothing is stored or forwarded)."""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("string_value", "bool_value", "int_value", "double_value") else None


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Listens on 127.0.0.1:`port` (0: a free port, chosen by binding) until stopped; `spans()` is
    every span received so far."""

    def __init__(self, port: int = 0) -> None:
        self._spans: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.requests = 0
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        if self.port == 0:
            raise RuntimeError(f"cannot listen for OTLP on 127.0.0.1:{port}: the port is taken")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=1).wait()

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest,  # noqa: N802 - the proto's name
               context: grpc.ServicerContext) -> trace_service_pb2.ExportTraceServiceResponse:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append({
                        "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent_id": span.parent_span_id.hex(), "name": span.name,
                        "service": resource.get("service.name", ""),
                        "attributes": {a.key: _value(a.value) for a in span.attributes}})
        with self._lock:
            self._spans += received
            self.requests += 1
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._spans)
